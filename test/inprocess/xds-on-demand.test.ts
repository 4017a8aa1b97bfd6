/**
 * On-demand workload discovery over real gRPC and TLS on loopback: the controller's WDS source behind the xDS
 * server, and delta clients that subscribe to istio.workload.Address as ztunnel does with XDS_ON_DEMAND=true
 * (subscribed to nothing, then names) next to one that subscribes to everything.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { CertificateAuthority } from '../../lib/identity/ca.js';
import { TypeUrl, envoy, istio } from '../../lib/proto/index.js';
import { XdsClient, type XdsClientEvent, type XdsUpdate } from '../../lib/xds/client.js';
import { ztunnelNode } from '../../lib/xds/node.js';
import { DELTA_ADS_PATH } from '../../lib/xds/protocol.js';
import { objectKey, type PodRecord } from '../../controller/kube/records.js';
import type { ClusterState } from '../../controller/model/snapshot.js';
import { WdsSource } from '../../controller/wds-source.js';
import { staticTokenAuthenticator } from '../../controller/xds/auth.js';
import { type RunningXdsServer, type XdsServerTransport, startXdsServer } from '../../controller/xds/server.js';
import { authz, clusterState, mapWith, node, ns, pod, svc, withState } from '../../testbed/fixtures/kube-fixtures.js';
import { silentLogger } from '../../testbed/fixtures/log.js';

const HOST = 'istiod.istio-system.svc';
const ADDR = TypeUrl.Address;
const AUTHZ = TypeUrl.Authorization;
const TOKEN = 'ztunnel-token';
const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };

const uid = (name: string): string => `Kubernetes//Pod/apps/${name}`;
const WEB_SVC = 'apps/web.apps.svc.cluster.local';
const DB_SVC = 'apps/db.apps.svc.cluster.local';

const web1 = pod({ namespace: 'apps', name: 'web-1', labels: { app: 'web' }, ip: '10.0.0.1', node: 'node-1' });
const web2 = pod({ namespace: 'apps', name: 'web-2', labels: { app: 'web' }, ip: '10.0.0.2', node: 'node-2' });
const db1 = pod({ namespace: 'apps', name: 'db-1', labels: { app: 'db' }, ip: '10.0.0.3', node: 'node-2' });
const cache1 = pod({ namespace: 'apps', name: 'cache-1', labels: { app: 'cache' }, ip: '10.0.0.4', node: 'node-2' });

function initialState(): ClusterState {
  return clusterState({
    namespaces: [ns('apps', AMBIENT), ns('istio-system')],
    nodes: [node('node-1'), node('node-2')],
    pods: [web1, web2, db1, cache1],
    services: [
      svc({ namespace: 'apps', name: 'web', selector: { app: 'web' }, clusterIP: '10.96.0.1' }),
      svc({ namespace: 'apps', name: 'db', selector: { app: 'db' }, clusterIP: '10.96.0.2' }),
    ],
    authorizationPolicies: [authz('apps', 'allow-web', { selector: { matchLabels: { app: 'web' } }, rules: [{}] })],
  });
}

let transport: XdsServerTransport;
let rootPem: string;

/** The controller side: a cluster state that tests change, the WDS source over it, the xDS server. */
class Controller {
  state = initialState();
  readonly source = new WdsSource(() => this.state, {});
  running: RunningXdsServer | undefined;

  async start(): Promise<number> {
    this.running = await startXdsServer({
      source: this.source,
      authenticate: staticTokenAuthenticator(new Map([[TOKEN, 'spiffe://cluster.local/ns/istio-system/sa/ztunnel']])),
      transport,
      debounce: { afterMs: 5, maxMs: 100 },
      logger: silentLogger(),
    });
    return this.running.port;
  }

  /** A watch event: change the state, invalidate, push (as controller/app.ts does). */
  change(f: (s: ClusterState) => ClusterState): void {
    this.state = f(this.state);
    this.source.invalidate();
    this.running?.xds.push({ typeUrls: new Set([ADDR, AUTHZ]), reason: 'test' });
  }

  setPod(p: PodRecord): void {
    this.change((s) => withState(s, { pods: mapWith(s.pods, objectKey(p), p) }));
  }
}

