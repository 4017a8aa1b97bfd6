/**
 * The fake-node library's pure parts: the address plan, CNI configuration derivation (CNI spec 1.0.0 §3) and
 * result handling, and the pcap reader. The kernel-level behaviour is in test/fakenode/harness.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasErrorCode } from '../../lib/errors.js';
import { deriveExecConfig, formatCniArgs, parseCniResult, validatePluginConfig, type CniResult } from '../../testbed/fakenode/cni.js';
import { flowPayloads, parsePcap } from '../../testbed/fakenode/pcap.js';
import { hostIfName, ownerPrefix, planCluster, podNetnsName } from '../../testbed/fakenode/plan.js';
import { podAddressFromResult, podNetworkList, pluginSearch } from '../../testbed/fakenode/pod.js';

describe('fake-node address plan', () => {
  it('gives node i the address .i on the switch and the i-th /24 of the pod CIDR base, with routes to every other node', () => {
    const plan = planCluster({ name: 'demo', nodes: 3, stateRoot: '/tmp/fn' });
    assert.equal(plan.prefix, 'fn-demo');
    assert.equal(plan.stateDir, '/tmp/fn/fn-demo');
    assert.equal(plan.switchNetns, 'fn-demo.switch');
    assert.deepEqual(
      plan.nodes.map((n) => [n.name, n.netns, n.ip, n.podCidr, n.podGateway]),
      [
        ['node-1', 'fn-demo.node-1', '172.30.0.1', '10.244.1.0/24', '10.244.1.1'],
        ['node-2', 'fn-demo.node-2', '172.30.0.2', '10.244.2.0/24', '10.244.2.1'],
        ['node-3', 'fn-demo.node-3', '172.30.0.3', '10.244.3.0/24', '10.244.3.1'],
      ],
    );
    assert.deepEqual(plan.nodes[1]?.routes, [
      { dst: '10.244.1.0/24', via: '172.30.0.1' },
      { dst: '10.244.3.0/24', via: '172.30.0.3' },
    ]);
    assert.equal(plan.host, undefined);
  });

  it('honours other bases and puts the host at .254 with a short interface name', () => {
    const plan = planCluster({ name: 'x', nodes: 2, podCidrBase: '10.8.0.0/14', nodeSubnet: '192.168.50.0/24', hostLink: true });
    assert.deepEqual(
      plan.nodes.map((n) => [n.ip, n.podCidr]),
      [
        ['192.168.50.1', '10.8.1.0/24'],
        ['192.168.50.2', '10.8.2.0/24'],
      ],
    );
    assert.equal(plan.host?.ip, '192.168.50.254');
    assert.match(plan.host?.ifName ?? '', /^fnh[0-9a-f]{8}$/);
    assert.equal(hostIfName('fn-x'), plan.host?.ifName, 'stable for a prefix');
  });

  const rejected: ReadonlyArray<[string, Parameters<typeof planCluster>[0]]> = [
    ['upper case', { name: 'Demo', nodes: 1 }],
    ['a dot (it separates the owner prefix)', { name: 'a.b', nodes: 1 }],
    ['zero nodes', { name: 'a', nodes: 0 }],
    ['a pod base too small for the nodes', { name: 'a', nodes: 2, podCidrBase: '10.0.0.0/23' }],
    ['host bits in a CIDR', { name: 'a', nodes: 1, podCidrBase: '10.244.1.0/16' }],
    ['a node subnet smaller than /24', { name: 'a', nodes: 1, nodeSubnet: '172.30.0.0/25' }],
    ['a malformed CIDR', { name: 'a', nodes: 1, nodeSubnet: '172.30.0/24' }],
  ];
  for (const [why, opts] of rejected) {
    it(`rejects ${why}`, () => {
      assert.throws(
        () => planCluster(opts),
        (e: unknown) => hasErrorCode(e, 'FAKENODE_INVALID_ARGUMENT'),
      );
    });
  }

  it('names pod namespaces so that the owning cluster is the text before the first dot', () => {
    const ns = podNetnsName('fn-my-cluster', 'default', 'web-0.v2');
    assert.equal(ns, 'fn-my-cluster.pod.default.web-0.v2');
    assert.equal(ownerPrefix(ns), 'fn-my-cluster');
    assert.equal(ownerPrefix('fn-my-cluster'), 'fn-my-cluster');
  });
});

describe('CNI execution configuration (CNI spec 1.0.0 §3)', () => {
  const prev: CniResult = {
    cniVersion: '1.0.0',
    interfaces: [
      { name: 'cni0', mac: '00:11:22:33:44:55' },
      { name: 'eth0', mac: '99:88:77:66:55:44', sandbox: '/run/netns/blue' },
    ],
    ips: [{ address: '10.1.0.5/16', gateway: '10.1.0.1', interface: 1 }],
  };

  it('inserts cniVersion, name, runtimeConfig and prevResult, removes capabilities and passes the rest through', () => {
    const derived = deriveExecConfig(
      { cniVersion: '1.0.0', name: 'dbnet' },
      { type: 'portmap', capabilities: { portMappings: true, mac: false }, snat: true, nested: { a: [1] } },
      prev,
      { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }], mac: '00:11:22:33:44:66', bandwidth: {} },
    );
    assert.deepEqual(derived, {
      type: 'portmap',
      snat: true,
      nested: { a: [1] },
      cniVersion: '1.0.0',
      name: 'dbnet',
      runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
      prevResult: prev,
    });
  });

  it('omits runtimeConfig when no declared capability is offered and prevResult for the first plugin', () => {
    assert.deepEqual(deriveExecConfig({ cniVersion: '1.0.0', name: 'n' }, { type: 'bridge', bridge: 'cni0' }, undefined), {
      type: 'bridge',
      bridge: 'cni0',
      cniVersion: '1.0.0',
      name: 'n',
    });
  });

  it('rejects plugin configurations that set keys the runtime owns', () => {
    for (const key of ['cniVersion', 'name', 'prevResult', 'runtimeConfig', 'args']) {
      assert.throws(
        () => validatePluginConfig({ type: 'x', [key]: 'v' }),
        (e: unknown) => hasErrorCode(e, 'FAKENODE_INVALID_ARGUMENT'),
        key,
      );
    }
    assert.throws(
      () => validatePluginConfig({ type: '../bin/x' }),
      (e: unknown) => hasErrorCode(e, 'FAKENODE_INVALID_ARGUMENT'),
    );
  });

  it('formats CNI_ARGS and refuses separators inside keys or values', () => {
    assert.equal(
      formatCniArgs([
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAME', 'web'],
      ]),
      'IgnoreUnknown=1;K8S_POD_NAME=web',
    );
    assert.throws(
      () => formatCniArgs([['K', 'a;b']]),
      (e: unknown) => hasErrorCode(e, 'FAKENODE_INVALID_ARGUMENT'),
    );
  });

  it('parses a success result and keeps unknown keys; rejects malformed ones with FAKENODE_CNI_BAD_RESULT', () => {
    const r = parseCniResult(JSON.stringify({ ...prev, 'cni.dev/extra': 1 }), 'bridge');
    assert.equal(r['cni.dev/extra'], 1);
    for (const bad of ['', 'null', '{}', '{"cniVersion":"1.0.0","ips":[{"gateway":"x"}]}', '{"cniVersion":"1.0.0","interfaces":{}}']) {
      assert.throws(
        () => parseCniResult(bad, 'bridge'),
        (e: unknown) => hasErrorCode(e, 'FAKENODE_CNI_BAD_RESULT'),
        bad,
      );
    }
  });

  it("takes the pod IP from the eth0 interface in the pod's sandbox", () => {
    assert.deepEqual(podAddressFromResult(prev, '/run/netns/blue'), { address: '10.1.0.5/16', gateway: '10.1.0.1' });
    const dual: CniResult = {
      cniVersion: '1.0.0',
      interfaces: prev.interfaces,
      ips: [
        { address: 'fd00::5/64', interface: 1 },
        { address: '192.168.9.9/32', interface: 0 },
        { address: '10.1.0.6/16', interface: 1 },
      ],
    };
    assert.equal(podAddressFromResult(dual, '/run/netns/blue')?.address, '10.1.0.6/16');
    assert.equal(podAddressFromResult({ cniVersion: '1.0.0' }, '/run/netns/blue'), undefined);
  });

  it('builds the pod network as bridge + host-local followed by the chained plugins, with their directories in CNI_PATH', () => {
    const chain = [{ type: 'mesh-cni', path: '/opt/mesh/bin/mesh-cni', config: { cni_event_address: '/var/run/x.sock' } }];
    const list = podNetworkList({ podCidr: '10.244.1.0/24', podGateway: '10.244.1.1', ipamDataDir: '/s/ipam' }, chain);
    assert.equal(list.name, 'fakenode');
    assert.deepEqual(
      list.plugins.map((p) => p.type),
      ['bridge', 'mesh-cni'],
    );
    assert.deepEqual(list.plugins[0], {
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      ipMasq: false,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: '10.244.1.0/24', gateway: '10.244.1.1' }]],
        routes: [{ dst: '0.0.0.0/0' }],
        dataDir: '/s/ipam',
      },
    });
    assert.deepEqual(list.plugins[1], { type: 'mesh-cni', cni_event_address: '/var/run/x.sock' });
    const search = pluginSearch('/usr/lib/cni', chain);
    assert.deepEqual(search.cniPath, ['/usr/lib/cni', '/opt/mesh/bin']);
    assert.equal(search.pluginPaths.get('mesh-cni'), '/opt/mesh/bin/mesh-cni');
    assert.throws(
      () => pluginSearch('/usr/lib/cni', [...chain, { type: 'mesh-cni', path: '/other/mesh-cni' }]),
      (e: unknown) => hasErrorCode(e, 'FAKENODE_INVALID_ARGUMENT'),
    );
  });
});

/** A pcap file (little-endian, microseconds, Ethernet) holding the given frames. */
function pcapFile(frames: Buffer[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  const records = frames.map((f, i) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(1_700_000_000 + i, 0);
    h.writeUInt32LE(500, 4);
    h.writeUInt32LE(f.length, 8);
    h.writeUInt32LE(f.length, 12);
    return Buffer.concat([h, f]);
  });
  return Buffer.concat([header, ...records]);
}

