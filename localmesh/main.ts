#!/usr/bin/env node
/**
 * The local mesh: the README's run command. Two fake nodes on this machine, each with its node agent and
 * ztunnel; demo pods in the ambient namespace `demo` (a client and two services, one with two replicas) and
 * one pod outside the mesh; real nginx and curl. Prints what runs where and how to try it, streams access
 * logs, and tears everything down on Ctrl-C.
 */
import { existsSync } from 'node:fs';
import { startNginx, type Pod } from '../testbed/fakenode/index.js';
import { MeshCluster } from './mesh-cluster.js';
import { loadLocalMeshConfig } from './config.js';

const NAME = loadLocalMeshConfig().name;
const NAMESPACE = 'demo';

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const green = (s: string): string => (process.stdout.isTTY ? `\x1b[32m${s}\x1b[0m` : s);
const step = (s: string): void => console.log(`${green('✔')} ${s}`);

function preflight(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0)
    problems.push('run as root: fake nodes are network namespaces with iptables rules (sudo scripts/local-mesh.sh)');
  for (const [bin, pkg] of [
    ['/usr/lib/cni/bridge', 'containernetworking-plugins'],
    ['/usr/sbin/nginx', 'nginx-light'],
    ['/usr/bin/curl', 'curl'],
    ['/usr/sbin/iptables', 'iptables'],
  ] as const) {
    if (!existsSync(bin)) problems.push(`${bin} is missing: install the Debian package "${pkg}" (scripts/setup.sh does this)`);
  }
  if (problems.length > 0) {
    for (const p of problems) console.error(`local-mesh: ${p}`);
    process.exit(1);
  }
}

/** One short line per finished connection, from a ztunnel's access log. */
function streamAccessLogs(mesh: MeshCluster): void {
  for (const node of mesh.cluster.nodes) {
    const out = mesh.ztunnelProcess(node).child.stdout;
    let buf = '';
    out?.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.includes('connection complete')) continue;
        try {
          const e = JSON.parse(line) as Record<string, string | number>;
          const who = `${e['src.workload'] ?? e['src.addr']} → ${e['dst.service'] ?? e['dst.workload'] ?? e['dst.addr']}`;
          const how = e['dst.hbone_addr'] ? `HBONE ${e['dst.addr']} (${e['dst.hbone_addr']})` : `TCP ${e['dst.addr']}`;
          const result = e.error ? `FAILED ${e.error}` : `${e.bytes_sent}B sent ${e.bytes_recv}B received in ${e.duration}`;
          console.log(`  [${node.name} ${e.direction}] ${who} via ${how}: ${result}`);
        } catch {
          // not JSON: ignore
        }
      }
    });
  }
}

async function main(): Promise<void> {
  preflight();
  console.log(bold('Starting a local ambient mesh on this machine'));
  const mesh = await MeshCluster.start({ name: NAME, nodes: 2, ambientNamespaces: [NAMESPACE], logLevel: 'info' });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log('\nTearing down: pods, ztunnels, node agents, namespaces...');
    await mesh.destroy();
    console.log('Done. Nothing is left behind.');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  try {
    for (const n of mesh.cluster.nodes) step(`${n.name} (${n.ip}, pods ${n.podCidr}): node agent and ztunnel ready`);
    const [n1, n2] = [mesh.node(1), mesh.node(2)];
    const pods: Pod[] = await Promise.all([
      mesh.addPod(n1, { namespace: NAMESPACE, name: 'sleep', serviceAccount: 'sleep' }),
      mesh.addPod(n1, { namespace: NAMESPACE, name: 'echo-v1-0', serviceAccount: 'echo', app: 'echo', version: 'v1' }),
      mesh.addPod(n2, { namespace: NAMESPACE, name: 'echo-v1-1', serviceAccount: 'echo', app: 'echo', version: 'v1' }),
      mesh.addPod(n2, { namespace: NAMESPACE, name: 'hello', serviceAccount: 'hello' }),
      mesh.addPod(n2, { namespace: 'legacy', name: 'outsider' }),
    ]);
    const [sleep, echo0, echo1, hello, outsider] = pods as [Pod, Pod, Pod, Pod, Pod];
    await Promise.all([echo0, echo1, hello].map((p) => startNginx(p, { port: 8080 })));
    const echoSvc = await mesh.addService({
      namespace: NAMESPACE,
      name: 'echo',
      vip: '10.96.0.20',
      ports: { 80: 8080 },
      endpoints: [echo0, echo1],
    });
    const helloSvc = await mesh.addService({
      namespace: NAMESPACE,
      name: 'hello',
      vip: '10.96.0.21',
      ports: { 80: 8080 },
      endpoints: [hello],
    });
    for (const p of pods)
      step(
        `pod ${p.namespace}/${p.name} on ${p.nodeName}: ${p.ip}${mesh.isAmbient(p.namespace) ? ' (in the mesh)' : ' (not in the mesh)'}`,
      );
    step(`service ${echoSvc.hostname} → 10.96.0.20:80 (2 replicas, port 8080)`);
    step(`service ${helloSvc.hostname} → 10.96.0.21:80 (1 replica, port 8080)`);

    const exec = (p: Pod): string => `ip netns exec ${p.netnsName}`;
    console.log(`
${bold('The mesh is up.')} In another terminal, as root:

  # from the client pod, through both ztunnels over HBONE (mTLS, port 15008)
  ${exec(sleep)} curl -s http://10.96.0.20/
  ${exec(sleep)} curl -s http://10.96.0.21/
  ${exec(sleep)} curl -s http://${echo1.ip}:8080/          # pod IP, across nodes

  # from outside the mesh: plaintext to a mesh pod's IP (allowed until a policy says STRICT); fake nodes have
  # no kube-proxy, so service VIPs only work from pods in the mesh, where ztunnel resolves them
  ${exec(outsider)} curl -s http://${hello.ip}:8080/

  # a shell inside a pod
  ${exec(sleep)} bash

  # what each ztunnel knows
  node dist/meshctl/main.js ztunnel-config workloads --netns ${n1.netnsName}
  node dist/meshctl/main.js ztunnel-config certificates --netns ${n2.netnsName}

  # the mesh state both ztunnels read (edit it: they reload it)
  ${mesh.configPath}

Access logs follow. Ctrl-C tears everything down.
`);
    streamAccessLogs(mesh);
    await new Promise(() => {});
  } catch (err) {
    console.error(`local-mesh: ${err instanceof Error ? err.message : String(err)}`);
    await mesh.destroy();
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  console.error(`local-mesh: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
