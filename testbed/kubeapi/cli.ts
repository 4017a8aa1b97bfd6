#!/usr/bin/env node
/**
 * A real kube-apiserver + etcd on loopback, by hand: `scripts/kube-apiserver-up.sh [--crds]`. Prints the admin
 * kubeconfig path and waits; Ctrl-C stops both and removes their data. The same server the Kubernetes test tier
 * and the controller benchmark start (testbed/kubeapi).
 */
import { installCrds, startApiServer } from './index.js';

async function main(): Promise<void> {
  const api = await startApiServer({ name: 'dev' });
  if (process.argv.includes('--crds')) await installCrds(api.kubeConfig);
  console.log(`kube-apiserver ready at ${api.url}`);
  console.log(`  export KUBECONFIG=${api.kubeconfigPath}`);
  console.log(`  admin token: ${api.adminToken}`);
  console.log('Ctrl-C stops kube-apiserver and etcd and removes their data.');
  const stop = (): void => void api.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await new Promise(() => {});
}

main().catch((err: unknown) => {
  console.error(`kube-apiserver-up: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
