/**
 * ztunnel's side of ZDS (ztunnel src/inpod/workloadmanager.rs, protocol.rs): connect to the node agent's
 * SOCK_SEQPACKET socket, say ZdsHello{V1}, then handle the agent's WorkloadRequests strictly in order and answer
 * each with WorkloadResponse{ack{error}} ('' = ACK, text = NACK). The agent sends its snapshot (Add/Keep per pod)
 * and SnapshotSent first, then Add/Del updates.
 *
 * Connection: path from the `path` option (the settings' INPOD_UDS), else /var/run/ztunnel/ztunnel.sock. While the
 * agent is absent (no socket, or refused) the client retries with backoff 10 ms doubling up to 5 s (as ztunnel);
 * after a connection ends (agent restart) it reconnects at once with the initial backoff, and the agent sends a
 * fresh snapshot on the new connection. A disconnect changes nothing in the running proxies: the snapshot that
 * follows re-sends every pod (kept when its namespace is unchanged), and only SnapshotSent drops pods.
 *
 * Netns descriptor ownership (the one rule callers must know):
 *   - The descriptor passed to InpodHandler.addWorkload belongs to the handler from the moment of the call,
 *     whether the call resolves or rejects. The handler closes it when it no longer needs the namespace (on
 *     delWorkload, when a newer Add with another namespace replaces the pod, when snapshotSent drops the pod, or
 *     at once if it gives up or already runs the pod in that namespace). It may keep it to retry a failed add
 *     later, as ztunnel keeps failed adds pending.
 *   - The client closes every descriptor it does not hand over: those arriving with an invalid or unexpected
 *     message, extra descriptors, and any that arrive after close().
 *
 * Readiness: `connected` (hello sent on a live connection) and `snapshotReceived` (SnapshotSent handled on the
 * current connection); both fall back to false when the connection ends. ztunnel reports ready only when both
 * hold (ztunnel src/inpod/workloadmanager.rs: not ready until connected and reconciled).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { hasErrorCode, describeError } from '../../lib/errors.js';
import { NativeErrorCode, SeqpacketConnection, closeFd } from '../../lib/native/index.js';
import {
  ZDS_DEFAULT_SOCKET_PATH,
  ZDS_MAX_MESSAGE_BYTES,
  ZdsError,
  ZdsErrorCode,
  decodeRequest,
  describeRequest,
  encodeAck,
  encodeHello,
  type ZdsReceivedRequest,
  type ZdsWorkloadInfo,
} from '../../lib/zds/index.js';
import { componentLogger, type Logger } from '../../lib/telemetry/logger.js';

export type InpodWorkloadInfo = ZdsWorkloadInfo;

/**
 * What ztunnel does with the agent's requests. A rejection (or throw) becomes a NACK carrying its message;
 * the agent logs it and retries Adds later. Calls never overlap: the next request is read only after the
 * previous call settled and was answered.
 */
export interface InpodHandler {
  /**
   * Start (or replace) the proxy for pod `uid` inside the namespace `netnsFd`. The handler owns `netnsFd`
   * from this call on, even when it rejects (see the module comment). An Add for a uid whose proxy already runs
   * in the same namespace (same nsfs device and inode) must leave that proxy and its connections untouched and
   * close `netnsFd`: every snapshot, so every reconnect, repeats the Add of every pod the agent holds. With
   * another namespace (the pod's sandbox was re-created) the old proxy is replaced.
   */
  addWorkload(uid: string, info: InpodWorkloadInfo, netnsFd: number): Promise<void>;
  /** Snapshot only: the agent knows `uid` but no longer holds its netns; keep any proxy already running for it. */
  keepWorkload(uid: string): void | Promise<void>;
  /** Stop and remove the proxy of `uid` (unknown uids are fine) and close its netns descriptor. */
  delWorkload(uid: string): Promise<void>;
  /**
   * The snapshot is complete: drop every proxy whose uid is not in `current` (the uids added or kept since
   * this connection was established, minus those deleted since).
   */
  snapshotSent(current: ReadonlySet<string>): Promise<void>;
  /**
   * Optional: a new connection was established (hello sent) and a snapshot will follow. Called before the
   * first request of every connection, including reconnects after an agent restart.
   */
  connected?(): void;
}

