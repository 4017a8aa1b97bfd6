/**
 * Doing what the missing cluster components would do. The test API server runs without kube-controller-manager,
 * scheduler or kubelets, so tests play their parts explicitly:
 *
 *   createNamespace      namespace + its `default` ServiceAccount (the serviceaccount controller's job)
 *   createServiceAccount a ServiceAccount (Pods need theirs to exist: ServiceAccount admission)
 *   createPod            a minimal valid Pod, optionally already bound to a node
 *   setPodStatus         the status a kubelet writes once the sandbox runs: IPs, phase, conditions, containers
 *   createNode           a Node registered and reported Ready, as a kubelet (and the node lifecycle controller) would
 *
 * Pods created here are API objects only; the traffic is carried by fake-node network namespaces.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, KubeTestError, KubeTestErrorCode } from './errors.js';
import { asKubeObject, isRecord, kubeRequest, kubeRequestOk, statusFromBody, type KubeObject } from './rest.js';

const enc = encodeURIComponent;

export interface NamespaceOptions {
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Creates (or, if it exists, leaves as is) a namespace and its `default` ServiceAccount; returns the namespace. */
export async function createNamespace(kc: KubeConfig, name: string, opts: NamespaceOptions = {}): Promise<KubeObject> {
  const res = await kubeRequest(kc, {
    method: 'POST',
    path: '/api/v1/namespaces',
    body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...opts.labels }, annotations: { ...opts.annotations } } },
  });
  let ns: KubeObject;
  if (res.status === 409) {
    ns = asKubeObject(await kubeRequestOk(kc, { method: 'GET', path: `/api/v1/namespaces/${enc(name)}` }), name);
  } else if (res.status >= 200 && res.status < 300) {
    ns = asKubeObject(res.body, name);
  } else {
    throw new KubeApiError(`create namespace ${name}`, statusFromBody(res.status, res.body));
  }
  await createServiceAccount(kc, name, 'default');
  return ns;
}

export interface ServiceAccountOptions {
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Creates a ServiceAccount; an existing one is returned unchanged. */
export async function createServiceAccount(
  kc: KubeConfig,
  namespace: string,
  name: string,
  opts: ServiceAccountOptions = {},
): Promise<KubeObject> {
  const path = `/api/v1/namespaces/${enc(namespace)}/serviceaccounts`;
  const res = await kubeRequest(kc, {
    method: 'POST',
    path,
    body: {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name, namespace, labels: { ...opts.labels }, annotations: { ...opts.annotations } },
    },
  });
  if (res.status === 409) return asKubeObject(await kubeRequestOk(kc, { method: 'GET', path: `${path}/${enc(name)}` }), name);
  if (res.status < 200 || res.status > 299)
    throw new KubeApiError(`create serviceaccount ${namespace}/${name}`, statusFromBody(res.status, res.body));
  return asKubeObject(res.body, name);
}

export interface PodContainer {
  readonly name: string;
  /** Never pulled (there is no kubelet); default a pause image. */
  readonly image?: string;
  readonly ports?: ReadonlyArray<{ readonly containerPort: number; readonly name?: string; readonly protocol?: 'TCP' | 'UDP' }>;
}

export interface PodOptions {
  readonly namespace: string;
  readonly name: string;
  /** Must exist (ServiceAccount admission); default `default`, which createNamespace makes. */
  readonly serviceAccountName?: string;
  /** Bind the pod to this node at creation (as if scheduled). */
  readonly nodeName?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  /** Default: one container `app`. */
  readonly containers?: readonly PodContainer[];
}

const PLACEHOLDER_IMAGE = 'registry.k8s.io/pause:3.10';

export async function createPod(kc: KubeConfig, opts: PodOptions): Promise<KubeObject> {
  const containers = (opts.containers ?? [{ name: 'app' }]).map((c) => ({
    name: c.name,
    image: c.image ?? PLACEHOLDER_IMAGE,
    ...(c.ports === undefined ? {} : { ports: c.ports.map((p) => ({ protocol: 'TCP', ...p })) }),
  }));
  const spec: Record<string, unknown> = { containers, serviceAccountName: opts.serviceAccountName ?? 'default' };
  if (opts.nodeName !== undefined) spec.nodeName = opts.nodeName;
  return asKubeObject(
    await kubeRequestOk(kc, {
      method: 'POST',
      path: `/api/v1/namespaces/${enc(opts.namespace)}/pods`,
      body: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: opts.name, namespace: opts.namespace, labels: { ...opts.labels }, annotations: { ...opts.annotations } },
        spec,
      },
    }),
    opts.name,
  );
}

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

export interface PodStatusUpdate {
  readonly podIP: string;
  /** All pod IPs (dual stack), podIP first. Default [podIP]. */
  readonly podIPs?: readonly string[];
  /** The node's address. */
  readonly hostIP: string;
  /** Default Running. */
  readonly phase?: PodPhase;
  /** Readiness of every container and of the pod. Default true. */
  readonly ready?: boolean;
  /**
   * The node the pod runs on. If the pod is not bound yet it is bound through the `binding` subresource, as the
   * scheduler does; if it is bound to another node, that is an error.
   */
  readonly nodeName?: string;
}

function specOf(pod: KubeObject): Record<string, unknown> {
  return isRecord(pod.spec) ? pod.spec : {};
}

/**
 * Writes a pod's status the way a kubelet does once the pod sandbox and its containers run: a merge patch of the
 * `status` subresource with phase, host and pod IPs, the four standard conditions and one container status per
 * container. Returns the pod as stored.
 */
