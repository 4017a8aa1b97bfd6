/**
 * Delta ADS over real gRPC and TLS on loopback: our client against our server (initial state, pushes, NACKs,
 * proxy-status, reconnects, debouncing), raw streams for what a well-behaved client never sends (no token, garbage,
 * unknown types, floods), and the client's reconnect backoff on a manual clock.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { CertificateAuthority } from '../../lib/identity/ca.js';
import { TypeUrl, envoy, istio } from '../../lib/proto/index.js';
import { XdsClient, type XdsClientEvent, type XdsClientOptions, type XdsUpdate } from '../../lib/xds/client.js';
import type { XdsRejection } from '../../lib/xds/errors.js';
import { ztunnelNode } from '../../lib/xds/node.js';
import { DELTA_ADS_PATH } from '../../lib/xds/protocol.js';
import { type XdsResource, makeResource } from '../../lib/xds/resource.js';
import { staticTokenAuthenticator } from '../../controller/xds/auth.js';
import type { XdsServerLimits } from '../../controller/xds/connection.js';
import type { XdsServerMetrics } from '../../controller/xds/metrics.js';
import { type RunningXdsServer, type XdsServerTransport, startXdsServer } from '../../controller/xds/server.js';
import { MemoryResourceSource } from '../../controller/xds/source.js';
import type { ProxyStatusRecord, TypeStatusRecord } from '../../controller/xds/status.js';
import { FakeClock } from '../../testbed/fixtures/fake-clock.js';
import { type CapturedLogger, captureLogger, silentLogger } from '../../testbed/fixtures/log.js';

type DeltaRes = envoy.service.discovery.v3.DeltaDiscoveryResponse;
type DeltaReqProps = envoy.service.discovery.v3.DeltaDiscoveryRequest.$Properties;

const HOST = 'istiod.istio-system.svc';
const ADDR = TypeUrl.Address;
const AUTHZ = TypeUrl.Authorization;
const ZTUNNEL_TOKEN = 'ztunnel-token';
const ZTUNNEL_ID = 'spiffe://cluster.local/ns/istio-system/sa/ztunnel';
const PROXY = 'ztunnel-node1.istio-system';
const node = ztunnelNode({
  ip: '10.0.0.5',
  podName: 'ztunnel-node1',
  podNamespace: 'istio-system',
  nodeName: 'node1',
  clusterId: 'Kubernetes',
});

let transport: XdsServerTransport;
let rootPem: string;

// ---------------------------------------------------------------------------------------------------------------
// Resources

/** A workload Address whose service account doubles as a content marker, so tests can see which version is applied. */
function workload(name: string, marker: string): XdsResource {
  const uid = `Kubernetes//Pod/default/${name}`;
  return makeResource(
    uid,
    istio.workload.Address.encode({ workload: { uid, name, namespace: 'default', serviceAccount: marker } }).finish(),
  );
}
const uid = (name: string): string => `Kubernetes//Pod/default/${name}`;

/** Bytes no Address decoder accepts (field 31 with the reserved wire type 7). */
function brokenWorkload(name: string): XdsResource {
  return makeResource(uid(name), Uint8Array.from([0xff, 0xff, 0xff, 0x0f]));
}

function policy(name: string, action: istio.security.Action = istio.security.Action.DENY): XdsResource {
  return makeResource(`default/${name}`, istio.security.Authorization.encode({ name, namespace: 'default', action }).finish());
}

// ---------------------------------------------------------------------------------------------------------------
// Server side

interface Counters {
  opened: number;
  closed: number;
  responses: number;
  nacks: string[];
  pushes: number;
  rejected: string[];
}

interface ServerHarness {
  readonly running: RunningXdsServer;
  readonly source: MemoryResourceSource;
  readonly counters: Counters;
  readonly log: CapturedLogger;
  readonly port: number;
  status(): ProxyStatusRecord[];
  typeStatus(typeUrl: string, proxy?: string): TypeStatusRecord | undefined;
}