/** A ztunnel-like consumer: what it holds of each type, every update it got, and a wait on its events. */
class Ztunnel {
  readonly client: XdsClient;
  readonly addresses = new Map<string, istio.workload.Address>();
  readonly policies = new Set<string>();
  readonly updates: XdsUpdate[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(port: number, nodeName: string, onDemand: boolean) {
    this.client = new XdsClient({
      address: `127.0.0.1:${port}`,
      transport: { kind: 'tls', rootCertPem: rootPem, serverName: HOST },
      node: ztunnelNode({ ip: '10.0.9.9', podName: `ztunnel-${nodeName}`, podNamespace: 'istio-system', nodeName }),
      watches: [
        {
          typeUrl: ADDR,
          onDemand,
          handler: (u) => {
            this.updates.push(u);
            for (const r of u.resources) this.addresses.set(r.name, istio.workload.Address.decode(r.body));
            for (const n of u.removed) this.addresses.delete(n);
          },
        },
        {
          typeUrl: AUTHZ,
          handler: (u) => {
            for (const r of u.resources) this.policies.add(r.name);
            for (const n of u.removed) this.policies.delete(n);
          },
        },
      ],
      token: () => TOKEN,
      logger: silentLogger(),
      onEvent: (_e: XdsClientEvent) => {
        for (const w of [...this.#waiters]) w();
      },
    });
    ztunnels.push(this);
    this.client.start();
  }

  get names(): string[] {
    return [...this.addresses.keys()].sort();
  }

  /** Resolves once `check` holds after a client event (or at once); rejects after 10 s with what it holds. */
  until(what: string, check: () => boolean): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new Error(`timed out waiting until ${what}; holds ${JSON.stringify(this.names)}`));
      }, 10_000);
      const w = (): void => {
        if (!check()) return;
        clearTimeout(t);
        this.#waiters.delete(w);
        resolve();
      };
      this.#waiters.add(w);
    });
  }

  /** Names of the Address resources received in updates from index `from` on. */
  receivedSince(from: number): string[] {
    return [...new Set(this.updates.slice(from).flatMap((u) => u.resources.map((r) => r.name)))].sort();
  }
}

const ztunnels: Ztunnel[] = [];
const controllers: Controller[] = [];

async function controller(): Promise<{ ctl: Controller; port: number }> {
  const ctl = new Controller();
  controllers.push(ctl);
  return { ctl, port: await ctl.start() };
}

const statusOf = (z: Ztunnel, name: string): istio.workload.WorkloadStatus | undefined =>
  (z.addresses.get(name)?.workload as istio.workload.Workload | undefined)?.status;

before(async () => {
  const ca = await CertificateAuthority.createSelfSigned({ trustDomain: 'cluster.local' });
  const serving = await ca.issueServingCertificate([HOST], 3600);
  transport = { kind: 'tls', privateKeyPem: serving.privateKeyPem, certChainPem: serving.certChainPem };
  rootPem = ca.rootCertsPem.join('');
});

afterEach(async () => {
  for (const z of ztunnels.splice(0)) z.client.close();
  await Promise.all(controllers.splice(0).map((c) => c.running?.close(200)));
});

after(() => {
  for (const z of ztunnels) z.client.close();
});

