/**
 * LOCAL_XDS_PATH: the mesh state from a YAML file in Istio's local-config schema, reloaded when the file
 * changes. The first load must succeed (a broken file at start is a configuration error); a broken file
 * later is logged and the last good state is kept — never half-applied.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { describeError, errorCode } from '../../lib/errors.js';
import { LocalConfigErrorCode, loadLocalConfigFile, type LocalConfigState } from '../config/local-config.js';

const RELOAD_DEBOUNCE_MS = 100;
/** After the directory watch fails (the directory removed, say), it is set up again this often until it works. */
const REWATCH_INTERVAL_MS = 2_000;

export class LocalFileSource {
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #rewatch: NodeJS.Timeout | undefined;
  #closed = false;
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
    this.#watch();
    return state;
  }

  /** Watches the directory: editors and `kubectl cp`-style tools replace files by rename, which a file watch misses. */
  #watch(): void {
    if (this.#closed) return;
    try {
      const dir = dirname(this.path);
      this.#watcher = watch(dir, (_event, name) => {
        // inotify reports the watched directory's own removal as an event named after it, then goes silent.
        if (name === basename(dir) && !existsSync(dir)) {
          this.#watchFailed(new Error(`${dir} was removed`));
          return;
        }
        if (name !== null && name !== basename(this.path)) return;
        this.#scheduleReload();
      });
    } catch (err) {
      this.#watchFailed(err);
      return;
    }
    // A watch that fails later (its directory removed) emits 'error'; unhandled, that would end the process.
    this.#watcher.on('error', (err) => this.#watchFailed(err));
  }

  #watchFailed(err: unknown): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#closed || this.#rewatch) return;
    this.log.error(
      { code: LocalConfigErrorCode.UNREADABLE, path: this.path, err: describeError(err), retryInMs: REWATCH_INTERVAL_MS },
      'cannot watch the local config directory; keeping the last good config',
    );
    this.#rewatch = setInterval(() => {
      this.#watch();
      if (this.#watcher === undefined) return;
      clearInterval(this.#rewatch);
      this.#rewatch = undefined;
      this.#scheduleReload(); // the file may have changed while nobody was watching
    }, REWATCH_INTERVAL_MS);
    this.#rewatch.unref();
  }

  #scheduleReload(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#reload(), RELOAD_DEBOUNCE_MS);
  }

  get status(): { readonly loads: number; readonly lastError: string | undefined } {
    return { loads: this.#loads, lastError: this.#lastError };
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#rewatch) clearInterval(this.#rewatch);
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
