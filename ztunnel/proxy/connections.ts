/**
 * The live connections of one pod, so that /config_dump can list them and a policy change can close the
 * inbound ones it would now deny (ztunnel's PolicyWatcher: "connection closed due to policy change").
 */
import type { ConnectionAttributes } from '../policy/rbac.js';
import type { ConnectionSummary } from '../dataplane/protocol.js';

export interface TrackedConnection {
  readonly direction: 'inbound' | 'outbound';
  readonly summary: ConnectionSummary;
  /** Inbound only: what authorization was decided on; re-evaluated when policies change. */
  readonly attributes: ConnectionAttributes | undefined;
  /** Closes the connection (both sides reset). */
  readonly close: (reason: string) => void;
}

export class ConnectionTracker {
  readonly #live = new Set<TrackedConnection>();

  /** Registers a connection; returns its removal. */
  add(c: TrackedConnection): () => void {
    this.#live.add(c);
    return () => this.#live.delete(c);
  }

  get size(): number {
    return this.#live.size;
  }

  summaries(direction: 'inbound' | 'outbound'): ConnectionSummary[] {
    return [...this.#live].filter((c) => c.direction === direction).map((c) => c.summary);
  }

  /** Closes every inbound connection for which `stillAllowed` now says no. Returns how many were closed. */
  recheck(stillAllowed: (attributes: ConnectionAttributes) => string | undefined): number {
    let closed = 0;
    for (const c of [...this.#live]) {
      if (c.direction !== 'inbound' || !c.attributes) continue;
      const denial = stillAllowed(c.attributes);
      if (denial !== undefined) {
        c.close(`connection closed due to policy change: ${denial}`);
        this.#live.delete(c);
        closed++;
      }
    }
    return closed;
  }

  closeAll(reason: string): void {
    for (const c of this.#live) c.close(reason);
    this.#live.clear();
  }
}
