/**
 * Fake nodes: a small Kubernetes-like cluster of network namespaces on this machine, for the fake-node test
 * tier, the local-mesh demo and benchmarks. Needs root. Real kernel networking, real CNI plugins, real apps.
 *
 *   plan.ts        names and addresses as plain data (fn-<name>.switch / .node-<i> / .pod.<ns>.<pod>)
 *   network.ts     createCluster(): switch bridge, nodes on veths, pod CIDR routes; Cluster, FakeNode
 *   cni.ts         a CNI 1.0.0 runtime: list ADD/DEL/CHECK, prevResult chaining, result cache, typed errors
 *   pod.ts         pods as a kubelet makes them: netns, loopback, bridge + host-local + chained plugins
 *   process.ts     processes in a namespace: spawn() (tracked), exec() ({ code, stdout, stderr })
 *   apps.ts        nginx, curl, an echo server that reports the peer address, a raw TCP client, waitForListen
 *   capture.ts     tcpdump on a node's uplink; pcap.ts parses what it wrote
 *   resources.ts   cleanup registry, teardown (async and at process exit)
 *   stale.ts       cleanupStale(): leftovers of runs that died
 *   errors.ts      FakeNodeError (FAKENODE_*), CniError with the plugin's error result
 *
 * Typical use:
 *   const cluster = await createCluster({ name: `t${process.pid}`, nodes: 2 });
 *   const server = await cluster.createPod(cluster.node(2), { namespace: 'default', name: 'server' });
 *   const client = await cluster.createPod(cluster.node(1), { namespace: 'default', name: 'client' });
 *   await startNginx(server, { port: 80 });
 *   const res = await curl(client, `http://${server.ip}/`);
 *   await cluster.destroy();
 */
export { FakeNodeError, FakeNodeErrorCode, CniError, type CniErrorResult } from './errors.js';
export {
  DEFAULT_NODE_SUBNET,
  DEFAULT_POD_CIDR_BASE,
  DEFAULT_STATE_ROOT,
  FAKENODE_PREFIX,
  planCluster,
  type ClusterPlan,
  type NodePlan,
  type PlanOptions,
} from './plan.js';
export { Cluster, createCluster, FakeNode, type ClusterOptions } from './network.js';
export {
  LOOPBACK_NETWORK_NAME,
  Pod,
  POD_BRIDGE,
  POD_IFNAME,
  POD_NETWORK_NAME,
  loopbackNetworkList,
  podNetworkList,
  type ChainedPlugin,
  type PodOptions,
} from './pod.js';
export {
  addNetworkList,
  checkNetworkList,
  CNI_VERSION,
  delNetworkList,
  deriveExecConfig,
  formatCniArgs,
  invokePlugin,
  parseCniResult,
  type AttachmentParams,
  type CniAttachment,
  type CniInterface,
  type CniIpConfig,
  type CniResult,
  type CniRoute,
  type NetworkConfigList,
  type PluginConfig,
} from './cni.js';
export { NetworkNamespace, NsProcess, type ExecOptions, type ProcessExit, type SpawnOptions } from './process.js';
export type { ExecResult } from './exec.js';
export {
  curl,
  startEchoServer,
  startNginx,
  tcpRequest,
  waitForListen,
  type CurlOptions,
  type CurlResult,
  type EchoConnection,
  type EchoServer,
  type EchoServerOptions,
  type NginxAccessEntry,
  type NginxOptions,
  type NginxServer,
  type TcpRequestOptions,
  type TcpRequestResult,
  type WaitForListenOptions,
} from './apps.js';
export { summarizeCapture, type Capture, type CaptureOptions, type CaptureResult } from './capture.js';
export { flowKey, flowPayloads, parsePcap, type CapturedPacket } from './pcap.js';
export { cleanupStale, type StaleCleanupOptions, type StaleCleanupReport } from './stale.js';
