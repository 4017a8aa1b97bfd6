/**
 * The controller's view of the cluster: one informer per kind (lib/kube/informer.ts: list, then watch, failures
 * retried with backoff), every object converted at the edge into a readonly record (controller/kube/records.ts). An
 * object that does not convert is skipped, logged once with its name and reason, and kept in `rejections` for
 * the debug endpoint: it never reaches the model and never crashes the controller.
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Informer } from '../../lib/kube/informer.js';
import { perKind, type ClusterState } from '../model/snapshot.js';
import {
  authorizationPolicyRecord,
  endpointSliceRecord,
  namespaceRecord,
  nodeRecord,
  objectKey,
  peerAuthenticationRecord,
  podRecord,
  serviceRecord,
  type KubeRejection,
  type RecordResult,
} from './records.js';

type Kind = keyof ClusterState;

/** What changed, for the push reason and for controllers that follow one kind (root cert publisher). */
export interface WatchEvent {
  readonly kind: Kind;
  readonly type: 'add' | 'update' | 'delete';
  readonly key: string;
}

interface KindSpec {
  readonly kind: Kind;
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<KubernetesObject>>;
  readonly convert: (o: unknown) => RecordResult<{ readonly namespace?: string; readonly name: string }>;
  readonly clusterScoped: boolean;
}

export class ClusterWatch {
  readonly #maps: { [K in Kind]: Map<string, unknown> } = perKind(() => new Map());
  readonly #frozen: { [K in Kind]: ReadonlyMap<string, unknown> } = perKind(() => new Map());
  readonly #dirty = new Set<Kind>();
  readonly #rejections = new Map<string, KubeRejection>();
  readonly #listeners = new Set<(e: WatchEvent) => void>();
  readonly #informers: Informer<KubernetesObject>[] = [];
  readonly #specs: KindSpec[];
  readonly #log: Logger;
  #synced = false;

  readonly #kc: KubeConfig;

  constructor(kc: KubeConfig, log: Logger) {
    this.#log = log;
    this.#kc = kc;
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const crd = (plural: string) => async (): Promise<KubernetesListObject<KubernetesObject>> =>
      (await custom.listClusterCustomObject({
        group: 'security.istio.io',
        version: 'v1',
        plural,
      })) as KubernetesListObject<KubernetesObject>;
    this.#specs = [
      { kind: 'namespaces', path: '/api/v1/namespaces', list: () => core.listNamespace(), convert: namespaceRecord, clusterScoped: true },
      { kind: 'nodes', path: '/api/v1/nodes', list: () => core.listNode(), convert: nodeRecord, clusterScoped: true },
      { kind: 'pods', path: '/api/v1/pods', list: () => core.listPodForAllNamespaces(), convert: podRecord, clusterScoped: false },
      {
        kind: 'services',
        path: '/api/v1/services',
        list: () => core.listServiceForAllNamespaces(),
        convert: serviceRecord,
        clusterScoped: false,
      },
      {
        kind: 'endpointSlices',
        path: '/apis/discovery.k8s.io/v1/endpointslices',
        list: () => discovery.listEndpointSliceForAllNamespaces(),
        convert: endpointSliceRecord,
        clusterScoped: false,
      },
      {
        kind: 'authorizationPolicies',
        path: '/apis/security.istio.io/v1/authorizationpolicies',
        list: crd('authorizationpolicies'),
        convert: authorizationPolicyRecord,
        clusterScoped: false,
      },
      {
        kind: 'peerAuthentications',
        path: '/apis/security.istio.io/v1/peerauthentications',
        list: crd('peerauthentications'),
        convert: peerAuthenticationRecord,
        clusterScoped: false,
      },
    ];
  }

  /** The current records, live (they change under you): for lookups such as the CA's node check. */
  get state(): ClusterState {
    return this.#maps as unknown as ClusterState;
  }

  /**
   * An immutable view for the model, whose memo tells what changed by comparing Map identities: kinds that changed
   * since the last snapshot are copied, the others are the very same Map as last time. One pod changing costs one
   * copy of the pod map, not a rebuild of everything.
   */
  snapshot(): ClusterState {
    for (const kind of this.#dirty) this.#frozen[kind] = new Map(this.#maps[kind]);
    this.#dirty.clear();
    // A new object every time: a consumer keeps the previous one to compare against.
    return { ...this.#frozen } as unknown as ClusterState;
  }

  get synced(): boolean {
    return this.#synced;
  }

  rejections(): KubeRejection[] {
    return [...this.#rejections.values()];
  }

  onEvent(listener: (e: WatchEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Lists every kind and starts watching; resolves when all initial lists are in (failed lists are retried). */
  async start(): Promise<void> {
    await Promise.all(this.#specs.map((spec) => this.#startInformer(spec)));
    this.#synced = true;
    this.#log.info(Object.fromEntries(Object.entries(this.#maps).map(([k, m]) => [k, m.size])), 'cluster state synced');
  }

  async stop(): Promise<void> {
    await Promise.all(this.#informers.map((i) => i.stop().catch(() => undefined)));
  }

  async #startInformer(spec: KindSpec): Promise<void> {
    const informer = new Informer<KubernetesObject>(this.#kc, { what: spec.kind, path: spec.path, list: spec.list, logger: this.#log });
    this.#informers.push(informer);
    const key = (o: KubernetesObject): string =>
      spec.clusterScoped ? (o.metadata?.name ?? '') : `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    const upsert =
      (type: 'add' | 'update') =>
      (o: KubernetesObject): void => {
        const k = key(o);
        const res = spec.convert(o);
        const rejectionKey = `${spec.kind}:${k}`;
        if (!res.ok) {
          if (!this.#rejections.has(rejectionKey)) {
            this.#log.warn(
              { code: res.rejection.code, kind: res.rejection.kind, object: k, reason: res.rejection.reason },
              'skipping an invalid object',
            );
          }
          this.#rejections.set(rejectionKey, res.rejection);
          // An object that became invalid is as good as gone: the model must not keep serving its old form.
          if (this.#maps[spec.kind].delete(k)) this.#emit({ kind: spec.kind, type: 'delete', key: k });
          return;
        }
        this.#rejections.delete(rejectionKey);
        const recKey = spec.clusterScoped ? res.record.name : objectKey({ namespace: res.record.namespace ?? '', name: res.record.name });
        this.#maps[spec.kind].set(recKey, res.record);
        this.#emit({ kind: spec.kind, type, key: recKey });
      };
    informer.on('add', upsert('add'));
    informer.on('update', upsert('update'));
    informer.on('delete', (o: KubernetesObject) => {
      const k = key(o);
      this.#rejections.delete(`${spec.kind}:${k}`);
      if (this.#maps[spec.kind].delete(k)) this.#emit({ kind: spec.kind, type: 'delete', key: k });
    });
    await informer.start();
  }

  #emit(e: WatchEvent): void {
    this.#dirty.add(e.kind);
    for (const l of this.#listeners) l(e);
  }
}
