/** Node ids and metadata both ways (ztunnelNode -> parseProxyNode), Struct conversion, and the client's reconnect timing rules. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { envoy } from '../../lib/proto/index.js';
import { reconnectDelayMs } from '../../lib/xds/backoff.js';
import { ztunnelNode } from '../../lib/xds/node.js';
import { isGracefulEnd } from '../../lib/xds/protocol.js';
import { fromStruct, toStruct } from '../../lib/xds/struct.js';
import { type ProxyConnectionFacts, parseProxyNode } from '../../controller/xds/proxy.js';

const facts: ProxyConnectionFacts = {
  caller: { authSource: 'test', identities: ['spiffe://cluster.local/ns/istio-system/sa/ztunnel'] },
  connectionId: (id) => `${id}-1`,
  peerAddress: '10.0.0.5:40000',
  connectedAt: 42,
};

describe('ztunnel node', () => {
  it("builds Istio's id format and metadata keys", () => {
    const node = ztunnelNode({ ip: '10.0.0.5', podName: 'ztunnel-abc', podNamespace: 'istio-system', nodeName: 'node-1', clusterId: 'c1' });
    assert.equal(node.id, 'ztunnel~10.0.0.5~ztunnel-abc.istio-system~istio-system.svc.cluster.local');
    assert.deepEqual(fromStruct(node.metadata), {
      NAME: 'ztunnel-abc',
      NAMESPACE: 'istio-system',
      INSTANCE_IPS: '10.0.0.5',
      NODE_NAME: 'node-1',
      CLUSTER_ID: 'c1',
    });
  });

  it('defaults the IP to 1.1.1.1 and the cluster to Kubernetes, as ztunnel', () => {
    const node = ztunnelNode({ podName: 'z', podNamespace: 'istio-system', nodeName: 'n' });
    assert.match(node.id ?? '', /^ztunnel~1\.1\.1\.1~/);
    assert.equal(fromStruct(node.metadata).CLUSTER_ID, 'Kubernetes');
  });

  it('survives the wire and parses into a ProxyInfo', () => {
    const node = ztunnelNode({
      ip: '10.0.0.5',
      podName: 'ztunnel-abc',
      podNamespace: 'istio-system',
      nodeName: 'node-1',
      clusterId: 'c1',
      metadata: { EXTRA: { a: [1, true, null] } },
    });
    const wire = envoy.config.core.v3.Node.decode(envoy.config.core.v3.Node.encode(node).finish());
    const p = parseProxyNode(wire, facts);
    assert.equal(p.type, 'ztunnel');
    assert.equal(p.id, 'ztunnel-abc.istio-system');
    assert.equal(p.podName, 'ztunnel-abc');
    assert.equal(p.namespace, 'istio-system');
    assert.equal(p.dnsDomain, 'istio-system.svc.cluster.local');
    assert.deepEqual(p.ipAddresses, ['10.0.0.5']);
    assert.equal(p.nodeName, 'node-1');
    assert.equal(p.clusterId, 'c1');
    assert.equal(p.connectionId, 'ztunnel-abc.istio-system-1');
    assert.deepEqual(p.metadata.EXTRA, { a: [1, true, null] });
    assert.ok(Object.isFrozen(p));
  });
});

describe('parsing a Node', () => {
  it('takes IPs from INSTANCE_IPS, the namespace from the id without NAMESPACE, the cluster from the header', () => {
    const p = parseProxyNode(
      {
        id: 'sidecar~10.1.1.1~productpage-v1-123.bookinfo~bookinfo.svc.cluster.local',
        metadata: toStruct({ INSTANCE_IPS: '10.1.1.1,fd00::1' }),
      },
      { ...facts, clusterIdHeader: 'east' },
    );
    assert.deepEqual(p.ipAddresses, ['10.1.1.1', 'fd00::1']);
    assert.equal(p.namespace, 'bookinfo');
    assert.equal(p.podName, 'productpage-v1-123');
    assert.equal(p.clusterId, 'east');
  });

  const bad: Array<[string, envoy.config.core.v3.Node.$Properties | undefined, RegExp]> = [
    ['no node', undefined, /missing node information/],
    ['an empty id', { id: '' }, /missing node information/],
    ['three parts', { id: 'ztunnel~1.2.3.4~z.ns' }, /4 parts/],
    ['an unknown proxy type', { id: 'gateway~1.2.3.4~z.ns~ns.svc.cluster.local' }, /unknown proxy type "gateway"/],
    ['no valid IP', { id: 'ztunnel~not-an-ip~z.ns~ns.svc.cluster.local' }, /no valid IP/],
    ['an empty proxy id', { id: 'ztunnel~1.2.3.4~~ns.svc.cluster.local' }, /empty proxy id/],
  ];
  for (const [what, node, msg] of bad) {
    it(`refuses ${what} with XDS_BAD_NODE`, () => {
      assert.throws(
        () => parseProxyNode(node, facts),
        (err: unknown) => {
          assert.equal((err as { code?: string }).code, 'XDS_BAD_NODE');
          assert.match((err as Error).message, msg);
          return true;
        },
      );
    });
  }

  it('drops prototype-polluting metadata keys and cuts absurd nesting', () => {
    let deep: envoy.config.core.v3.Node.$Properties['metadata'] = { fields: {} };
    for (let i = 0; i < 100; i++) deep = { fields: { x: { structValue: deep } } };
    const p = parseProxyNode(
      {
        id: 'ztunnel~1.2.3.4~z.ns~ns.svc.cluster.local',
        metadata: { fields: { ['__proto__']: { stringValue: 'x' }, constructor: { stringValue: 'y' }, DEEP: { structValue: deep } } },
      },
      facts,
    );
    assert.equal(Object.getPrototypeOf(p.metadata), Object.prototype);
    assert.deepEqual(Object.keys(p.metadata), ['DEEP']);
    let depth = 0;
    for (let v: unknown = p.metadata.DEEP; v !== null && typeof v === 'object'; v = (v as Record<string, unknown>).x) depth++;
    assert.ok(depth <= 17, `depth ${depth}`);
  });
});

describe('reconnect timing', () => {
  it('doubles from 10 ms to the 15 s cap, with the initial delay after a graceful close', () => {
    const half = (): number => 0.5; // no jitter
    const delays = Array.from({ length: 14 }, (_, i) => reconnectDelayMs(i + 1, half));
    assert.deepEqual(delays, [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 15000, 15000, 15000]);
    assert.equal(reconnectDelayMs(0, half), 10);
  });

  it('keeps jitter within ±10% and never above the cap', () => {
    assert.equal(
      reconnectDelayMs(1, () => 0),
      9,
    );
    assert.equal(
      reconnectDelayMs(1, () => 0.999999),
      11,
    );
    assert.equal(
      reconnectDelayMs(30, () => 0.999999),
      15000,
    );
  });

  const table: Array<[status, boolean, boolean]> = [
    [status.OK, false, true],
    [status.OK, true, true],
    [status.UNAVAILABLE, false, false],
    [status.UNAVAILABLE, true, true],
    [status.CANCELLED, true, true],
    [status.UNAUTHENTICATED, true, false],
    [status.INVALID_ARGUMENT, true, false],
    [status.INTERNAL, true, false],
  ];
  for (const [code, established, want] of table) {
    it(`${status[code]} on a stream ${established ? 'that had answered' : 'that never answered'} is ${want ? 'graceful' : 'a failure'}`, () => {
      assert.equal(isGracefulEnd(code, established), want);
    });
  }
});
