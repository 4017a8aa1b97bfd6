/**
 * LOCAL_XDS_PATH: the mesh state from a YAML file in Istio's local-config schema, reloaded when the file
 * changes. The first load must succeed (a broken file at start is a configuration error); a broken file
 * later is logged and the last good state is kept — never half-applied.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { describeError, errorCode } from '../../lib/errors.js';
import { loadLocalConfigFile, type LocalConfigState } from '../config/local-config.js';

const RELOAD_DEBOUNCE_MS = 100;

export class LocalFileSource {
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #loads = 0;
  #lastError: string | undefined;

  constructor(
    readonly path: string,
    private readonly onState: (state: LocalConfigState) => void,
    private readonly log: Logger,
  ) {}

  /** Loads the file (throws on a bad file) and starts watching it. */
  async start(): Promise<LocalConfigState> {
    const state = await loadLocalConfigFile(this.path);
    this.#loads++;
    this.onState(state);
    // Watch the directory: editors and `kubectl cp`-style tools replace files by rename, which a file watch misses.
    this.#watcher = watch(dirname(this.path), (_event, name) => {
      if (name !== null && name !== basename(this.path)) return;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.#reload(), RELOAD_DEBOUNCE_MS);
    });
    return state;
  }

  get status(): { readonly loads: number; readonly lastError: string | undefined } {
    return { loads: this.#loads, lastError: this.#lastError };
  }

  close(): void {
    this.#watcher?.close();
    if (this.#timer) clearTimeout(this.#timer);
  }

  async #reload(): Promise<void> {
    try {
      const state = await loadLocalConfigFile(this.path);
      this.#loads++;
      this.#lastError = undefined;
      this.onState(state);
      this.log.info(
        { path: this.path, workloads: state.workloads.length, services: state.services.length, policies: state.policies.length },
        'local config reloaded',
      );
    } catch (err) {
      this.#lastError = describeError(err);
      this.log.error(
        { code: errorCode(err), path: this.path, err: this.#lastError },
        'local config reload failed; keeping the last good config',
      );
    }
  }
}