const servers: RunningXdsServer[] = [];

async function startServer(
  opts: {
    port?: number;
    source?: MemoryResourceSource;
    limits?: Partial<XdsServerLimits>;
    debounce?: { afterMs: number; maxMs: number };
  } = {},
): Promise<ServerHarness> {
  const source =
    opts.source ??
    new MemoryResourceSource([
      [ADDR, [workload('a', 'a1'), workload('b', 'b1'), workload('c', 'c1')]],
      [AUTHZ, [policy('deny-all')]],
      [TypeUrl.Listener, []],
    ]);
  const counters: Counters = { opened: 0, closed: 0, responses: 0, nacks: [], pushes: 0, rejected: [] };
  const metrics: XdsServerMetrics = {
    connectionOpened: () => void counters.opened++,
    connectionClosed: () => void counters.closed++,
    responseSent: () => void counters.responses++,
    nack: (_t, _p, message) => void counters.nacks.push(message),
    pushReleased: () => void counters.pushes++,
    streamRejected: (code) => void counters.rejected.push(code),
  };
  const log = captureLogger('info');
  const running = await startXdsServer({
    source,
    authenticate: staticTokenAuthenticator(new Map([[ZTUNNEL_TOKEN, ZTUNNEL_ID]])),
    transport,
    port: opts.port ?? 0,
    debounce: opts.debounce ?? { afterMs: 10, maxMs: 200 },
    ...(opts.limits ? { limits: opts.limits } : {}),
    metrics,
    logger: log.logger,
    statusTypeUrls: [ADDR, AUTHZ, TypeUrl.Cluster],
  });
  servers.push(running);
  const status = (): ProxyStatusRecord[] => running.xds.proxyStatus();
  return {
    running,
    source,
    counters,
    log,
    port: running.port,
    status,
    typeStatus: (typeUrl, proxy = PROXY) =>
      status()
        .find((p) => p.proxy === proxy)
        ?.types.find((t) => t.typeUrl === typeUrl),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Client side

/** What a ztunnel-like consumer does with updates: decode each resource, refuse what does not decode, keep the rest. */
class FakeProxy {
  readonly events: XdsClientEvent[] = [];
  readonly updates: XdsUpdate[] = [];
  /** type -> name -> applied content marker. */
  readonly applied = new Map<string, Map<string, string>>([
    [ADDR, new Map()],
    [AUTHZ, new Map()],
  ]);
  /** While set for a type, its handler waits on it (so the ACK is late). */
  readonly gates = new Map<string, Promise<void>>();
  readonly #waiters: Array<() => void> = [];

  onEvent = (e: XdsClientEvent): void => {
    this.events.push(e);
    for (const w of this.#waiters.splice(0)) w();
  };

  handler(typeUrl: string) {
    return async (u: XdsUpdate): Promise<XdsRejection[]> => {
      await this.gates.get(typeUrl);
      this.updates.push(u);
      const state = this.applied.get(typeUrl) as Map<string, string>;
      const rejected: XdsRejection[] = [];
      for (const r of u.resources) {
        try {
          const marker =
            typeUrl === ADDR
              ? istio.workload.Address.decode(r.body).workload?.serviceAccount
              : istio.security.Authorization.decode(r.body).name;
          state.set(r.name, marker ?? '');
        } catch (err) {
          rejected.push({ name: r.name, error: `cannot decode: ${(err as Error).message}` });
        }
      }
      for (const name of u.removed) state.delete(name);
      return rejected;
    };
  }

  /** Resolves with the first event at index >= `from` that matches. */
  async waitFor(pred: (e: XdsClientEvent) => boolean, from = 0, timeoutMs = 10_000): Promise<XdsClientEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find(pred);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for an event; saw ${JSON.stringify(this.events.slice(from).map((e) => e.kind))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  responses(from = 0): Array<Extract<XdsClientEvent, { kind: 'response' }>> {
    return this.events.slice(from).filter((e): e is Extract<XdsClientEvent, { kind: 'response' }> => e.kind === 'response');
  }
}

const clients: XdsClient[] = [];

function connect(port: number, overrides: Partial<XdsClientOptions> = {}): { client: XdsClient; proxy: FakeProxy } {
  const proxy = new FakeProxy();
  const client = new XdsClient({
    address: `127.0.0.1:${port}`,
    transport: { kind: 'tls', rootCertPem: rootPem, serverName: HOST },
    node,
    watches: [
      { typeUrl: ADDR, handler: proxy.handler(ADDR) },
      { typeUrl: AUTHZ, handler: proxy.handler(AUTHZ) },
    ],
    token: () => ZTUNNEL_TOKEN,
    clusterId: 'Kubernetes',
    logger: silentLogger(),
    onEvent: proxy.onEvent,
    ...overrides,
  });
  clients.push(client);
  client.start();
  return { client, proxy };
}

async function eventually(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Raw streams: what our client never sends

interface RawStream {
  send(req: DeltaReqProps): void;
  sendBytes(bytes: Uint8Array): boolean;
  readonly responses: DeltaRes[];
  readonly status: Promise<grpc.StatusObject>;
  close(): void;
}

const raws: RawStream[] = [];

/** `token` null: send no authorization header. */
function rawStream(port: number, token: string | null = ZTUNNEL_TOKEN, path = DELTA_ADS_PATH): RawStream {
  const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(rootPem)), {
    'grpc.ssl_target_name_override': HOST,
    'grpc.default_authority': HOST,
  });
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  const stream = c.makeBidiStreamRequest(
    path,
    (b: Buffer) => b,
    (b: Buffer) => envoy.service.discovery.v3.DeltaDiscoveryResponse.decode(b),
    md,
    {},
  );
  const responses: DeltaRes[] = [];
  stream.on('data', (r: DeltaRes) => responses.push(r));
  stream.on('error', () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
  const raw: RawStream = {
    send: (req) => void stream.write(Buffer.from(envoy.service.discovery.v3.DeltaDiscoveryRequest.encode(req).finish())),
    sendBytes: (bytes) => stream.write(Buffer.from(bytes)),
    responses,
    status,
    close: () => {
      stream.cancel();
      c.close();
    },
  };
  raws.push(raw);
  return raw;
}

// ---------------------------------------------------------------------------------------------------------------

before(async () => {
  const ca = await CertificateAuthority.createSelfSigned({ trustDomain: 'cluster.local' });
  const serving = await ca.issueServingCertificate([HOST], 3600);
  transport = { kind: 'tls', privateKeyPem: serving.privateKeyPem, certChainPem: serving.certChainPem };
  rootPem = ca.rootCertsPem.join('');
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const r of raws.splice(0)) r.close();
  await Promise.all(servers.splice(0).map((s) => s.close(500)));
});

after(() => {
  for (const c of clients) c.close();
});

describe('delta ADS client and server over TLS', () => {
  it('delivers the full initial state of every watched type, ACKs it, and becomes synced', async () => {
    const srv = await startServer();
    const { client, proxy } = connect(srv.port);
    await client.whenSynced();
    assert.equal(client.synced, true);
    assert.equal(client.connected, true);
    assert.deepEqual(Object.fromEntries(proxy.applied.get(ADDR) ?? []), { [uid('a')]: 'a1', [uid('b')]: 'b1', [uid('c')]: 'c1' });
    assert.deepEqual([...(proxy.applied.get(AUTHZ) ?? []).keys()], ['default/deny-all']);
    // The client's store holds the server's versions: what it will claim in initial_resource_versions.
    assert.equal(client.knownResources(ADDR).get(uid('a')), workload('a', 'a1').version);
    assert.equal(proxy.events.filter((e) => e.kind === 'synced').length, 1);
    await eventually(
      'the server has both ACKs',
      () => srv.typeStatus(ADDR)?.status === 'SYNCED' && srv.typeStatus(AUTHZ)?.status === 'SYNCED',
    );
    const rec = srv.status()[0] as ProxyStatusRecord;
    assert.equal(rec.proxy, PROXY);
    assert.equal(rec.type, 'ztunnel');
    assert.equal(rec.nodeName, 'node1');
    assert.deepEqual(rec.identities, [ZTUNNEL_ID]);
    assert.equal(srv.counters.opened, 1);
  });

  it('after a change pushes only the changed resource and a removal', async () => {
    const srv = await startServer();
    const { client, proxy } = connect(srv.port);
    await client.whenSynced();
    const mark = proxy.events.length;
    const updatesBefore = proxy.updates.length;
    srv.source.set(ADDR, [workload('a', 'a1'), workload('b', 'b2'), workload('d', 'd1')]);
    srv.running.xds.push({ typeUrls: new Set([ADDR]), reason: 'pod-update' });
    await proxy.waitFor((e) => e.kind === 'response' && e.typeUrl === ADDR, mark);
    const update = proxy.updates[updatesBefore] as XdsUpdate;
    assert.deepEqual(update.resources.map((r) => r.name).sort(), [uid('b'), uid('d')]);
    assert.deepEqual(update.removed, [uid('c')]);
    assert.equal(proxy.updates.length, updatesBefore + 1, 'the unchanged Authorization type got nothing');
    assert.deepEqual(Object.fromEntries(proxy.applied.get(ADDR) ?? []), { [uid('a')]: 'a1', [uid('b')]: 'b2', [uid('d')]: 'd1' });
    assert.deepEqual([...client.knownResources(ADDR).keys()].sort(), [uid('a'), uid('b'), uid('d')]);
  });

  it('merges a burst of 1 000 push requests into one push and one response per type', async () => {
    const srv = await startServer({ debounce: { afterMs: 100, maxMs: 10_000 } });
    const { client, proxy } = connect(srv.port);
    await client.whenSynced();
    const mark = proxy.events.length;
    const pushesBefore = srv.counters.pushes;
    for (let i = 0; i < 1000; i++) {
      srv.source.upsert(ADDR, workload('a', `a-${i}`));
      srv.running.xds.push({ typeUrls: new Set([ADDR]), reason: 'pod-update' });
    }
    await proxy.waitFor((e) => e.kind === 'response' && e.typeUrl === ADDR, mark);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(srv.counters.pushes - pushesBefore, 1);
    assert.equal(proxy.responses(mark).length, 1);
    assert.equal(proxy.applied.get(ADDR)?.get(uid('a')), 'a-999');
  });

  it('on a NACK keeps the previous version of the rejected resource, applies its siblings, shows ERROR with the message, and a later good push clears it', async () => {
    const srv = await startServer();
    const { client, proxy } = connect(srv.port);
    await client.whenSynced();
    const goodVersion = client.knownResources(ADDR).get(uid('a'));
    let mark = proxy.events.length;
    srv.source.set(ADDR, [brokenWorkload('a'), workload('b', 'b2'), workload('c', 'c1')]);
    srv.running.xds.push({ typeUrls: new Set([ADDR]), reason: 'pod-update' });
    const nack = await proxy.waitFor((e) => e.kind === 'response' && e.typeUrl === ADDR, mark);
    assert.ok(nack.kind === 'response' && nack.rejected.length === 1 && nack.rejected[0]?.name === uid('a'));
    assert.equal(proxy.applied.get(ADDR)?.get(uid('a')), 'a1', 'the proxy keeps its last good config for the rejected resource');
    assert.equal(
      proxy.applied.get(ADDR)?.get(uid('b')),
      'b2',
      'accepted siblings in the same response are applied (per resource, as ztunnel)',
    );
    assert.equal(client.knownResources(ADDR).get(uid('a')), goodVersion, 'the client store still names the last good version');
    assert.equal(client.knownResources(ADDR).get(uid('b')), workload('b', 'b2').version);
    await eventually('proxy-status shows ERROR', () => srv.typeStatus(ADDR)?.status === 'ERROR');
    const st = srv.typeStatus(ADDR) as TypeStatusRecord;
    assert.match(st.lastError ?? '', new RegExp(`^${uid('a')}: cannot decode`));
    assert.equal(typeof st.lastErrorAt, 'number');
    assert.equal(srv.counters.nacks.length, 1);
    assert.equal(srv.typeStatus(AUTHZ)?.status, 'SYNCED', 'status is per type');
    assert.ok(srv.log.lines.some((l) => l.code === 'XDS_NACK' && l.typeUrl === ADDR));
    assert.equal(client.connected, true, 'a NACK keeps the connection');

    // The refused content is not sent again: an unrelated push does not repeat it.
    mark = proxy.events.length;
    srv.running.xds.push({ typeUrls: new Set([ADDR]), reason: 'noop' });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(proxy.responses(mark).length, 0);

    srv.source.upsert(ADDR, workload('a', 'a3'));
    srv.running.xds.push({ typeUrls: new Set([ADDR]), reason: 'pod-update' });
    const ack = await proxy.waitFor((e) => e.kind === 'response' && e.typeUrl === ADDR, mark);
    assert.ok(ack.kind === 'response' && ack.rejected.length === 0);
    assert.equal(proxy.applied.get(ADDR)?.get(uid('a')), 'a3');
    await eventually('proxy-status back to SYNCED', () => srv.typeStatus(ADDR)?.status === 'SYNCED');
    assert.equal(srv.typeStatus(ADDR)?.lastError, undefined);
  });

  it('proxy-status: STALE while a response is unacknowledged, SYNCED after the ACK, NOT SENT for a type never sent, IGNORED for types not watched', async () => {
    const srv = await startServer();
    const { client, proxy } = connect(srv.port);
    await client.whenSynced();
    await eventually('SYNCED', () => srv.typeStatus(AUTHZ)?.status === 'SYNCED');
    let release: () => void = () => {};
    proxy.gates.set(AUTHZ, new Promise<void>((r) => (release = r)));
    srv.source.set(AUTHZ, [policy('deny-all', istio.security.Action.ALLOW)]);
    srv.running.xds.push({ typeUrls: new Set([AUTHZ]), reason: 'policy-update' });
    await eventually('STALE while the proxy has not answered', () => srv.typeStatus(AUTHZ)?.status === 'STALE');
    const stale = srv.typeStatus(AUTHZ) as TypeStatusRecord;
    assert.notEqual(stale.nonceSent, stale.nonceAcked);
    assert.ok((stale.lastSentAt ?? 0) >= (stale.lastAckedAt ?? 0));
    release();
    await eventually('SYNCED after the ACK', () => srv.typeStatus(AUTHZ)?.status === 'SYNCED');
    assert.equal(srv.typeStatus(TypeUrl.Cluster)?.status, 'IGNORED');

    // An on-demand ztunnel subscribes to nothing ("*" in and out) until it looks something up: nothing is sent.
    const raw = rawStream(srv.port);
    const other = ztunnelNode({ ip: '10.0.0.6', podName: 'ztunnel-node2', podNamespace: 'istio-system', nodeName: 'node2' });
    raw.send({ typeUrl: AUTHZ, node: other });
    raw.send({ typeUrl: ADDR, node: other, resourceNamesSubscribe: ['*'], resourceNamesUnsubscribe: ['*'] });
    await eventually('the second proxy has its Authorization', () => raw.responses.length === 1);
    await eventually('the server has seen both requests', () => srv.typeStatus(ADDR, 'ztunnel-node2.istio-system') !== undefined);
    const rec = srv.status().find((p) => p.proxy === 'ztunnel-node2.istio-system') as ProxyStatusRecord;
    assert.deepEqual(
      rec.types.map((t) => [t.typeUrl, t.status]),
      [
        [TypeUrl.Cluster, 'IGNORED'],
        [AUTHZ, 'STALE'],
        [ADDR, 'NOT SENT'],
      ],
    );
    // A name looked up on demand that does not exist is answered with removed_resources.
    raw.send({ typeUrl: ADDR, resourceNamesSubscribe: [uid('a'), uid('nope')] });
    await eventually('the on-demand answer', () => raw.responses.length === 2);
    const res = raw.responses[1] as DeltaRes;
    assert.deepEqual(
      res.resources.map((r) => r.name),
      [uid('a')],
    );
    assert.deepEqual(res.removedResources, [uid('nope')]);
    assert.equal(srv.typeStatus(ADDR, 'ztunnel-node2.istio-system')?.status, 'STALE');
    raw.send({ typeUrl: ADDR, responseNonce: res.nonce });
    await eventually('the on-demand type is SYNCED', () => srv.typeStatus(ADDR, 'ztunnel-node2.istio-system')?.status === 'SYNCED');
  });

  it('on reconnect sends initial_resource_versions and receives only what changed while it was away', async () => {
    const first = await startServer();
    const port = first.port;
    const source = first.source;
    let tokenReads = 0;
    const { client, proxy } = connect(port, {
      token: () => {
        tokenReads++;
        return ZTUNNEL_TOKEN;
      },
    });
    await client.whenSynced();
    assert.equal(tokenReads, 1);
    const initial = proxy.responses();
    assert.deepEqual(
      initial.map((r) => [r.typeUrl, r.resources]).sort(),
      [
        [ADDR, 3],
        [AUTHZ, 1],
      ].sort(),
    );

    await first.running.close(500);
    const down = await proxy.waitFor((e) => e.kind === 'disconnected');
    assert.ok(down.kind === 'disconnected' && down.graceful, 'a control plane shutting down closes streams with OK');
    assert.equal(down.retryInMs <= 11, true, 'and the proxy comes back after the initial backoff');

    // While the proxy is away: b changes, c goes, d appears; the policy is untouched.
    source.set(ADDR, [workload('a', 'a1'), workload('b', 'b2'), workload('d', 'd1')]);
    const mark = proxy.events.length;
    const updatesBefore = proxy.updates.length;
    const second = await startServer({ port, source });
    await proxy.waitFor((e) => e.kind === 'connected', mark);
    await eventually('both types answered on the new stream', () => proxy.responses(mark).length >= 2);
    const again = proxy.responses(mark);
    assert.deepEqual(again.map((r) => [r.typeUrl, r.resources, r.removed]).sort(), [
      [AUTHZ, 0, 0],
      [ADDR, 2, 1],
    ]);
    const addrUpdate = proxy.updates.slice(updatesBefore).find((u) => u.typeUrl === ADDR) as XdsUpdate;
    assert.deepEqual(addrUpdate.resources.map((r) => r.name).sort(), [uid('b'), uid('d')]);
    assert.deepEqual(addrUpdate.removed, [uid('c')]);
    assert.deepEqual(Object.fromEntries(proxy.applied.get(ADDR) ?? []), { [uid('a')]: 'a1', [uid('b')]: 'b2', [uid('d')]: 'd1' });
    await eventually(
      'the new server sees the proxy SYNCED',
      () => second.typeStatus(ADDR)?.status === 'SYNCED' && second.typeStatus(AUTHZ)?.status === 'SYNCED',
    );
    assert.equal(second.typeStatus(ADDR)?.resources, 3, 'the server knows what the proxy holds, claimed or sent');
    assert.ok(tokenReads >= 2, 'the token is read again for every connection (projected tokens rotate)');
  });

  it('refuses a client without a valid token with UNAUTHENTICATED, before reading its requests', async () => {
    const srv = await startServer();
    const { proxy } = connect(srv.port, { token: () => 'stolen' });
    const down = await proxy.waitFor((e) => e.kind === 'disconnected');
    assert.ok(down.kind === 'disconnected');
    assert.equal(down.grpcStatus, grpc.status.UNAUTHENTICATED);
    assert.equal(down.graceful, false, 'a refusal is not retried at once');
    assert.match(down.details, /not valid/);
    const raw = rawStream(srv.port, null);
    raw.send({ typeUrl: ADDR, node });
    const st = await raw.status;
    assert.equal(st.code, grpc.status.UNAUTHENTICATED);
    assert.equal(raw.responses.length, 0);
    assert.equal(srv.status().length, 0, 'an unauthenticated stream never becomes a proxy');
    assert.ok(srv.counters.rejected.filter((c) => c === 'XDS_UNAUTHENTICATED').length >= 2);
    assert.ok(srv.log.lines.some((l) => l.code === 'XDS_UNAUTHENTICATED'));

    // A token that cannot be read is a failed connection attempt on the client side, retried with backoff.
    const { proxy: noToken } = connect(srv.port, {
      token: () => {
        throw new Error('ENOENT: /var/run/secrets/tokens/istio-token');
      },
    });
    const e = await noToken.waitFor((x) => x.kind === 'disconnected');
    assert.ok(e.kind === 'disconnected' && e.code === 'XDS_NO_TOKEN' && !e.graceful);
    assert.match(e.details, /istio-token/);
  });

  it('disconnects garbage and hostile clients with an error status and one log line each, and keeps serving others', async () => {
    const srv = await startServer({ limits: { maxRequestBytes: 64 * 1024 } });
    const { client, proxy } = connect(srv.port);
    await client.whenSynced();

    const cases: Array<{ what: string; code: string; status: grpc.status; act: (r: RawStream) => void }> = [
      {
        what: 'undecodable bytes',
        code: 'XDS_BAD_REQUEST',
        status: grpc.status.INVALID_ARGUMENT,
        act: (r) => r.sendBytes(Uint8Array.from([0xff, 0xff, 0xff, 0x0f])),
      },
      {
        what: 'an unknown type URL',
        code: 'XDS_UNKNOWN_TYPE',
        status: grpc.status.INVALID_ARGUMENT,
        act: (r) => r.send({ typeUrl: 'type.googleapis.com/evil.Type', node }),
      },
      {
        what: 'a node that is not a proxy',
        code: 'XDS_BAD_NODE',
        status: grpc.status.INVALID_ARGUMENT,
        act: (r) => r.send({ typeUrl: ADDR, node: { id: 'hello' } }),
      },
      { what: 'no node at all', code: 'XDS_BAD_NODE', status: grpc.status.INVALID_ARGUMENT, act: (r) => r.send({ typeUrl: ADDR }) },
      { what: 'an empty type URL', code: 'XDS_BAD_REQUEST', status: grpc.status.INVALID_ARGUMENT, act: (r) => r.send({ node }) },
      {
        what: 'a flood of requests',
        code: 'XDS_RESOURCE_EXHAUSTED',
        status: grpc.status.RESOURCE_EXHAUSTED,
        act: (r) => {
          r.send({ typeUrl: ADDR, node });
          for (let i = 0; i < 1500; i++) r.send({ typeUrl: ADDR, responseNonce: 'stale' });
        },
      },
      {
        what: 'an absurdly long resource name',
        code: 'XDS_BAD_REQUEST',
        status: grpc.status.INVALID_ARGUMENT,
        act: (r) => r.send({ typeUrl: ADDR, node, resourceNamesSubscribe: ['x'.repeat(10_000)] }),
      },
    ];
    for (const c of cases) {
      const before = srv.log.lines.length;
      const raw = rawStream(srv.port);
      c.act(raw);
      const st = await raw.status;
      assert.equal(st.code, c.status, `${c.what}: ${grpc.status[st.code]} ${st.details}`);
      await eventually(`${c.what} is logged`, () => srv.log.lines.length > before);
      const lines = srv.log.lines.slice(before).filter((l) => l.msg === 'xDS stream refused');
      assert.equal(lines.length, 1, `${c.what}: one log line`);
      assert.equal(lines[0]?.code, c.code, c.what);
    }

    // A message past the size budget is refused by grpc-js from its length prefix, before it is buffered; the
    // handler only learns "cancelled", and logs that.
    const beforeBig = srv.log.lines.length;
    const big = rawStream(srv.port);
    big.sendBytes(new Uint8Array(128 * 1024));
    assert.equal((await big.status).code, grpc.status.RESOURCE_EXHAUSTED);
    await eventually('the cancelled stream is logged', () => srv.log.lines.slice(beforeBig).some((l) => l.code === 'XDS_CANCELLED'));

    // SotW is not served.
    const sotw = rawStream(srv.port, ZTUNNEL_TOKEN, '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources');
    sotw.sendBytes(new Uint8Array(0));
    assert.equal((await sotw.status).code, grpc.status.UNIMPLEMENTED);

    // The well-behaved proxy is still served.
    const mark = proxy.events.length;
    srv.source.upsert(ADDR, workload('e', 'e1'));
    srv.running.xds.push({ typeUrls: new Set([ADDR]), reason: 'pod-update' });
    await proxy.waitFor((e) => e.kind === 'response' && e.typeUrl === ADDR, mark);
    assert.equal(proxy.applied.get(ADDR)?.get(uid('e')), 'e1');
    assert.equal(client.connected, true);
    await eventually('hostile streams are gone', () => srv.status().length === 1);
    assert.equal(srv.counters.opened - srv.counters.closed, 1);
  });
});

describe('xDS client reconnect backoff', () => {
  async function freePort(): Promise<number> {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }

  it('grows from 10 ms to the 15 s cap while the control plane is down and resets after a successful session', async () => {
    const port = await freePort();
    const clock = new FakeClock();
    const { proxy } = connect(port, { clock, random: () => 0.5 });
    const delays: number[] = [];
    let from = 0;
    for (let i = 0; i < 13; i++) {
      const e = await proxy.waitFor((x) => x.kind === 'disconnected', from);
      assert.ok(e.kind === 'disconnected');
      assert.equal(e.graceful, false);
      assert.equal(e.code, 'XDS_STREAM_FAILED');
      assert.equal(e.grpcStatus, grpc.status.UNAVAILABLE);
      assert.match(e.details, /ECONNREFUSED|No connection established/);
      delays.push(e.retryInMs);
      assert.equal(clock.pending, 1, 'exactly one reconnect is scheduled');
      from = proxy.events.length;
      if (i < 12) await clock.advance(e.retryInMs);
    }
    assert.deepEqual(delays, [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 15000, 15000]);

    // The control plane comes back: the next attempt (after the capped wait) connects and syncs.
    const srv = await startServer({ port });
    let mark = proxy.events.length;
    await clock.advance(delays[12] as number);
    await proxy.waitFor((x) => x.kind === 'synced', mark);

    // A graceful close after success: back to the initial delay, then doubling again from there.
    mark = proxy.events.length;
    await srv.running.close(500);
    const graceful = await proxy.waitFor((x) => x.kind === 'disconnected', mark);
    assert.ok(graceful.kind === 'disconnected' && graceful.graceful);
    assert.equal(graceful.retryInMs, 10);
    const after: number[] = [];
    for (let i = 0; i < 3; i++) {
      const from = proxy.events.length;
      await clock.advance(i === 0 ? graceful.retryInMs : (after[i - 1] as number));
      const e = await proxy.waitFor((x) => x.kind === 'disconnected', from);
      assert.ok(e.kind === 'disconnected');
      after.push(e.retryInMs);
    }
    assert.deepEqual(after, [10, 20, 40]);
  });
});
