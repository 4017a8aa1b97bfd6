/**
 * What of the controller's settings the xDS server on 15012 takes: where it listens, the push debounce and the
 * identifier in its responses. The controller passes exactly this to startXdsServer, so a test that starts a
 * server from these options runs the path production runs.
 */
import type { StartXdsServerOptions } from '../xds/server.js';
import type { ControllerSettings } from './settings.js';

export type XdsServingOptions = Required<Pick<StartXdsServerOptions, 'host' | 'port' | 'debounce' | 'controlPlaneId'>>;

export function xdsServingOptions(settings: ControllerSettings): XdsServingOptions {
  return {
    host: settings.secureGrpcAddress.host,
    port: settings.secureGrpcAddress.port,
    debounce: { afterMs: settings.debounceAfterMs, maxMs: settings.debounceMaxMs },
    controlPlaneId: settings.podName,
  };
}
