/**
 * The live connections of one pod, so that /config_dump can list them, a policy change can close the inbound
 * ones it would now deny (ztunnel's PolicyWatcher: "connection closed due to policy change"), and a drain can
 * wait for them (src/proxy/connection_manager.rs). Membership is owned by each connection's lifecycle
 * (connection.ts): it adds itself when its destination is decided and removes itself when its record is written.
 */
import type { MeshError } from '../../lib/errors.js';
import type { ConnectionSummary } from '../dataplane/protocol.js';
import type { ConnectionAttributes } from '../policy/rbac.js';

export interface TrackedConnection {
  readonly direction: 'inbound' | 'outbound';
  readonly summary: ConnectionSummary;
  /** Inbound only: what authorization was decided on; re-evaluated when policies change. */
  readonly attributes: ConnectionAttributes | undefined;
  /** Closes the connection from outside (both sides reset); it leaves the tracker once its record is written. */
  close(reason: MeshError): void;
}

export class ConnectionTracker {
  readonly #live = new Set<TrackedConnection>();
  #emptied: Array<() => void> = [];

  /** Registers a connection; returns its removal. */
  add(c: TrackedConnection): () => void {
    this.#live.add(c);
    return () => {
      if (!this.#live.delete(c) || this.#live.size > 0) return;
      const waiters = this.#emptied;
      this.#emptied = [];
      for (const w of waiters) w();
    };
  }

  get size(): number {
    return this.#live.size;
  }

  /** Resolves when no connection is tracked (at once if none is). */
  whenEmpty(): Promise<void> {
    if (this.#live.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#emptied.push(resolve));
  }

  summaries(direction: 'inbound' | 'outbound'): ConnectionSummary[] {
    return [...this.#live].filter((c) => c.direction === direction).map((c) => c.summary);
  }

  /**
   * Closes every inbound connection for which `denial` now gives a reason (undefined = still allowed) with the
   * error `closeWith` makes of it. Returns how many were closed.
   */
  recheck(denial: (attributes: ConnectionAttributes) => string | undefined, closeWith: (reason: string) => MeshError): number {
    let closed = 0;
    for (const c of [...this.#live]) {
      if (c.direction !== 'inbound' || !c.attributes) continue;
      const reason = denial(c.attributes);
      if (reason !== undefined) {
        c.close(closeWith(reason));
        closed++;
      }
    }
    return closed;
  }

  closeAll(reason: MeshError): void {
    for (const c of [...this.#live]) c.close(reason);
  }
}