function tcpFrame(src: string, dst: string, sport: number, dport: number, seq: number, payload: string): Buffer {
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  const data = Buffer.from(payload);
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(20 + 20 + data.length, 2);
  ip.writeUInt8(64, 8);
  ip.writeUInt8(6, 9);
  for (const [i, o] of src.split('.').entries()) ip.writeUInt8(Number(o), 12 + i);
  for (const [i, o] of dst.split('.').entries()) ip.writeUInt8(Number(o), 16 + i);
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(sport, 0);
  tcp.writeUInt16BE(dport, 2);
  tcp.writeUInt32BE(seq, 4);
  tcp.writeUInt8(5 << 4, 12);
  tcp.writeUInt8(0x18, 13);
  return Buffer.concat([eth, ip, tcp, data]);
}

describe('pcap reader', () => {
  it('reads IPv4/TCP frames with addresses, ports, flags and payloads, and joins flows without retransmissions', () => {
    const file = pcapFile([
      tcpFrame('10.244.1.2', '10.244.2.2', 40000, 80, 1, 'GET / HT'),
      tcpFrame('10.244.1.2', '10.244.2.2', 40000, 80, 9, 'TP/1.1\r\n'),
      tcpFrame('10.244.1.2', '10.244.2.2', 40000, 80, 9, 'TP/1.1\r\n'),
      tcpFrame('10.244.2.2', '10.244.1.2', 80, 40000, 100, 'HTTP/1.1 200 OK'),
    ]);
    const packets = parsePcap(file);
    assert.equal(packets.length, 4);
    assert.deepEqual(
      [packets[0]?.src, packets[0]?.dst, packets[0]?.srcPort, packets[0]?.dstPort, packets[0]?.protocol, packets[0]?.tcpFlags],
      ['10.244.1.2', '10.244.2.2', 40000, 80, 'tcp', 0x18],
    );
    assert.equal(packets[0]?.timestampUs, 1_700_000_000_000_500);
    const flows = flowPayloads(packets);
    assert.equal(flows.get('10.244.1.2:40000>10.244.2.2:80')?.toString(), 'GET / HTTP/1.1\r\n');
    assert.equal(flows.get('10.244.2.2:80>10.244.1.2:40000')?.toString(), 'HTTP/1.1 200 OK');
  });

  it('ignores a truncated last record and rejects files that are not pcap', () => {
    const file = pcapFile([tcpFrame('1.1.1.1', '2.2.2.2', 1, 2, 0, 'x')]);
    assert.equal(parsePcap(file.subarray(0, file.length - 3)).length, 0);
    assert.equal(parsePcap(Buffer.alloc(0)).length, 0);
    assert.throws(() => parsePcap(Buffer.alloc(40, 1)), /not a pcap file/);
  });
});
