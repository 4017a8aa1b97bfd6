/**
 * HBONE budgets: every window, cap and timeout of the tunnel, with the reason for its default.
 * Values follow ztunnel (src/config.rs) so that our proxies and Istio's behave alike on the wire.
 */
const KiB = 1024;
const MiB = 1024 * KiB;

export interface HboneConfig {
  /** Initial HTTP/2 stream window. Node's default (64 KiB) caps one tunnel at ~3 MB/s at 20 ms RTT. ztunnel: 4 MiB. */
  readonly streamWindowBytes: number;
  /**
   * Connection window, shared by all streams of a session. ztunnel uses 16 MiB; ours is 4 MiB because Node's
   * HTTP/2 stops reading its socket while one of its own writes is pending (node_http2.cc
   * `Http2Session::MaybeStopReading`, nodejs/node#29399). Two Node peers moving bulk both ways on one session then
   * deadlock as soon as more is in flight per direction than the two kernels' socket buffers hold: each waits for
   * the other to read. Measured on loopback TLS: 8 tunnels echoing 16 MiB stall at 8 and 16 MiB and complete at
   * 4–6 MiB. One stream still gets its whole 4 MiB stream window.
   */
  readonly connectionWindowBytes: number;
  /** Largest DATA frame we accept. ztunnel: 1 MiB; fewer frames per megabyte moved. */
  readonly maxFrameBytes: number;
  /** Streams a pooled client connection carries before the pool opens another. ztunnel POOL_MAX_STREAMS_PER_CONNECTION. */
  readonly maxStreamsPerConnection: number;
  /** What a server advertises as SETTINGS_MAX_CONCURRENT_STREAMS (hyper's default, as ztunnel). */
  readonly serverMaxConcurrentStreams: number;
  /** Largest request header block a server accepts. ztunnel: 64 KiB. Bigger is refused, not buffered. */
  readonly serverMaxHeaderListBytes: number;
  /** Largest response header block a client accepts. ztunnel: 16 KiB. */
  readonly clientMaxHeaderListBytes: number;
  /**
   * Node's per-session memory ceiling (MB) before it refuses new streams (ENHANCE_YOUR_CALM). Incoming data is
   * bounded by the connection window and outgoing by stream back-pressure, so 64 MB leaves headroom.
   */
  readonly maxSessionMemoryMb: number;
  /** Idle pooled connections (no streams) are closed after this long. ztunnel POOL_UNUSED_RELEASE_TIMEOUT: 5 min. */
  readonly poolIdleReleaseMs: number;
  /** Keepalive: a PING this often on every session... */
  readonly pingIntervalMs: number;
  /** ...and a session whose PING is not answered in this long is dropped (a dead peer must not hold tunnels). */
  readonly pingTimeoutMs: number;
  /** TCP connect + TLS handshake budget for a new HBONE connection. ztunnel: 10 s. */
  readonly connectTimeoutMs: number;
  /** A server drops a connection that has not finished its TLS handshake in this long (slow-handshake defence). */
  readonly handshakeTimeoutMs: number;
  /** Time from CONNECT to the 200 (or error) response before the client gives up. */
  readonly responseTimeoutMs: number;
  /** A server drops a connection that negotiated no ALPN or not h2 after this long. */
  readonly unknownProtocolTimeoutMs: number;
  /**
   * A server closes (GOAWAY) a connection that has carried no stream for this long, freeing what Node holds for it
   * (IDLE_CONNECTION_MEMORY_BUDGET_BYTES). Twice poolIdleReleaseMs: a ztunnel pool releases its idle connections
   * first, so only a peer holding connections idle longer than any pool would (a hostile one) meets this.
   */
  readonly serverIdleSessionMs: number;
}

export const DEFAULT_HBONE_CONFIG: HboneConfig = Object.freeze({
  streamWindowBytes: 4 * MiB,
  connectionWindowBytes: 4 * MiB,
  maxFrameBytes: 1 * MiB,
  maxStreamsPerConnection: 100,
  serverMaxConcurrentStreams: 200,
  serverMaxHeaderListBytes: 64 * KiB,
  clientMaxHeaderListBytes: 16 * KiB,
  maxSessionMemoryMb: 64,
  poolIdleReleaseMs: 5 * 60_000,
  pingIntervalMs: 10_000,
  pingTimeoutMs: 20_000,
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  responseTimeoutMs: 10_000,
  unknownProtocolTimeoutMs: 1_000,
  serverIdleSessionMs: 10 * 60_000,
});

/**
 * What one idle HBONE connection may cost on either end, native and JS memory together (bench:idle measures it,
 * test/inprocess/hbone-memory.test.ts holds it to this). Measured on Node 20 after one tunnel round trip, per end:
 * ~107 KiB TLS (OpenSSL's per-connection state and Node's 64 KiB TLS read buffer, whose pages fill as traffic
 * passes: why RSS keeps rising toward this after the connections are opened), ~25 KiB HTTP/2 (nghttp2 and Node's
 * session), ~8-10 KiB JS (socket, session, keepalive timers): ~140 KiB. After bulk traffic Node's TLS write buffer
 * keeps up to two buffers the size of the largest burst written at once (about one 64 KiB socket read per busy
 * stream), ~230 KiB per connection, until the connection closes; serverIdleSessionMs and poolIdleReleaseMs bound
 * how long an idle one lives. Session tickets are off on the server (tls.ts): they cost ~16 KiB per connection.
 */
export const IDLE_CONNECTION_MEMORY_BUDGET_BYTES = 256 * KiB;

/** HBONE listens on 15008 in every proxy (Istio convention). */
export const HBONE_PORT = 15008;

/** TLS 1.3 suites ztunnel allows (AES-GCM only; ChaCha20 is slower where AES-NI exists). */
export const HBONE_CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256';

export function hboneConfig(overrides: Partial<HboneConfig> = {}): HboneConfig {
  return Object.freeze({ ...DEFAULT_HBONE_CONFIG, ...overrides });
}