export interface ZdsClientOptions {
  handler: InpodHandler;
  /** The agent's socket (ztunnel passes its INPOD_UDS setting); default /var/run/ztunnel/ztunnel.sock. */
  path?: string;
  logger?: Logger;
  /** First reconnect delay, default 10 ms (ztunnel). */
  initialBackoffMs?: number;
  /** Longest reconnect delay, default 5000 ms (ztunnel). */
  maxBackoffMs?: number;
}

export interface ZdsClientState {
  connected: boolean;
  snapshotReceived: boolean;
}

export class ZdsClient {
  readonly path: string;
  readonly #handler: InpodHandler;
  readonly #log: Logger;
  readonly #initialBackoff: number;
  readonly #maxBackoff: number;
  readonly #listeners = new Set<(s: ZdsClientState) => void>();
  #conn: SeqpacketConnection | null = null;
  #connected = false;
  #snapshotReceived = false;
  #connections = 0;
  #closed = false;
  #started = false;
  #loop: Promise<void> | null = null;
  #abort = new AbortController();

  constructor(opts: ZdsClientOptions) {
    this.#handler = opts.handler;
    this.path = opts.path ?? ZDS_DEFAULT_SOCKET_PATH;
    this.#log = (opts.logger ?? componentLogger('inpod')).child({ zds: this.path });
    this.#initialBackoff = opts.initialBackoffMs ?? 10;
    this.#maxBackoff = opts.maxBackoffMs ?? 5000;
  }

  /** A live connection on which the hello was sent. */
  get connected(): boolean {
    return this.#connected;
  }

  /** SnapshotSent was handled on the current connection (reset on disconnect). */
  get snapshotReceived(): boolean {
    return this.#snapshotReceived;
  }

  /** connected && snapshotReceived: what ztunnel's readiness needs from ZDS. */
  get ready(): boolean {
    return this.#connected && this.#snapshotReceived;
  }

  /** How many connections were established so far (each one gets its own snapshot). */
  get connections(): number {
    return this.#connections;
  }

