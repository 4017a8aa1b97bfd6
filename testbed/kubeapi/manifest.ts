/**
 * Applying manifests the way `kubectl apply --server-side --force-conflicts` does: every object is sent as an
 * apply patch to its resource URL, found through API discovery. CustomResourceDefinitions in a manifest are
 * waited for (Established, and their kinds visible in discovery) before the objects after them are applied, so a
 * manifest may define a CRD and use it.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { KubeApiError, KubeTestError, KubeTestErrorCode } from './errors.js';
import { asKubeObject, isRecord, kubeRequestOk, type KubeObject } from './rest.js';
import { waitFor } from './wait.js';

export const DEFAULT_FIELD_MANAGER = 'kubetest';

interface ApiResource {
  readonly name: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

// Discovery answers per KubeConfig and group/version; refreshed when a kind is missing (a CRD just appeared).
const discovery = new WeakMap<KubeConfig, Map<string, readonly ApiResource[]>>();

function groupVersionPath(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

async function fetchResources(kc: KubeConfig, apiVersion: string): Promise<readonly ApiResource[]> {
  const body = await kubeRequestOk(kc, { method: 'GET', path: groupVersionPath(apiVersion) });
  const list = isRecord(body) && Array.isArray(body.resources) ? body.resources : [];
  const out: ApiResource[] = [];
  for (const r of list) {
    if (!isRecord(r) || typeof r.name !== 'string' || typeof r.kind !== 'string' || r.name.includes('/')) continue;
    out.push({ name: r.name, kind: r.kind, namespaced: r.namespaced === true });
  }
  let perKc = discovery.get(kc);
  if (perKc === undefined) {
    perKc = new Map();
    discovery.set(kc, perKc);
  }
  perKc.set(apiVersion, out);
  return out;
}

/** The resource (plural name, scope) serving `kind` in `apiVersion`, or undefined if the server does not serve it. */
export async function resolveResource(kc: KubeConfig, apiVersion: string, kind: string): Promise<ApiResource | undefined> {
  const cached = discovery
    .get(kc)
    ?.get(apiVersion)
    ?.find((r) => r.kind === kind);
  if (cached !== undefined) return cached;
  try {
    return (await fetchResources(kc, apiVersion)).find((r) => r.kind === kind);
  } catch (e) {
    if (e instanceof KubeApiError && e.status.code === 404) return undefined; // the group/version is not served (yet)
    throw e;
  }
}

/** The URL path of an object (`name` omitted: its collection). */
export async function objectPath(
  kc: KubeConfig,
  obj: { apiVersion: string; kind: string; namespace?: string; name?: string },
): Promise<string> {
  const res = await resolveResource(kc, obj.apiVersion, obj.kind);
  if (res === undefined) {
    throw new KubeTestError(
      KubeTestErrorCode.INVALID_ARGUMENT,
      `the API server does not serve kind ${obj.kind} in ${obj.apiVersion} (is its CRD installed and Established?)`,
    );
  }
  let path = groupVersionPath(obj.apiVersion);
  if (res.namespaced) {
    if (obj.namespace === undefined || obj.namespace === '') {
      throw new KubeTestError(KubeTestErrorCode.INVALID_ARGUMENT, `${obj.kind} ${obj.name ?? ''} is namespaced but has no namespace`);
    }
    path += `/namespaces/${encodeURIComponent(obj.namespace)}`;
  }
  path += `/${res.name}`;
  if (obj.name !== undefined) path += `/${encodeURIComponent(obj.name)}`;
  return path;
}

/** The objects of a YAML (or JSON) manifest: several documents, `kind: List` expanded, empty documents skipped. */
export function parseManifest(text: string): KubeObject[] {
  const out: KubeObject[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    if (doc.errors.length > 0) {
      throw new KubeTestError(
        KubeTestErrorCode.INVALID_ARGUMENT,
        `manifest document ${i + 1}: ${doc.errors.map((e) => e.message).join('; ')}`,
      );
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return;
    if (isRecord(value) && value.kind === 'List' && Array.isArray(value.items)) {
      for (const [j, item] of (value.items as unknown[]).entries())
        out.push(asKubeObject(item, `manifest document ${i + 1} item ${j + 1}`));
    } else {
      out.push(asKubeObject(value, `manifest document ${i + 1}`));
    }
  });
  return out;
}

