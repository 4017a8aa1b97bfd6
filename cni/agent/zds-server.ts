/**
 * The node agent's ZDS server (istio cni/pkg/nodeagent/ztunnelserver.go): ztunnel connects to a SOCK_SEQPACKET
 * socket and sends ZdsHello (5 s deadline); the agent then sends its snapshot — AddWorkload with the pod's netns
 * descriptor for every pod whose namespace it holds, KeepWorkload for the others — and SnapshotSent, waiting for
 * the ack of each message before the next (5 s deadline). Afterwards it sends Add/Del as pods come and go:
 * Adds go to the newest connection, Dels to every connection (a ztunnel being replaced must drop the pod too).
 *
 * Each connection has one send queue, so requests and acks never interleave, and one reader that is always
 * waiting: a reply is matched to the request in flight, EOF is noticed at once (Istio polls with a 10 ms read
 * instead), anything unsolicited is a protocol violation. A missed ack deadline closes the connection instead
 * of carrying on as Istio does: a late ack would otherwise be taken for the next request's. ztunnel reconnects
 * and gets a fresh snapshot.
 *
 * Descriptors: the server never closes pod descriptors; it reads them from the SnapshotSource right before each
 * send (never from a list taken earlier), so a pod removed meanwhile is skipped rather than sent a closed (or
 * reused) fd number. The agent closes a pod's descriptor only after podDeleted() resolved, which is after every
 * earlier queued send on every connection.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { describeError } from '../../lib/errors.js';
import { SeqpacketServer, closeFd, type SeqpacketConnection } from '../../lib/native/index.js';
import {
  ZDS_DEFAULT_TIMEOUT_MS,
  ZDS_MAX_MESSAGE_BYTES,
  ZdsError,
  ZdsErrorCode,
  decodeAck,
  decodeHello,
  describeRequest,
  encodeRequest,
  type ZdsRequest,
  type ZdsWorkloadInfo,
} from '../../lib/zds/index.js';
import type { Logger } from '../../lib/telemetry/logger.js';

export interface ZdsSnapshotEntry {
  uid: string;
  info: ZdsWorkloadInfo;
  /** undefined: the namespace is not held; sent as KeepWorkload. */
  netnsFd: number | undefined;
}

/** Where the snapshot comes from: read lazily, entry by entry, at send time. */
export interface SnapshotSource {
  uids(): string[];
  entry(uid: string): ZdsSnapshotEntry | undefined;
}

export interface ZdsServerOptions {
  path: string;
  pods: SnapshotSource;
  logger: Logger;
  /** Hello and ack deadline, default 5000 ms. */
  timeoutMs?: number;
  /** The ack (''), NACK text, of each snapshot Add/Keep: lets the agent mark pods delivered or pending. */
  onSnapshotAck?: (uid: string, error: string) => void;
  /** A connection finished its snapshot (the agent may retry pending pods). */
  onSnapshotDone?: () => void;
}

let nextConnId = 0;

