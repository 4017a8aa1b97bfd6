/**
 * Publishes the mesh root certificate as ConfigMap `istio-ca-root-cert` (key `root-cert.pem`) in every
 * namespace and keeps it there: recreated if deleted, rewritten if changed. Proxies mount it to verify the
 * controller. Only the leader runs this; reconciles are serialized and retried.
 */
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { httpStatusOf } from '../../lib/kube/rest.js';

export const ROOT_CERT_CONFIGMAP = 'istio-ca-root-cert';
export const ROOT_CERT_KEY = 'root-cert.pem';
const RETRY_MS = 1_000;

export class RootCertPublisher {
  readonly #api: CoreV1Api;
  readonly #rootPem: string;
  readonly #log: Logger;
  readonly #pending = new Set<string>();
  #running = false;
  #enabled = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(kc: KubeConfig, rootPem: string, log: Logger) {
    this.#api = kc.makeApiClient(CoreV1Api);
    this.#rootPem = rootPem;
    this.#log = log;
  }

  /** Leadership: only the leader writes. Turning it on reconciles everything queued since. */
  setEnabled(enabled: boolean, allNamespaces: Iterable<string>): void {
    this.#enabled = enabled;
    if (enabled) for (const ns of allNamespaces) this.enqueue(ns);
  }

  /** A namespace appeared, or its ConfigMap changed or vanished. */
  enqueue(namespace: string): void {
    this.#pending.add(namespace);
    void this.#drain();
  }

  stop(): void {
    this.#enabled = false;
    if (this.#retry) clearTimeout(this.#retry);
  }

  /** True when the ConfigMap as seen by a watch is what we would write. */
  isCurrent(cm: V1ConfigMap): boolean {
    return cm.data?.[ROOT_CERT_KEY] === this.#rootPem;
  }

  async #drain(): Promise<void> {
    if (this.#running || !this.#enabled) return;
    this.#running = true;
    const failed: string[] = [];
    try {
      while (this.#pending.size > 0 && this.#enabled) {
        const ns = this.#pending.values().next().value as string;
        this.#pending.delete(ns);
        try {
          await this.#reconcile(ns);
        } catch (err) {
          // A namespace being deleted refuses new objects: nothing to do there.
          if (httpStatusOf(err) !== 403 && httpStatusOf(err) !== 404) failed.push(ns);
          this.#log.warn(
            { namespace: ns, err: err instanceof Error ? err.message : String(err) },
            'could not publish the root certificate',
          );
        }
      }
    } finally {
      this.#running = false;
    }
    if (failed.length > 0 && this.#enabled) {
      this.#retry = setTimeout(() => {
        for (const ns of failed) this.enqueue(ns);
      }, RETRY_MS);
      this.#retry.unref();
    }
  }

  async #reconcile(namespace: string): Promise<void> {
    const body: V1ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: ROOT_CERT_CONFIGMAP, namespace, labels: { 'istio.io/config': 'true' } },
      data: { [ROOT_CERT_KEY]: this.#rootPem },
    };
    let existing: V1ConfigMap | undefined;
    try {
      existing = await this.#api.readNamespacedConfigMap({ name: ROOT_CERT_CONFIGMAP, namespace });
    } catch (err) {
      if (httpStatusOf(err) !== 404) throw err;
    }
    if (!existing) {
      await this.#api.createNamespacedConfigMap({ namespace, body });
      this.#log.debug({ namespace }, 'root certificate published');
    } else if (!this.isCurrent(existing)) {
      await this.#api.replaceNamespacedConfigMap({
        name: ROOT_CERT_CONFIGMAP,
        namespace,
        body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion } },
      });
      this.#log.info({ namespace }, 'root certificate ConfigMap restored');
    }
  }
}
