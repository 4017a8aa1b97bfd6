/**
 * The project's CustomResourceDefinitions (charts/ambient/crds/, the chart's `crds/` folder, which Helm installs
 * before anything else) loaded from the repository and installed into a test API server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { repoRoot } from './binaries.js';
import { KubeTestError, KubeTestErrorCode } from './errors.js';
import { applyManifest, objectPath, parseManifest } from './manifest.js';
import { isRecord, kubeRequest, type KubeObject } from './rest.js';

export function crdDirectory(): string {
  return join(repoRoot(), 'charts', 'ambient', 'crds');
}

/** Every CRD in `dir` (default the chart's crds/ folder), from its *.yaml files in name order. */
export function loadCrds(dir: string = crdDirectory()): KubeObject[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort();
  const out: KubeObject[] = [];
  for (const f of files) {
    for (const obj of parseManifest(readFileSync(join(dir, f), 'utf8'))) {
      if (obj.kind !== 'CustomResourceDefinition') {
        throw new KubeTestError(
          KubeTestErrorCode.INVALID_ARGUMENT,
          `${join(dir, f)}: holds a ${obj.kind}; the crds/ folder is for CustomResourceDefinitions only`,
        );
      }
      out.push(obj);
    }
  }
  return out;
}

/**
 * Applies the CRDs and waits until each is Established and served, then until the API server takes writes of
 * their kinds promptly; returns the CRDs as stored.
 *
 * The last step exists because kube-apiserver (seen with v1.36) holds the first write of a custom resource made
 * within about 1.5 s of a CRD change for 2 s, while reads are immediate. One dry-run create per kind absorbs
 * that here, so that tests and the controller benchmark measure the controller, not this one-off stall.
 */
export async function installCrds(
  kc: KubeConfig,
  opts: { readonly dir?: string; readonly timeoutMs?: number } = {},
): Promise<KubeObject[]> {
  const crds = await applyManifest(kc, loadCrds(opts.dir), { crdTimeoutMs: opts.timeoutMs ?? 30_000 });
  for (const crd of crds) {
    const spec = isRecord(crd.spec) ? crd.spec : {};
    const names = isRecord(spec.names) ? spec.names : {};
    const storage = Array.isArray(spec.versions) ? spec.versions.find((v: unknown) => isRecord(v) && v.storage === true) : undefined;
    if (!isRecord(storage) || typeof spec.group !== 'string' || typeof names.kind !== 'string') continue;
    const apiVersion = `${spec.group}/${String(storage.name)}`;
    const namespaced = spec.scope === 'Namespaced';
    const path = `${await objectPath(kc, { apiVersion, kind: names.kind, namespace: namespaced ? 'default' : undefined })}?dryRun=All`;
    // The answer (often 422: the probe has no spec) does not matter; that the server answered does.
    await kubeRequest(kc, {
      method: 'POST',
      path,
      body: { apiVersion, kind: names.kind, metadata: { name: 'kubetest-write-probe', ...(namespaced ? { namespace: 'default' } : {}) } },
      timeoutMs: opts.timeoutMs ?? 30_000,
    });
  }
  return crds;
}