export async function setPodStatus(kc: KubeConfig, namespace: string, name: string, update: PodStatusUpdate): Promise<KubeObject> {
  const podIPs = update.podIPs ?? [update.podIP];
  if (podIPs[0] !== update.podIP) {
    throw new KubeTestError(KubeTestErrorCode.INVALID_ARGUMENT, `podIPs must start with podIP (${update.podIP}), got ${podIPs.join(',')}`);
  }
  const path = `/api/v1/namespaces/${enc(namespace)}/pods/${enc(name)}`;
  let pod = asKubeObject(await kubeRequestOk(kc, { method: 'GET', path }), `${namespace}/${name}`);
  const bound = specOf(pod).nodeName;
  if (update.nodeName !== undefined) {
    if (typeof bound === 'string' && bound !== '' && bound !== update.nodeName) {
      throw new KubeTestError(
        KubeTestErrorCode.INVALID_ARGUMENT,
        `pod ${namespace}/${name} is bound to node ${bound}, not ${update.nodeName}`,
      );
    }
    if (bound === undefined || bound === '') {
      await kubeRequestOk(kc, {
        method: 'POST',
        path: `${path}/binding`,
        body: {
          apiVersion: 'v1',
          kind: 'Binding',
          metadata: { name, namespace },
          target: { apiVersion: 'v1', kind: 'Node', name: update.nodeName },
        },
      });
      pod = asKubeObject(await kubeRequestOk(kc, { method: 'GET', path }), `${namespace}/${name}`);
    }
  }
  const phase = update.phase ?? 'Running';
  const ready = (update.ready ?? true) && phase === 'Running';
  const running = phase === 'Running';
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z'); // metav1.Time has second precision
  const status = (s: boolean): 'True' | 'False' => (s ? 'True' : 'False');
  const containers = Array.isArray(specOf(pod).containers) ? (specOf(pod).containers as unknown[]) : [];
  const containerStatuses = containers.filter(isRecord).map((c) => ({
    name: c.name,
    image: c.image,
    imageID: '',
    containerID: running ? `containerd://${String(c.name)}-${name}` : undefined,
    ready,
    started: running,
    restartCount: 0,
    state: running ? { running: { startedAt: now } } : { waiting: { reason: 'ContainerCreating' } },
  }));
  const conditions = [
    { type: 'PodReadyToStartContainers', status: status(running) },
    { type: 'Initialized', status: 'True' },
    { type: 'Ready', status: status(ready), ...(ready ? {} : { reason: 'ContainersNotReady' }) },
    { type: 'ContainersReady', status: status(ready), ...(ready ? {} : { reason: 'ContainersNotReady' }) },
    { type: 'PodScheduled', status: 'True' },
  ].map((c) => ({ ...c, lastProbeTime: null, lastTransitionTime: now }));
  const body = {
    status: {
      phase,
      conditions,
      hostIP: update.hostIP,
      hostIPs: [{ ip: update.hostIP }],
      podIP: update.podIP,
      podIPs: podIPs.map((ip) => ({ ip })),
      startTime: now,
      containerStatuses,
    },
  };
  return asKubeObject(
    await kubeRequestOk(kc, { method: 'PATCH', path: `${path}/status`, body, contentType: 'application/merge-patch+json' }),
    `${namespace}/${name}`,
  );
}

export interface NodeOptions {
  readonly internalIP: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** spec.podCIDR(s), as the node IPAM controller assigns. */
  readonly podCIDR?: string;
  /** Default true: the Ready condition is True and the not-ready taint is removed. */
  readonly ready?: boolean;
}

const NOT_READY_TAINT = 'node.kubernetes.io/not-ready';

/**
 * Registers a Node as a kubelet does (object, then `status` with addresses and the Ready condition). The
 * TaintNodesByCondition admission plugin adds a not-ready taint at creation, which the node lifecycle controller
 * would remove once the node reports Ready; with no controller-manager, this does it.
 */
export async function createNode(kc: KubeConfig, name: string, opts: NodeOptions): Promise<KubeObject> {
  const ready = opts.ready ?? true;
  const spec: Record<string, unknown> = {};
  if (opts.podCIDR !== undefined) {
    spec.podCIDR = opts.podCIDR;
    spec.podCIDRs = [opts.podCIDR];
  }
  const created = asKubeObject(
    await kubeRequestOk(kc, {
      method: 'POST',
      path: '/api/v1/nodes',
      body: {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name,
          labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...opts.labels },
        },
        spec,
      },
    }),
    name,
  );
  const path = `/api/v1/nodes/${enc(name)}`;
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await kubeRequestOk(kc, {
    method: 'PATCH',
    path: `${path}/status`,
    contentType: 'application/merge-patch+json',
    body: {
      status: {
        addresses: [
          { type: 'InternalIP', address: opts.internalIP },
          { type: 'Hostname', address: name },
        ],
        conditions: [
          {
            type: 'Ready',
            status: ready ? 'True' : 'False',
            reason: ready ? 'KubeletReady' : 'KubeletNotReady',
            message: ready ? 'kubelet is posting ready status' : 'container runtime network not ready',
            lastHeartbeatTime: now,
            lastTransitionTime: now,
          },
        ],
      },
    },
  });
  if (ready) {
    const taints = isRecord(created.spec) && Array.isArray(created.spec.taints) ? created.spec.taints : [];
    const kept = taints.filter((t: unknown) => !(isRecord(t) && t.key === NOT_READY_TAINT));
    if (kept.length !== taints.length) {
      await kubeRequestOk(kc, {
        method: 'PATCH',
        path,
        contentType: 'application/merge-patch+json',
        body: { spec: { taints: kept.length === 0 ? null : kept } },
      });
    }
  }
  return asKubeObject(await kubeRequestOk(kc, { method: 'GET', path }), name);
}