  /** Calls `listener` on every change of connected/snapshotReceived; returns the unsubscribe function. */
  onStateChange(listener: (s: ZdsClientState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves once a snapshot has been received on the current connection; rejects ZDS_TIMEOUT after `timeoutMs`. */
  waitForSnapshot(timeoutMs = 10_000): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new ZdsError(ZdsErrorCode.TIMEOUT, `no ZDS snapshot from ${this.path} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onStateChange((s) => {
        if (s.connected && s.snapshotReceived) {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    });
  }

  /** Starts connecting (idempotent). */
  start(): this {
    if (this.#started || this.#closed) return this;
    this.#started = true;
    this.#loop = this.#run().catch((err: unknown) => {
      this.#log.error({ err: describeError(err) }, 'ZDS client loop failed');
    });
    return this;
  }

  /** Disconnects and stops reconnecting. Resolves when the loop has ended (an in-flight handler call finished). */
  async close(): Promise<void> {
    if (this.#closed) return this.#loop ?? undefined;
    this.#closed = true;
    this.#abort.abort();
    this.#conn?.close();
    await this.#loop;
  }

  #setState(connected: boolean, snapshotReceived: boolean): void {
    if (connected === this.#connected && snapshotReceived === this.#snapshotReceived) return;
    this.#connected = connected;
    this.#snapshotReceived = snapshotReceived;
    const s = { connected, snapshotReceived };
    for (const l of [...this.#listeners]) {
      try {
        l(s);
      } catch (err) {
        this.#log.warn({ err: describeError(err) }, 'ZDS state listener threw');
      }
    }
  }

  async #sleep(ms: number): Promise<void> {
    try {
      await delay(ms, undefined, { signal: this.#abort.signal });
    } catch {
      // aborted by close()
    }
  }

  async #run(): Promise<void> {
    let backoff = this.#initialBackoff;
    let lastError = '';
    while (!this.#closed) {
      let conn: SeqpacketConnection;
      try {
        // 1024 bytes like ztunnel's read buffer: a longer datagram is MSG_TRUNC, reported, never half-read.
        conn = await SeqpacketConnection.connect(this.path, { bufferSize: ZDS_MAX_MESSAGE_BYTES, maxFds: 4 });
      } catch (err) {
        const text = describeError(err);
        // Log each distinct failure once, not every 5 s while the agent is down.
        if (text !== lastError) this.#log.info({ err: text, retryInMs: backoff }, 'node agent not reachable; retrying');
        lastError = text;
        await this.#sleep(backoff);
        backoff = Math.min(backoff * 2, this.#maxBackoff);
        continue;
      }
      if (this.#closed) {
        conn.close();
        break;
      }
      this.#conn = conn;
      try {
        await conn.send(encodeHello());
      } catch (err) {
        this.#log.warn({ err: describeError(err) }, 'sending ZdsHello failed; reconnecting');
        conn.close();
        this.#conn = null;
        await this.#sleep(backoff);
        backoff = Math.min(backoff * 2, this.#maxBackoff);
        continue;
      }
      backoff = this.#initialBackoff;
      lastError = '';
      this.#connections++;
      this.#log.info({ connection: this.#connections }, 'connected to the node agent; waiting for the snapshot');
      this.#setState(true, false);
      try {
        this.#handler.connected?.();
      } catch (err) {
        this.#log.warn({ err: describeError(err) }, 'InpodHandler.connected threw');
      }
      try {
        await this.#serve(conn);
      } finally {
        conn.close();
        this.#conn = null;
        this.#setState(false, false);
      }
      if (!this.#closed) {
        this.#log.warn('node agent connection ended; reconnecting');
        await this.#sleep(backoff);
      }
    }
  }

  /** Reads requests until the connection ends; each one is handled and answered before the next is read. */
  async #serve(conn: SeqpacketConnection): Promise<void> {
    // uids added or kept on this connection (and not deleted since): what survives SnapshotSent.
    const current = new Set<string>();
    let snapshotDone = false;
    for (;;) {
      let msg: Awaited<ReturnType<SeqpacketConnection['recv']>>;
      let nack: string | null = null;
      try {
        msg = await conn.recv();
      } catch (err) {
        if (!hasErrorCode(err, NativeErrorCode.SEQPACKET_TRUNCATED)) {
          if (!this.#closed) this.#log.warn({ err: describeError(err) }, 'reading from the node agent failed');
          return;
        }
        // The native layer already closed any fds of the truncated datagram; the stream itself is intact.
        msg = { data: Buffer.alloc(0), fds: [] };
        nack = `message rejected: ${describeError(err)}`;
      }
      if (msg === null) return; // EOF: the agent closed or restarted
      if (this.#closed) {
        closeAll(msg.fds);
        return;
      }
      let req: ZdsReceivedRequest | null = null;
      if (nack === null) {
        try {
          req = decodeRequest(msg.data, msg.fds);
        } catch (err) {
          closeAll(msg.fds);
          nack = describeError(err);
        }
      }
      if (req !== null) nack = await this.#handle(req, current, snapshotDone);
      if (req?.kind === 'snapshotSent' && !snapshotDone) {
        snapshotDone = true;
        this.#setState(true, true);
      }
      if (nack !== null) {
        this.#log.warn({ request: req === null ? 'invalid' : describeRequest(req), error: nack }, 'NACK to the node agent');
      }
      try {
        await conn.send(encodeAck(nack ?? ''));
      } catch (err) {
        if (!this.#closed) this.#log.warn({ err: describeError(err) }, 'answering the node agent failed');
        return;
      }
    }
  }

  /** Runs one request through the handler; returns null for ACK or the NACK text. */
  async #handle(req: ZdsReceivedRequest, current: Set<string>, snapshotDone: boolean): Promise<string | null> {
    this.#log.debug({ request: describeRequest(req) }, 'ZDS request');
    try {
      switch (req.kind) {
        case 'add':
          current.add(req.uid);
          // Ownership of netnsFd passes to the handler here, whatever the outcome.
          await Promise.resolve().then(() => this.#handler.addWorkload(req.uid, req.info, req.netnsFd));
          return null;
        case 'keep':
          if (snapshotDone) {
            return `KeepWorkload ${req.uid} after SnapshotSent: Keep is only valid in a snapshot`;
          }
          current.add(req.uid);
          await Promise.resolve().then(() => this.#handler.keepWorkload(req.uid));
          return null;
        case 'del':
          current.delete(req.uid);
          await Promise.resolve().then(() => this.#handler.delWorkload(req.uid));
          return null;
        case 'snapshotSent':
          if (snapshotDone) return 'duplicate SnapshotSent on this connection';
          await Promise.resolve().then(() => this.#handler.snapshotSent(new Set(current)));
          return null;
      }
    } catch (err) {
      return describeError(err) || 'handler failed';
    }
  }
}

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeFd(fd);
    } catch {
      // already closed; nothing else to do
    }
  }
}
