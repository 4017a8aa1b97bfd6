/**
 * The fake-node harness against the real kernel: namespaces as nodes and pods, Debian's reference CNI plugins
 * invoked per CNI spec 1.0.0, real nginx/curl/tcpdump. Needs root (fails, never skips).
 * Clusters are named harness-*-<pid>; every test removes what it made, and the last check proves it.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { hasErrorCode } from '../../lib/errors.js';
import {
  CniError,
  cleanupStale,
  createCluster,
  curl,
  startEchoServer,
  startNginx,
  tcpRequest,
  type ChainedPlugin,
  type Cluster,
  type CniResult,
} from '../../testbed/fakenode/index.js';
import { ipv4ToInt, parseIpv4Cidr } from '../../testbed/fakenode/plan.js';
import { silentLogger } from '../../testbed/fixtures/log.js';
import { childEnv } from '../../testbed/env.js';

const execFileAsync = promisify(execFile);

function requireRoot(): void {
  assert.equal(
    process.getuid?.(),
    0,
    'the fake-node tests create network namespaces, veth links and CNI state and must run as root (e.g. sudo npm test)',
  );
}

async function sh(cmd: string, ...args: string[]): Promise<string> {
  return (await execFileAsync(cmd, args, { encoding: 'utf8' })).stdout;
}

async function netnsNames(): Promise<string[]> {
  return (await sh('ip', 'netns', 'list'))
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n !== '');
}

function inCidr(ip: string, cidr: string): boolean {
  const { network, prefixLength } = parseIpv4Cidr(cidr);
  return Math.floor(ipv4ToInt(ip) / 2 ** (32 - prefixLength)) === network / 2 ** (32 - prefixLength);
}

/** Pids of processes whose environment marks them as started for `prefix` (FAKENODE_CLUSTER). */
function markedPids(prefix: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/environ`, 'latin1').split('\0').includes(`FAKENODE_CLUSTER=${prefix}`)) pids.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/**
 * Every process of a cluster: those carrying its marker, plus everything running inside its namespaces
 * (nginx rewrites its environment area for its process title, so the marker alone does not find it).
 */
async function clusterPids(prefix: string): Promise<number[]> {
  const pids = new Set(markedPids(prefix));
  for (const ns of (await netnsNames()).filter((n) => n.startsWith(`${prefix}.`))) {
    for (const p of (await sh('ip', 'netns', 'pids', ns)).split('\n').filter((l) => /^\d+$/.test(l))) pids.add(Number(p));
  }
  return [...pids].sort((a, b) => a - b);
}

/** The pids that still run (a zombie waiting for init to reap it has exited). */
function alive(pids: readonly number[]): number[] {
  return pids.filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
      return false;
    }
  });
}

async function hostLinksWithAlias(prefix: string): Promise<string[]> {
  const links = JSON.parse(await sh('ip', '-j', 'link', 'show')) as { ifname: string; ifalias?: string }[];
  return links.filter((l) => l.ifalias === prefix).map((l) => l.ifname);
}

/** The same checks every teardown test makes: nothing named after the cluster is left anywhere. */
async function assertNothingLeft(prefix: string, stateDir: string): Promise<void> {
  assert.deepEqual(
    (await netnsNames()).filter((n) => n.startsWith(`${prefix}.`)),
    [],
    'no namespaces left',
  );
  assert.deepEqual(await hostLinksWithAlias(prefix), [], 'no host links left');
  assert.deepEqual(markedPids(prefix), [], 'no processes left');
  assert.equal(existsSync(stateDir), false, 'no state directory left');
}

/**
 * A chained CNI plugin that records every invocation (stdin config, CNI_* environment, its network
 * namespace) to `record_file` and behaves as the spec asks: on ADD it prints its prevResult unchanged; it can
 * be told to fail with an error result.
 */
function writeRecordingPlugin(dir: string, type: string): string {
  const path = join(dir, type);
  writeFileSync(
    path,
    `#!${process.execPath}
const fs = require('node:fs');
let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const conf = JSON.parse(input);
  const env = {};
  for (const k of Object.keys(process.env)) if (k.startsWith('CNI_')) env[k] = process.env[k];
  fs.appendFileSync(conf.record_file, JSON.stringify({ type: conf.type, command: env.CNI_COMMAND, env, conf,
    netns: fs.readlinkSync('/proc/self/ns/net') }) + '\\n');
  if (conf.fail_on === env.CNI_COMMAND) {
    process.stdout.write(JSON.stringify({ cniVersion: conf.cniVersion, code: 101, msg: 'mesh agent unreachable',
      details: 'dial unix /var/run/nowhere.sock: connect: no such file or directory' }));
    process.exit(1);
  }
  if (env.CNI_COMMAND === 'ADD') process.stdout.write(JSON.stringify(conf.prevResult));
});
`,
  );
  chmodSync(path, 0o755);
  return path;
}

interface Invocation {
  type: string;
  command: string;
  env: Record<string, string>;
  conf: Record<string, unknown> & { prevResult?: CniResult };
  netns: string;
}

function readInvocations(file: string): Invocation[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Invocation);
}

/**
 * Starts another Node process that builds a cluster (a pod on the last node running nginx, a sleep on
 * node 1) and then waits, or exits on its own when `exitCode` is given. Resolves once the cluster is up.
 */
async function startChildRun(name: string, opts: { nodes: number; hostLink?: boolean; exitCode?: number }): Promise<ChildProcess> {
  const lib = fileURLToPath(new URL('../../testbed/fakenode/index.js', import.meta.url));
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
    const f = await import(${JSON.stringify(lib)});
    const c = await f.createCluster({ name: ${JSON.stringify(name)}, nodes: ${opts.nodes}, hostLink: ${opts.hostLink === true} });
    const p = await c.createPod(c.node(${opts.nodes}), { namespace: 'default', name: 'app' });
    await f.startNginx(p, { port: 80 });
    c.node(1).spawn('sleep', ['600']);
    process.stdout.write('READY\\n');
    ${opts.exitCode === undefined ? 'setInterval(() => {}, 1000);' : `setTimeout(() => process.exit(${opts.exitCode}), 50);`}
  `,
    ],
    { env: childEnv({ LOG_LEVEL: 'silent' }), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('READY')) resolve();
    });
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => reject(new Error(`the child run exited before its cluster was up (${code}): ${output}`)));
  });
  return child;
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('fake-node cluster: two nodes, pods made by the CNI reference plugins', () => {
  let cluster: Cluster;
  let work: string;

  before(async () => {
    requireRoot();
    work = mkdtempSync(join(tmpdir(), 'fakenode-harness-'));
    cluster = await createCluster({ name: `harness-${process.pid}`, nodes: 2, logger: silentLogger() });
  });

  after(async () => {
    await cluster?.destroy();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  test("each pod gets an address from its node's pod CIDR via host-local, an eth0, a lo that is up, and a default route via cni0", async () => {
    const [a, b] = await Promise.all([
      cluster.createPod(cluster.node(1), { namespace: 'default', name: 'addr-a' }),
      cluster.createPod(cluster.node(2), { namespace: 'default', name: 'addr-b' }),
    ]);
    for (const [pod, node] of [
      [a, cluster.node(1)],
      [b, cluster.node(2)],
    ] as const) {
      assert.ok(inCidr(pod.ip, node.podCidr), `${pod.ip} is in ${node.podCidr}`);
      assert.equal(pod.gateway, node.podGateway);
      assert.equal(pod.nodeName, node.name);
      const links = JSON.parse((await pod.execChecked('ip', ['-j', 'addr', 'show'])).trim()) as {
        ifname: string;
        operstate: string;
        flags: string[];
        addr_info: { family: string; local: string; prefixlen: number }[];
      }[];
      const eth0 = links.find((l) => l.ifname === 'eth0');
      assert.ok(eth0, 'eth0 exists in the pod');
      assert.ok(eth0.flags.includes('UP'));
      assert.deepEqual(
        eth0.addr_info.filter((x) => x.family === 'inet').map((x) => `${x.local}/${x.prefixlen}`),
        [pod.ipCidr],
      );
      const lo = links.find((l) => l.ifname === 'lo');
      assert.ok(lo?.flags.includes('UP'), 'the loopback plugin brought lo up');
      assert.ok(lo?.addr_info.some((x) => x.local === '127.0.0.1'));
      const routes = JSON.parse(await pod.execChecked('ip', ['-j', 'route', 'show', 'default'])) as { gateway?: string; dev: string }[];
      assert.deepEqual(
        routes.map((r) => [r.gateway, r.dev]),
        [[node.podGateway, 'eth0']],
      );
      // The gateway is the bridge the plugin made in the node namespace.
      assert.match(
        await node.execChecked('ip', ['-br', 'addr', 'show', 'cni0']),
        new RegExp(`${node.podGateway.replace(/\./g, '\\.')}/24`),
      );
      // host-local recorded the allocation under the node's dataDir, keyed by the sandbox id.
      assert.ok((await node.allocatedPodIps()).includes(pod.ip));
      assert.match(readFileSync(join(node.ipamDataDir, 'fakenode', pod.ip), 'utf8'), new RegExp(`^${pod.containerId}\\s+eth0`));
      assert.equal(pod.cniResult.cniVersion, '1.0.0');
    }
    await Promise.all([cluster.deletePod(a), cluster.deletePod(b)]);
  });

  test("curl from a pod on node 1 to nginx in a pod on node 2 gets the body, and nginx sees the client's pod IP", async () => {
    const client = await cluster.createPod(cluster.node(1), { namespace: 'default', name: 'client' });
    const server = await cluster.createPod(cluster.node(2), { namespace: 'apps', name: 'web', serviceAccount: 'web' });
    try {
      const nginx = await startNginx(server, { port: 8080, body: 'the known body\n' });
      const res = await curl(client, `http://${server.ip}:8080/some/path`, { maxTimeSeconds: 5 });
      assert.equal(res.exitCode, 0, res.errorMessage);
      assert.equal(res.status, 200);
      assert.equal(res.body, 'the known body\n');
      assert.equal(res.headers['x-client-addr'], client.ip, 'no masquerade: the server sees the pod IP');
      assert.equal(res.remoteIp, server.ip);
      assert.equal(res.localIp, client.ip);
      const log = await nginx.accessLog();
      assert.equal(log.length, 1);
      assert.equal(log[0]?.remoteAddr, client.ip);
      assert.equal(log[0]?.remotePort, res.localPort);
      assert.equal(log[0]?.request, 'GET /some/path HTTP/1.1');
      const who = JSON.parse((await curl(client, `http://${server.ip}:8080/whoami`)).body) as { remote_addr: string; server_addr: string };
      assert.deepEqual([who.remote_addr, who.server_addr], [client.ip, server.ip]);
      // Nothing listens on 8081: curl reports it instead of throwing.
      const refused = await curl(client, `http://${server.ip}:8081/`, { maxTimeSeconds: 5 });
      assert.equal(refused.exitCode, 7);
      assert.equal(refused.status, 0);
    } finally {
      await Promise.all([cluster.deletePod(client), cluster.deletePod(server)]);
    }
  });

  test("two pods on the same node reach each other over the node's bridge", async () => {
    const node = cluster.node(1);
    const [a, b] = await Promise.all([
      cluster.createPod(node, { namespace: 'default', name: 'same-a' }),
      cluster.createPod(node, { namespace: 'default', name: 'same-b' }),
    ]);
    try {
      assert.notEqual(a.ip, b.ip);
      await startNginx(b, { port: 80 });
      const res = await curl(a, `http://${b.ip}/`);
      assert.equal(res.status, 200);
      assert.equal(res.body, 'hello from default/same-b\n');
      assert.equal(res.headers['x-client-addr'], a.ip);
    } finally {
      await Promise.all([cluster.deletePod(a), cluster.deletePod(b)]);
    }
  });

  test('captureOnNodeLink sees cross-node traffic in plaintext on the uplink, and not same-node traffic', async () => {
    const n1 = cluster.node(1);
    const [client, local, remote] = await Promise.all([
      cluster.createPod(n1, { namespace: 'default', name: 'cap-client' }),
      cluster.createPod(n1, { namespace: 'default', name: 'cap-local' }),
      cluster.createPod(cluster.node(2), { namespace: 'default', name: 'cap-remote' }),
    ]);
    try {
      await startNginx(remote, { port: 8080, body: 'secret-cross-node-body\n' });
      await startNginx(local, { port: 8080, body: 'secret-same-node-body\n' });
      const capture = await cluster.captureOnNodeLink(n1, 'tcp port 8080');
      const res = await curl(client, `http://${remote.ip}:8080/`);
      const same = await curl(client, `http://${local.ip}:8080/`);
      const seen = await capture.stop();
      assert.equal(res.status, 200);
      assert.equal(same.status, 200);
      assert.ok(seen.contains('secret-cross-node-body'), 'the response body crossed the wire in plaintext');
      assert.ok(seen.contains('GET / HTTP/1.1'), 'so did the request');
      assert.equal(seen.contains('secret-same-node-body'), false, 'same-node traffic stays on the node bridge');
      const toServer = seen.packets.filter((p) => p.dstPort === 8080);
      assert.ok(toServer.length > 0);
      for (const p of toServer) assert.deepEqual([p.src, p.dst], [client.ip, remote.ip], 'pod addresses on the wire, routed not NATed');
      assert.ok(seen.wireBytes > seen.payloadBytes && seen.payloadBytes > 0);
      assert.ok(seen.flows.get(`${remote.ip}:8080>${client.ip}:${res.localPort}`)?.includes('secret-cross-node-body'));
      assert.equal(await capture.stop(), seen, 'stop() is idempotent');
    } finally {
      await Promise.all([client, local, remote].map((p) => cluster.deletePod(p)));
    }
  });

  test('the echo server reports the peer address and port it saw and echoes bytes back', async () => {
    const [a, b] = await Promise.all([
      cluster.createPod(cluster.node(1), { namespace: 'default', name: 'echo-client' }),
      cluster.createPod(cluster.node(2), { namespace: 'default', name: 'echo-server' }),
    ]);
    try {
      const echo = await startEchoServer(b, 9000);
      const r = await tcpRequest(a, b.ip, 9000, { send: 'ping over the wire' });
      assert.ok(r.ok, r.error);
      const [greeting, ...rest] = r.received.split('\n');
      const saw = JSON.parse(greeting ?? '') as { peer: { address: string; port: number } };
      assert.deepEqual(saw.peer, { address: a.ip, port: r.localPort });
      assert.equal(rest.join('\n'), 'ping over the wire');
      assert.deepEqual(
        echo.connections().map((c) => c.peer.address),
        [a.ip],
      );
      const quiet = await startEchoServer(b, 9001, { greeting: false });
      assert.equal((await tcpRequest(a, b.ip, 9001, { send: 'just echo' })).received, 'just echo');
      await quiet.stop();
      const refused = await tcpRequest(a, b.ip, 9001, { send: 'x', timeoutMs: 3000 });
      assert.deepEqual([refused.ok, refused.error], [false, 'ECONNREFUSED']);
    } finally {
      await Promise.all([cluster.deletePod(a), cluster.deletePod(b)]);
    }
  });

  test('chained plugins run after bridge in the node namespace with the CNI 1.0.0 environment, stdin and prevResult; DEL runs in reverse with the cached result', async () => {
    const bin = join(work, 'bin');
    rmSync(bin, { recursive: true, force: true });
    mkdirSync(bin, { recursive: true });
    const record = join(work, 'chain.jsonl');
    const chain: ChainedPlugin[] = [
      {
        type: 'record-a',
        path: writeRecordingPlugin(bin, 'record-a'),
        config: { record_file: record, cni_event_address: '/var/run/istio-cni/pluginevent.sock' },
      },
      { type: 'record-b', path: writeRecordingPlugin(bin, 'record-b'), config: { record_file: record } },
    ];
    const node = cluster.node(2);
    const pod = await cluster.createPod(node, {
      namespace: 'mesh',
      name: 'chained',
      uid: '11111111-2222-3333-4444-555555555555',
      chainPlugins: chain,
    });
    const adds = readInvocations(record);
    assert.deepEqual(
      adds.map((i) => `${i.command} ${i.type}`),
      ['ADD record-a', 'ADD record-b'],
    );
    const [addA, addB] = adds as [Invocation, Invocation];
    assert.deepEqual(addA.env, {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: pod.containerId,
      CNI_NETNS: pod.netnsPath,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=mesh;K8S_POD_NAME=chained;K8S_POD_INFRA_CONTAINER_ID=${pod.containerId};K8S_POD_UID=11111111-2222-3333-4444-555555555555`,
      CNI_PATH: `/usr/lib/cni:${bin}`,
    });
    assert.equal(addA.netns, `net:[${statSync(node.netnsPath).ino}]`, "plugins run in the node's network namespace");
    // §3: name and cniVersion inserted, plugin keys passed through unchanged, prevResult = bridge's result.
    assert.equal(addA.conf.name, 'fakenode');
    assert.equal(addA.conf.cniVersion, '1.0.0');
    assert.equal(addA.conf.cni_event_address, '/var/run/istio-cni/pluginevent.sock');
    const bridgeResult = addA.conf.prevResult;
    assert.ok(bridgeResult?.interfaces?.some((i) => i.name === 'eth0' && i.sandbox === pod.netnsPath));
    assert.deepEqual(
      bridgeResult?.ips?.map((ip) => ip.address),
      [pod.ipCidr],
    );
    assert.deepEqual(addB.conf.prevResult, bridgeResult, 'record-a passed its prevResult through, record-b got it');
    assert.deepEqual(pod.cniResult, bridgeResult, "the final result is the last plugin's");
    const cacheFile = join(node.cniCacheDir, `fakenode-${pod.containerId}-eth0.json`);
    assert.deepEqual((JSON.parse(readFileSync(cacheFile, 'utf8')) as { result: unknown }).result, pod.cniResult);

    await cluster.deletePod(pod);
    const dels = readInvocations(record).slice(2);
    assert.deepEqual(
      dels.map((i) => `${i.command} ${i.type}`),
      ['DEL record-b', 'DEL record-a'],
      'reverse order',
    );
    for (const d of dels) {
      assert.deepEqual(d.conf.prevResult, pod.cniResult, 'DEL gets the cached final ADD result');
      assert.equal(d.env.CNI_NETNS, pod.netnsPath, 'the namespace still exists during DEL');
    }
    assert.equal(existsSync(cacheFile), false, 'the cached result is removed after a successful DEL');
    assert.equal((await node.allocatedPodIps()).includes(pod.ip), false, 'bridge DEL released the IP through host-local');
  });

  test('a failing chained plugin surfaces as a CniError with its error result, and the failed pod leaves nothing behind', async () => {
    const bin = join(work, 'bin-fail');
    mkdirSync(bin, { recursive: true });
    const record = join(work, 'fail.jsonl');
    const node = cluster.node(1);
    const before = await node.allocatedPodIps();
    const failing: ChainedPlugin = {
      type: 'mesh-cni',
      path: writeRecordingPlugin(bin, 'mesh-cni'),
      config: { record_file: record, fail_on: 'ADD' },
    };
    const err: unknown = await cluster.createPod(node, { namespace: 'default', name: 'doomed', chainPlugins: [failing] }).then(
      () => assert.fail('createPod should have failed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CniError, String(err));
    assert.equal(err.code, 'FAKENODE_CNI_FAILED');
    assert.deepEqual([err.command, err.plugin, err.network, err.exitCode], ['ADD', 'mesh-cni', 'fakenode', 1]);
    assert.deepEqual(err.cniError, {
      cniVersion: '1.0.0',
      code: 101,
      msg: 'mesh agent unreachable',
      details: 'dial unix /var/run/nowhere.sock: connect: no such file or directory',
    });
    assert.match(err.message, /mesh agent unreachable/);
    // §3: a delete follows a failed add — the plugin got its DEL, bridge released the IP, the netns is gone.
    assert.deepEqual(
      readInvocations(record).map((i) => i.command),
      ['ADD', 'DEL'],
    );
    assert.deepEqual(await node.allocatedPodIps(), before);
    assert.equal(
      (await netnsNames()).some((n) => n.endsWith('.pod.default.doomed')),
      false,
    );
    assert.equal(cluster.findPod('default', 'doomed'), undefined);

    const missing: unknown = await cluster
      .createPod(node, { namespace: 'default', name: 'doomed', chainPlugins: [{ type: 'no-such-plugin' }] })
      .then(
        () => assert.fail('should fail'),
        (e: unknown) => e,
      );
    assert.ok(hasErrorCode(missing, 'FAKENODE_CNI_PLUGIN_NOT_FOUND'), String(missing));
    assert.deepEqual(await node.allocatedPodIps(), before);

    // The name is free again and the node still works.
    const ok = await cluster.createPod(node, { namespace: 'default', name: 'doomed' });
    await assert.rejects(cluster.createPod(node, { namespace: 'default', name: 'doomed' }), (e: unknown) =>
      hasErrorCode(e, 'FAKENODE_POD_EXISTS'),
    );
    await cluster.deletePod(ok);
  });

  test("deletePod stops the pod's processes, deletes its netns and releases its IP; deleting twice is a no-op", async () => {
    const node = cluster.node(2);
    const pod = await cluster.createPod(node, { namespace: 'default', name: 'short-lived' });
    const sleeper = pod.spawn('sleep', ['600']);
    assert.ok((await node.allocatedPodIps()).includes(pod.ip));
    assert.ok((await netnsNames()).includes(pod.netnsName));
    await cluster.deletePod(pod);
    assert.equal((await netnsNames()).includes(pod.netnsName), false, 'netns deleted');
    assert.equal((await node.allocatedPodIps()).includes(pod.ip), false, 'IP released (host-local dataDir no longer lists it)');
    assert.equal(existsSync(join(node.ipamDataDir, 'fakenode', pod.ip)), false);
    assert.equal(sleeper.running, false, "the pod's process was stopped");
    assert.equal(pod.deleted, true);
    assert.equal(cluster.findPod('default', 'short-lived'), undefined);
    await cluster.deletePod(pod);
    // The released address is handed out again later (host-local continues after its last reservation).
    const next = await cluster.createPod(node, { namespace: 'default', name: 'short-lived' });
    assert.ok(inCidr(next.ip, node.podCidr));
    await cluster.deletePod(next);
  });

  test('node.spawn and pod.exec run inside their own namespaces', async () => {
    const node = cluster.node(1);
    const pod = await cluster.createPod(node, { namespace: 'default', name: 'exec' });
    try {
      const r = await pod.exec('ip', ['-4', '-o', 'addr', 'show', 'eth0']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(pod.ip.replace(/\./g, '\\.')));
      const fail = await pod.exec('sh', ['-c', 'echo oops >&2; exit 3']);
      assert.deepEqual([fail.code, fail.stderr], [3, 'oops\n']);
      const p = node.spawn('sh', ['-c', 'readlink /proc/self/ns/net; sleep 600']);
      const [line] = await p.waitForOutput(/net:\[\d+\]/);
      assert.equal(line, `net:[${statSync(node.netnsPath).ino}]`);
      const exit = await p.stop(1000);
      assert.equal(exit.signal, 'SIGTERM');
      // Node → its own pod, and node → the other node.
      assert.equal((await curl(node, `http://${pod.ip}:1/`, { maxTimeSeconds: 3 })).exitCode, 7, 'the pod answered with a RST: reachable');
      assert.equal(
        (await curl(node, `http://${cluster.node(2).ip}:1/`, { maxTimeSeconds: 3 })).exitCode,
        7,
        'node 2 answered with a RST: reachable',
      );
    } finally {
      await cluster.deletePod(pod);
    }
  });
});

describe('fake-node cluster lifecycle', () => {
  before(requireRoot);

  test('destroy() removes namespaces, links, processes and state, with pods and apps still running; it is idempotent', async (t) => {
    const started = Date.now();
    const cluster = await createCluster({ name: `harness-d-${process.pid}`, nodes: 2, hostLink: true, logger: silentLogger() });
    const created = Date.now();
    const [a, b] = await Promise.all([
      cluster.createPod(cluster.node(1), { namespace: 'default', name: 'a' }),
      cluster.createPod(cluster.node(2), { namespace: 'default', name: 'b' }),
    ]);
    const podsReady = Date.now();
    try {
      await startNginx(b, { port: 80 });
      cluster.node(1).spawn('sleep', ['600']);
      await startEchoServer(a, 7000);
      // hostLink: this process's namespace reaches pods directly, and pods reach the host address.
      assert.ok(cluster.hostIp);
      const { stdout } = await execFileAsync('curl', ['-sS', '--max-time', '5', `http://${b.ip}/`], { encoding: 'utf8' });
      assert.equal(stdout, 'hello from default/b\n');
      assert.equal((await curl(a, `http://${cluster.hostIp}:1/`, { maxTimeSeconds: 3 })).exitCode, 7, 'the host answered (RST)');
      assert.equal((await hostLinksWithAlias(cluster.prefix)).length, 1);
    } catch (e) {
      await cluster.destroy();
      throw e;
    }
    const running = await clusterPids(cluster.prefix);
    assert.ok(running.length >= 4, `nginx master and worker, echo server, sleep: ${running.join(' ')}`);
    const destroyStarted = Date.now();
    await cluster.destroy();
    const destroyed = Date.now();
    t.diagnostic(
      `2-node cluster ${created - started} ms, 2 pods ${podsReady - created} ms, destroy (with nginx, echo, sleep running) ${destroyed - destroyStarted} ms`,
    );
    await assertNothingLeft(cluster.prefix, cluster.stateDir);
    assert.deepEqual(alive(running), [], 'every process of the cluster is gone');
    assert.equal((await sh('ip', 'route', 'show', '10.244.2.0/24')).trim(), '', 'the host routes went with the link');
    await cluster.destroy();
    assert.throws(
      () => cluster.node(1).spawn('true'),
      (e: unknown) => hasErrorCode(e, 'FAKENODE_CLUSTER_DESTROYED'),
    );
    await assert.rejects(cluster.createPod(cluster.node(1), { namespace: 'default', name: 'late' }), (e: unknown) =>
      hasErrorCode(e, 'FAKENODE_CLUSTER_DESTROYED'),
    );
  });

  test('createCluster rejects bad options before creating anything', async () => {
    for (const bad of [
      { name: 'Upper', nodes: 1 },
      { name: 'dot.ted', nodes: 1 },
      { name: 'ok', nodes: 0 },
      { name: 'ok', nodes: 2, podCidrBase: '10.244.0.0/24' },
    ]) {
      await assert.rejects(createCluster(bad), (e: unknown) => hasErrorCode(e, 'FAKENODE_INVALID_ARGUMENT'), JSON.stringify(bad));
    }
    await assert.rejects(
      cleanupStale('cni-'),
      (e: unknown) => hasErrorCode(e, 'FAKENODE_INVALID_ARGUMENT'),
      'only fn- names are ever removed',
    );
  });

  test('cleanupStale removes what a killed run left (namespaces, processes, host link, state) and spares live clusters', async () => {
    const live = await createCluster({ name: `harness-live-${process.pid}`, nodes: 1, logger: silentLogger() });
    const livePod = await live.createPod(live.node(1), { namespace: 'default', name: 'survivor' });
    await startNginx(livePod, { port: 80 });
    const name = `harness-stale-${process.pid}`;
    const prefix = `fn-${name}`;
    // A separate run that builds a cluster with a pod running nginx, then dies without any cleanup (SIGKILL).
    const child = await startChildRun(name, { nodes: 2, hostLink: true });
    try {
      child.kill('SIGKILL');
      await exitOf(child);
      const leftNs = (await netnsNames()).filter((n) => n.startsWith(`${prefix}.`)).sort();
      assert.deepEqual(leftNs, [`${prefix}.node-1`, `${prefix}.node-2`, `${prefix}.pod.default.app`, `${prefix}.switch`]);
      const orphans = await clusterPids(prefix);
      assert.ok(orphans.length >= 3, `nginx (master and worker) and sleep outlived their parent: ${orphans.join(' ')}`);
      assert.equal((await hostLinksWithAlias(prefix)).length, 1);

      const report = await cleanupStale('fn-harness-');
      assert.deepEqual(report.clusters, [prefix]);
      assert.deepEqual([...report.namespaces].sort(), leftNs);
      assert.equal(report.hostLinks.length, 1);
      assert.deepEqual(report.failures, []);
      assert.ok(report.skippedLive.includes(live.prefix), 'the live cluster was left alone');
      await assertNothingLeft(prefix, join('/run/fakenode', prefix));
      assert.deepEqual(alive(orphans), [], 'the orphaned processes were killed');

      // The live cluster is intact.
      assert.equal((await curl(livePod, 'http://127.0.0.1/')).status, 200);
      assert.equal((await cleanupStale(prefix)).namespaces.length, 0, 'a second run finds nothing');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await cleanupStale(prefix, { exact: true });
      await live.destroy();
    }
    await assertNothingLeft(live.prefix, live.stateDir);
  });

  test('the exit hook removes everything when the owning process is terminated by SIGTERM', async () => {
    const name = `harness-sigterm-${process.pid}`;
    const child = await startChildRun(name, { nodes: 2 });
    const pids = await clusterPids(`fn-${name}`);
    assert.ok(pids.length >= 3);
    child.kill('SIGTERM');
    const exit = await exitOf(child);
    assert.equal(exit.signal, 'SIGTERM', 'after cleaning up, the signal is re-raised so the process still dies of it');
    await assertNothingLeft(`fn-${name}`, join('/run/fakenode', `fn-${name}`));
    assert.deepEqual(alive(pids), []);
  });

  test('the exit hook removes everything when the owning process calls process.exit without destroy()', async () => {
    const name = `harness-exit-${process.pid}`;
    const child = await startChildRun(name, { nodes: 1, hostLink: true, exitCode: 3 });
    const exit = await exitOf(child);
    assert.equal(exit.code, 3);
    await assertNothingLeft(`fn-${name}`, join('/run/fakenode', `fn-${name}`));
  });
});

after(async () => {
  // Nothing of this file's clusters may outlive the run.
  const left = (await netnsNames()).filter((n) => n.startsWith('fn-harness-') && n.includes(`${process.pid}`));
  assert.deepEqual(left, []);
});