describe('on-demand workload discovery (XDS_ON_DEMAND)', () => {
  it('sends the workloads of the subscriber’s node without being asked, and every policy', async () => {
    const { port } = await controller();
    const z = new Ztunnel(port, 'node-2', true);
    await z.until('node-2’s workloads arrived', () => z.addresses.size === 3);
    assert.deepEqual(z.names, [uid('cache-1'), uid('db-1'), uid('web-2')]);
    await z.until('the policies arrived', () => z.policies.has('apps/allow-web'));
    await z.until('synced', () => z.client.synced);
  });

  it('resolves `/<ip>` to the workload with that address and `<ns>/<hostname>` to the service and its workloads', async () => {
    const { port } = await controller();
    const z = new Ztunnel(port, 'node-1', true);
    await z.until('node-1’s workload arrived', () => z.addresses.has(uid('web-1')));
    z.client.subscribe(ADDR, ['/10.0.0.3']);
    await z.until('the address resolved', () => z.addresses.has(uid('db-1')));
    assert.deepEqual(z.names, [uid('db-1'), uid('web-1')], 'the workload under its uid; the name asked for is not echoed');
    z.client.subscribe(ADDR, [WEB_SVC]);
    await z.until('the hostname resolved', () => z.addresses.has(WEB_SVC) && z.addresses.has(uid('web-2')));
    assert.equal(z.addresses.get(WEB_SVC)?.service?.hostname, 'web.apps.svc.cluster.local');
    assert.deepEqual(z.names, [WEB_SVC, uid('db-1'), uid('web-1'), uid('web-2')].sort());
    z.client.subscribe(ADDR, ['/10.96.0.2']);
    await z.until('the VIP resolved', () => z.addresses.has(DB_SVC));
  });

  it('answers a name that matches nothing in removed_resources', async () => {
    const { port } = await controller();
    const z = new Ztunnel(port, 'node-1', true);
    await z.until('node-1’s workload arrived', () => z.addresses.has(uid('web-1')));
    const from = z.updates.length;
    z.client.subscribe(ADDR, ['/10.9.9.9', 'apps/nope.apps.svc.cluster.local']);
    await z.until('the names were answered', () => z.updates.slice(from).some((u) => u.removed.includes('/10.9.9.9')));
    assert.deepEqual(
      z.updates
        .slice(from)
        .flatMap((u) => u.removed)
        .sort(),
      ['/10.9.9.9', 'apps/nope.apps.svc.cluster.local'],
    );
    assert.deepEqual(z.receivedSince(from), []);
  });

  it('pushes changes of what it subscribed to and of its node, and nothing else', async () => {
    const { ctl, port } = await controller();
    const z = new Ztunnel(port, 'node-1', true);
    await z.until('node-1’s workload arrived', () => z.addresses.has(uid('web-1')));
    z.client.subscribe(ADDR, ['/10.0.0.3']);
    await z.until('the address resolved', () => z.addresses.has(uid('db-1')));
    const from = z.updates.length;
    ctl.change((s) =>
      withState(s, {
        pods: mapWith(
          mapWith(
            s.pods,
            'apps/db-1',
            pod({ namespace: 'apps', name: 'db-1', labels: { app: 'db' }, ip: '10.0.0.3', node: 'node-2', ready: false }),
          ),
          'apps/cache-1',
          pod({ namespace: 'apps', name: 'cache-1', labels: { app: 'cache' }, ip: '10.0.0.4', node: 'node-2', ready: false }),
        ),
      }),
    );
    await z.until('db-1 is unhealthy', () => statusOf(z, uid('db-1')) === istio.workload.WorkloadStatus.UNHEALTHY);
    ctl.setPod(pod({ namespace: 'apps', name: 'web-3', labels: { app: 'web' }, ip: '10.0.0.5', node: 'node-1' }));
    await z.until('the new pod of its node arrived unasked', () => z.addresses.has(uid('web-3')));
    assert.deepEqual(z.receivedSince(from), [uid('db-1'), uid('web-3')], 'cache-1 changed too, but is neither asked for nor local');
    ctl.change((s) => withState(s, { pods: mapWith(s.pods, 'apps/db-1', undefined) }));
    await z.until('the deleted pod is removed', () => !z.addresses.has(uid('db-1')));
  });

  it('stops pushing a resource once unsubscribed', async () => {
    const { ctl, port } = await controller();
    const z = new Ztunnel(port, 'node-1', true);
    await z.until('node-1’s workload arrived', () => z.addresses.has(uid('web-1')));
    z.client.subscribe(ADDR, [uid('db-1')]);
    await z.until('db-1 arrived', () => z.addresses.has(uid('db-1')));
    z.client.unsubscribe(ADDR, [uid('db-1')]);
    // A name that matches nothing is answered in removed_resources, and a stream's requests are handled in order:
    // once that answer is here, so is the unsubscribe (else the change below could be pushed before it).
    const marker = z.updates.length;
    z.client.subscribe(ADDR, ['/192.0.2.1']);
    await z.until('the unsubscribe was handled', () => z.updates.slice(marker).some((u) => u.removed.includes('/192.0.2.1')));
    const from = z.updates.length;
    ctl.setPod(pod({ namespace: 'apps', name: 'db-1', labels: { app: 'db' }, ip: '10.0.0.3', node: 'node-2', ready: false }));
    // A later change it does get: once it is here, the db-1 change (pushed first) would have been too.
    ctl.setPod(pod({ namespace: 'apps', name: 'web-1', labels: { app: 'web' }, ip: '10.0.0.1', node: 'node-1', ready: false }));
    await z.until('web-1 is unhealthy', () => statusOf(z, uid('web-1')) === istio.workload.WorkloadStatus.UNHEALTHY);
    assert.deepEqual(z.receivedSince(from), [uid('web-1')]);
    assert.equal(statusOf(z, uid('db-1')), istio.workload.WorkloadStatus.HEALTHY, 'the copy it held is not updated');
  });

  it('leaves a wildcard subscriber on another node with everything', async () => {
    const { ctl, port } = await controller();
    const all = new Ztunnel(port, 'node-2', false);
    const demand = new Ztunnel(port, 'node-1', true);
    const everything = [WEB_SVC, DB_SVC, uid('cache-1'), uid('db-1'), uid('web-1'), uid('web-2')].sort();
    await all.until('everything arrived', () => all.addresses.size === everything.length);
    assert.deepEqual(all.names, everything);
    await demand.until('node-1’s workload arrived', () => demand.addresses.has(uid('web-1')));
    demand.client.subscribe(ADDR, ['/10.0.0.3']);
    await demand.until('the address resolved', () => demand.addresses.has(uid('db-1')));
    ctl.setPod(pod({ namespace: 'apps', name: 'cache-1', labels: { app: 'cache' }, ip: '10.0.0.4', node: 'node-2', ready: false }));
    await all.until(
      'the wildcard subscriber got the change',
      () => statusOf(all, uid('cache-1')) === istio.workload.WorkloadStatus.UNHEALTHY,
    );
    assert.deepEqual(all.names, everything);
  });

  it('sends each resource with its addresses as aliases', async () => {
    const { port } = await controller();
    const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(rootPem)), {
      'grpc.ssl_target_name_override': HOST,
      'grpc.default_authority': HOST,
    });
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${TOKEN}`);
    const stream = c.makeBidiStreamRequest(
      DELTA_ADS_PATH,
      (b: Buffer) => b,
      (b: Buffer) => envoy.service.discovery.v3.DeltaDiscoveryResponse.decode(b),
      md,
      {},
    );
    stream.on('error', () => {});
    try {
      const responses: envoy.service.discovery.v3.DeltaDiscoveryResponse[] = [];
      const next = (): Promise<envoy.service.discovery.v3.DeltaDiscoveryResponse> =>
        new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('no response within 10 s')), 10_000);
          stream.once('data', (r: envoy.service.discovery.v3.DeltaDiscoveryResponse) => {
            clearTimeout(t);
            resolve(r);
          });
        });
      const send = (req: envoy.service.discovery.v3.DeltaDiscoveryRequest.$Properties): void =>
        void stream.write(Buffer.from(envoy.service.discovery.v3.DeltaDiscoveryRequest.encode(req).finish()));
      const first = next();
      send({
        typeUrl: ADDR,
        node: ztunnelNode({ podName: 'ztunnel-x', podNamespace: 'istio-system', nodeName: 'node-9' }),
        resourceNamesSubscribe: ['*'],
        resourceNamesUnsubscribe: ['*'],
      });
      responses.push(await first);
      assert.deepEqual(responses[0]?.resources, [], 'nothing on node-9, and nothing asked for yet');
      const second = next();
      send({ typeUrl: ADDR, responseNonce: responses[0]?.nonce ?? '', resourceNamesSubscribe: ['/10.0.0.3', '/10.96.0.1'] });
      const r = await second;
      const got = Object.fromEntries((r.resources ?? []).map((x) => [x.name, [...(x.aliases ?? [])]]));
      assert.deepEqual(got, {
        [uid('db-1')]: ['/10.0.0.3'],
        [uid('web-1')]: ['/10.0.0.1'],
        [uid('web-2')]: ['/10.0.0.2'],
        [WEB_SVC]: ['/10.96.0.1'],
      });
      assert.deepEqual(r.removedResources, []);
    } finally {
      stream.cancel();
      c.close();
    }
  });
});
