/**
 * kubetest: a real Kubernetes API server (kube-apiserver + etcd on loopback) for the Kubernetes test tier, the
 * controller's tests and its benchmark. Needs the kube-apiserver binary (built once per machine from the
 * k8s.io/kubernetes Go module by scripts/tools/kube-apiserver.sh; startApiServer builds it if missing) and etcd
 * (Debian etcd-server). Nothing here fakes the API: when the server cannot be built or started, startApiServer
 * fails with a KubeTestError that says why.
 *
 *   apiserver.ts  startApiServer(), ApiServer: processes, keys, tokens, kubeconfig, stop()
 *   objects.ts    the parts of controller-manager, scheduler and kubelet that tests play: namespaces with their
 *                 default ServiceAccount, pods, pod status, nodes
 *   manifest.ts   applyManifest() (server-side apply through discovery), waitForCrd()
 *   crds.ts       the chart's CRDs (charts/ambient/crds/): loadCrds(), installCrds()
 *   rest.ts       JSON requests with a KubeConfig's credentials; apiStatusOf() for client-node errors
 *   wait.ts       waitFor()
 *   binaries.ts   finding/building kube-apiserver, finding etcd
 *   process.ts    the programs' lifecycle and the exit hook
 *   errors.ts     KubeTestError (KUBETEST_*), KubeApiError with the server's Status
 *
 * Typical use:
 *   const api = await startApiServer({ name: 'ctrl' });
 *   await installCrds(api.kubeConfig);
 *   await createNamespace(api.kubeConfig, 'demo', { labels: { 'istio.io/dataplane-mode': 'ambient' } });
 *   const pod = await createPod(api.kubeConfig, { namespace: 'demo', name: 'client', nodeName: 'node-1' });
 *   await setPodStatus(api.kubeConfig, 'demo', 'client', { podIP: '10.0.1.5', hostIP: '172.30.0.2' });
 *   await api.stop();
 */
export {
  ADMIN_USER,
  ApiServer,
  cleanupStale,
  CLUSTER_DOMAIN,
  DEFAULT_SERVICE_CIDR,
  SERVICE_ACCOUNT_ISSUER,
  startApiServer,
  type ApiServerPorts,
  type ServiceAccountToken,
  type StaleCleanupReport,
  type ServiceAccountTokenOptions,
  type StartApiServerOptions,
  type StartupTimings,
  type StaticUser,
} from './apiserver.js';
export {
  createNamespace,
  createNode,
  createPod,
  createServiceAccount,
  setPodStatus,
  type NamespaceOptions,
  type NodeOptions,
  type PodContainer,
  type PodOptions,
  type PodPhase,
  type PodStatusUpdate,
  type ServiceAccountOptions,
} from './objects.js';
export {
  applyManifest,
  DEFAULT_FIELD_MANAGER,
  objectPath,
  parseManifest,
  resolveResource,
  waitForCrd,
  type ApplyOptions,
} from './manifest.js';
export { crdDirectory, installCrds, loadCrds } from './crds.js';
export {
  apiStatusOf,
  kubeRequest,
  kubeRequestOk,
  type KubeObject,
  type KubeObjectMeta,
  type RestRequest,
  type RestResponse,
} from './rest.js';
export { waitFor, type WaitForOptions, type WaitResult } from './wait.js';
export { ensureKubeApiServer, findEtcd } from './binaries.js';
export { KubeApiError, KubeTestError, KubeTestErrorCode, type KubeStatus } from './errors.js';
