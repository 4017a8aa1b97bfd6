/**
 * XDS_ADDRESS: the mesh state from the controller over delta xDS (istio.workload.Address and
 * istio.security.Authorization), converted at the edge into ztunnel's records. A resource that does not convert
 * is rejected alone (the response is NACKed with its reason) and the last good version of it stays in force;
 * while the controller is away, ztunnel keeps serving with what it has and reconnects with backoff.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { describeError } from '../../lib/errors.js';
import { tokenFromFile } from '../../lib/identity/ca-client.js';
import { TypeUrl } from '../../lib/proto/index.js';
import { XdsClient, type XdsUpdate } from '../../lib/xds/client.js';
import { ztunnelNode } from '../../lib/xds/node.js';
import type { XdsRejection } from '../../lib/xds/errors.js';
import type { ZtunnelSettings } from '../config/settings.js';
import type { Authorization, Service, StateDelta, Workload } from '../state/model.js';
import { decodeAddress, decodeAuthorization } from './wds-convert.js';

export class XdsSource {
  #client: XdsClient | undefined;
  readonly #settings: ZtunnelSettings;
  readonly #onDelta: (delta: StateDelta) => void;
  readonly #log: Logger;

  constructor(settings: ZtunnelSettings, onDelta: (delta: StateDelta) => void, log: Logger) {
    this.#settings = settings;
    this.#onDelta = onDelta;
    this.#log = log;
  }

  async start(): Promise<void> {
    const s = this.#settings;
    if (!s.xdsAddress) throw new Error('XDS_ADDRESS is not set');
    const rootCertPem = await readFile(s.xdsRootCa, 'utf8').catch((err: unknown) => {
      throw new Error(`cannot read the controller's root certificate XDS_ROOT_CA=${s.xdsRootCa}: ${describeError(err)}`);
    });
    this.#client = new XdsClient({
      address: s.xdsAddress,
      transport: { kind: 'tls', rootCertPem, ...(s.altXdsHostname ? { serverName: s.altXdsHostname } : {}) },
      node: ztunnelNode({
        ip: s.instanceIp || undefined,
        podName: s.podName || 'ztunnel',
        podNamespace: s.podNamespace || 'istio-system',
        nodeName: s.nodeName,
        clusterId: s.clusterId,
      }),
      token: tokenFromFile(s.authTokenPath),
      clusterId: s.clusterId,
      logger: this.#log.child({ scope: 'xds' }),
      watches: [
        { typeUrl: TypeUrl.Address, handler: (u) => this.#onAddresses(u) },
        { typeUrl: TypeUrl.Authorization, handler: (u) => this.#onAuthorizations(u) },
      ],
      onEvent: (e) => {
        if (e.kind === 'connected') this.#log.info({ address: s.xdsAddress }, 'connected to the controller');
        else if (e.kind === 'disconnected')
          this.#log.warn({ details: e.details, retryInMs: e.retryInMs }, 'disconnected from the controller; serving the last state');
      },
    });
    this.#client.start();
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  get synced(): boolean {
    return this.#client?.synced ?? false;
  }

  close(): void {
    this.#client?.close();
  }

  #onAddresses(u: XdsUpdate): XdsRejection[] {
    const workloads: Workload[] = [];
    const services: Service[] = [];
    const rejections: XdsRejection[] = [];
    for (const r of u.resources) {
      try {
        const m = decodeAddress(r.name, r.body);
        if (m.kind === 'workload') workloads.push(m.workload);
        else services.push(m.service);
      } catch (err) {
        rejections.push({ name: r.name, error: describeError(err) });
      }
    }
    // A removed name is a workload uid or a service's "ns/hostname"; removing an unknown key is a no-op.
    this.#onDelta({ workloads, services, removedWorkloads: u.removed, removedServices: u.removed });
    return rejections;
  }

  #onAuthorizations(u: XdsUpdate): XdsRejection[] {
    const policies: Authorization[] = [];
    const rejections: XdsRejection[] = [];
    for (const r of u.resources) {
      try {
        policies.push(decodeAuthorization(r.name, r.body));
      } catch (err) {
        rejections.push({ name: r.name, error: describeError(err) });
      }
    }
    this.#onDelta({ policies, removedPolicies: u.removed });
    return rejections;
  }
}