/** One ztunnel connection. */
class ZtunnelConnection {
  readonly id = ++nextConnId;
  helloReceived = false;
  closed = false;
  readonly #conn: SeqpacketConnection;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #onClose: (c: ZtunnelConnection) => void;
  readonly #onHello: (c: ZtunnelConnection) => void;
  #queue: Promise<unknown> = Promise.resolve();
  #waiter: { resolve: (error: string) => void; reject: (err: unknown) => void } | null = null;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    conn: SeqpacketConnection,
    opts: {
      log: Logger;
      timeoutMs: number;
      onClose: (c: ZtunnelConnection) => void;
      onHello: (c: ZtunnelConnection) => void;
    },
  ) {
    this.#conn = conn;
    this.#log = opts.log.child({ conn: this.id });
    this.#timeoutMs = opts.timeoutMs;
    this.#onClose = opts.onClose;
    this.#onHello = opts.onHello;
    this.#timer = setTimeout(() => this.close(`no ZdsHello within ${this.#timeoutMs} ms`), this.#timeoutMs);
    void this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    for (;;) {
      let msg: Awaited<ReturnType<SeqpacketConnection['recv']>>;
      try {
        msg = await this.#conn.recv();
      } catch (err) {
        this.close(`read failed: ${describeError(err)}`);
        return;
      }
      if (msg === null) {
        this.close('ztunnel closed the connection');
        return;
      }
      try {
        if (!this.helloReceived) {
          const version = decodeHello(msg.data, msg.fds);
          clearTimeout(this.#timer);
          this.helloReceived = true;
          this.#log.info({ version }, 'ztunnel said hello');
          this.#onHello(this);
        } else if (this.#waiter !== null) {
          const w = this.#waiter;
          this.#waiter = null;
          clearTimeout(this.#timer);
          w.resolve(decodeAck(msg.data, msg.fds));
        } else {
          throw new ZdsError(ZdsErrorCode.PROTOCOL_VIOLATION, 'ztunnel sent a message without a request in flight');
        }
      } catch (err) {
        for (const fd of msg.fds) closeQuietly(fd);
        this.close(describeError(err));
        return;
      }
    }
  }

  /**
   * Queues one request; resolves with its ack text ('' = ACK) or rejects (ZDS_CONNECTION_CLOSED, ZDS_TIMEOUT).
   * `req` may be a function evaluated when the request's turn comes (null = skip, resolves '').
   */
  exchange(req: () => { request: ZdsRequest; fds: number[] } | null): Promise<string> {
    const run = async (): Promise<string> => {
      if (this.closed) throw new ZdsError(ZdsErrorCode.CONNECTION_CLOSED, `ztunnel connection ${this.id} is closed`);
      const r = req();
      if (r === null) return '';
      const bytes = encodeRequest(r.request);
      const acked = new Promise<string>((resolve, reject) => {
        this.#waiter = { resolve, reject };
      });
      this.#timer = setTimeout(() => {
        this.close(`no ack for ${describeRequest(r.request)} within ${this.#timeoutMs} ms`, ZdsErrorCode.TIMEOUT);
      }, this.#timeoutMs);
      try {
        await this.#conn.send(bytes, r.fds);
      } catch (err) {
        this.close(`send failed: ${describeError(err)}`);
      }
      return acked;
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  close(reason: string, code: ZdsErrorCode = ZdsErrorCode.CONNECTION_CLOSED): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.#timer);
    this.#conn.close();
    this.#log.info({ reason }, 'ztunnel connection closed');
    const w = this.#waiter;
    this.#waiter = null;
    w?.reject(new ZdsError(code, `ztunnel connection ${this.id}: ${reason}`));
    this.#onClose(this);
  }
}

export class ZdsServer {
  readonly path: string;
  readonly #server: SeqpacketServer;
  readonly #opts: ZdsServerOptions;
  readonly #log: Logger;
  readonly #conns: ZtunnelConnection[] = [];
  #closed = false;

  static listen(opts: ZdsServerOptions): ZdsServer {
    mkdirSync(dirname(opts.path), { recursive: true });
    // Replaces a stale socket left by a previous agent (as Istio's newZtunnelServer does).
    const server = SeqpacketServer.listen(opts.path, {
      mode: 0o600,
      connection: { bufferSize: ZDS_MAX_MESSAGE_BYTES, maxFds: 4 },
    });
    return new ZdsServer(server, opts);
  }

  private constructor(server: SeqpacketServer, opts: ZdsServerOptions) {
    this.#server = server;
    this.path = opts.path;
    this.#opts = opts;
    this.#log = opts.logger;
    void this.#acceptLoop();
  }

  /** Connections that said hello (the newest last). */
  get readyConnections(): number {
    return this.#conns.filter((c) => c.helloReceived && !c.closed).length;
  }

  get connected(): boolean {
    return this.readyConnections > 0;
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closed) {
      let conn: SeqpacketConnection;
      try {
        conn = await this.#server.accept();
      } catch (err) {
        if (this.#closed) return;
        this.#log.error({ err: describeError(err) }, 'accepting a ztunnel connection failed');
        await new Promise((r) => setTimeout(r, 200)); // don't spin on a persistent error
        continue;
      }
      const zc = new ZtunnelConnection(conn, {
        log: this.#log,
        timeoutMs: this.#opts.timeoutMs ?? ZDS_DEFAULT_TIMEOUT_MS,
        onClose: (c) => {
          const i = this.#conns.indexOf(c);
          if (i >= 0) this.#conns.splice(i, 1);
        },
        onHello: (c) => this.#sendSnapshot(c),
      });
      this.#conns.push(zc);
      this.#log.info({ conn: zc.id, connections: this.#conns.length }, 'ztunnel connected');
    }
  }

  #sendSnapshot(c: ZtunnelConnection): void {
    // Queued first on this connection: later podAdded calls are answered after the snapshot.
    const uids = this.#opts.pods.uids();
    for (const uid of uids) {
      c.exchange(() => {
        const e = this.#opts.pods.entry(uid);
        if (e === undefined) return null; // deleted meanwhile
        return e.netnsFd === undefined
          ? { request: { kind: 'keep', uid }, fds: [] }
          : { request: { kind: 'add', uid, info: e.info }, fds: [e.netnsFd] };
      }).then(
        (error) => {
          if (error !== '') this.#log.warn({ uid, error }, 'ztunnel NACKed a snapshot entry');
          this.#opts.onSnapshotAck?.(uid, error);
        },
        () => undefined /* connection closed: reported by close() */,
      );
    }
    c.exchange(() => ({ request: { kind: 'snapshotSent' }, fds: [] })).then(
      (error) => {
        if (error !== '') this.#log.warn({ error }, 'ztunnel NACKed SnapshotSent');
        this.#log.info({ conn: c.id, pods: uids.length }, 'snapshot sent to ztunnel');
        this.#opts.onSnapshotDone?.();
      },
      () => undefined,
    );
  }

  /**
   * Sends AddWorkload to the newest ztunnel that said hello. Resolves with the ack text ('' = ACK); rejects
   * ZDS_NOT_CONNECTED when no ztunnel is there, ZDS_TIMEOUT / ZDS_CONNECTION_CLOSED when it went away.
   * `netnsFd` must stay open until this settles.
   */
  podAdded(uid: string, info: ZdsWorkloadInfo, netnsFd: number): Promise<string> {
    const newest = [...this.#conns].reverse().find((c) => c.helloReceived && !c.closed);
    if (newest === undefined) {
      return Promise.reject(new ZdsError(ZdsErrorCode.NOT_CONNECTED, 'no ztunnel is connected'));
    }
    return newest.exchange(() => ({ request: { kind: 'add', uid, info }, fds: [netnsFd] }));
  }

  /** Sends DelWorkload to every connected ztunnel; resolves when all answered or went away (errors are logged). */
  async podDeleted(uid: string): Promise<void> {
    const targets = this.#conns.filter((c) => c.helloReceived && !c.closed);
    await Promise.all(
      targets.map((c) =>
        c
          .exchange(() => ({ request: { kind: 'del', uid }, fds: [] }))
          .then(
            (error) => {
              if (error !== '') this.#log.warn({ uid, conn: c.id, error }, 'ztunnel NACKed DelWorkload');
            },
            (err: unknown) => this.#log.warn({ uid, conn: c.id, err: describeError(err) }, 'DelWorkload not delivered'),
          ),
      ),
    );
  }

  /** Stops listening and closes every connection (ztunnels reconnect to the next agent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const c of [...this.#conns]) c.close('agent shutting down');
  }
}

function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // already closed
  }
}