export interface ApplyOptions {
  /** Server-side apply field manager. Default "kubetest". */
  readonly fieldManager?: string;
  /** Take over fields owned by other managers (kubectl's --force-conflicts). Default true. */
  readonly force?: boolean;
  /** Namespace for namespaced objects that name none. Default "default". */
  readonly namespace?: string;
  /** How long to wait for each CustomResourceDefinition to be Established. Default 30 s. */
  readonly crdTimeoutMs?: number;
  /** Validate and run admission, but persist nothing (`dryRun=All`, as the Helm tier uses). */
  readonly dryRun?: boolean;
}

/**
 * Server-side applies each object, in order, and returns what the server stored. A rejected object throws
 * KubeApiError carrying the server's Status (objects before it stay applied).
 */
export async function applyManifest(
  kc: KubeConfig,
  input: string | KubeObject | readonly KubeObject[],
  opts: ApplyOptions = {},
): Promise<KubeObject[]> {
  const objects =
    typeof input === 'string' ? parseManifest(input) : Array.isArray(input) ? [...(input as readonly KubeObject[])] : [input as KubeObject];
  const out: KubeObject[] = [];
  for (const obj of objects) {
    const name = obj.metadata.name;
    if (name === undefined || name === '') {
      throw new KubeTestError(
        KubeTestErrorCode.INVALID_ARGUMENT,
        `${obj.kind}: server-side apply needs metadata.name (generateName cannot be applied)`,
      );
    }
    const res = await resolveResource(kc, obj.apiVersion, obj.kind);
    const namespace = res?.namespaced === true ? (obj.metadata.namespace ?? opts.namespace ?? 'default') : undefined;
    const body: KubeObject = namespace === undefined ? obj : { ...obj, metadata: { ...obj.metadata, namespace } };
    const query = new URLSearchParams({ fieldManager: opts.fieldManager ?? DEFAULT_FIELD_MANAGER, force: String(opts.force ?? true) });
    if (opts.dryRun === true) query.set('dryRun', 'All');
    const path = `${await objectPath(kc, { apiVersion: obj.apiVersion, kind: obj.kind, namespace, name })}?${query.toString()}`;
    // JSON is YAML, so an apply patch may be sent as JSON text under the apply-patch+yaml media type.
    const stored = asKubeObject(
      await kubeRequestOk(kc, { method: 'PATCH', path, body, contentType: 'application/apply-patch+yaml' }),
      path,
    );
    out.push(stored);
    if (obj.apiVersion === 'apiextensions.k8s.io/v1' && obj.kind === 'CustomResourceDefinition' && opts.dryRun !== true) {
      await waitForCrd(kc, name, opts.crdTimeoutMs ?? 30_000);
    }
  }
  return out;
}

function conditionTrue(obj: unknown, type: string): boolean {
  if (!isRecord(obj) || !isRecord(obj.status) || !Array.isArray(obj.status.conditions)) return false;
  return obj.status.conditions.some((c: unknown) => isRecord(c) && c.type === type && c.status === 'True');
}

/**
 * Waits until the CRD `name` is Established with its names accepted, and discovery serves its kind in every
 * served version (clients resolve kinds through discovery, which lags establishment by a moment).
 */
export async function waitForCrd(kc: KubeConfig, name: string, timeoutMs = 30_000): Promise<KubeObject> {
  const crd = await waitFor(
    async () => {
      const c = asKubeObject(
        await kubeRequestOk(kc, { method: 'GET', path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}` }),
        name,
      );
      return conditionTrue(c, 'Established') && conditionTrue(c, 'NamesAccepted') ? c : undefined;
    },
    timeoutMs,
    { description: `CustomResourceDefinition ${name} to be Established` },
  );
  const spec = isRecord(crd.spec) ? crd.spec : {};
  const group = typeof spec.group === 'string' ? spec.group : '';
  const kind = isRecord(spec.names) && typeof spec.names.kind === 'string' ? spec.names.kind : '';
  const versions = Array.isArray(spec.versions) ? spec.versions.filter((v: unknown) => isRecord(v) && v.served === true) : [];
  for (const v of versions) {
    const apiVersion = `${group}/${String((v as Record<string, unknown>).name)}`;
    await waitFor(async () => (await fetchResources(kc, apiVersion)).some((r) => r.kind === kind), timeoutMs, {
      description: `discovery to serve ${kind} in ${apiVersion}`,
    });
  }
  return crd;
}
