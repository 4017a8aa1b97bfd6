/**
 * Every socket a pod proxy makes, behind one interface (ztunnel src/proxy.rs `SocketFactory`, and its in-pod
 * variant in src/inpod/netns.rs that creates them inside the pod's network namespace).
 *
 * The in-pod implementation below is what ztunnel runs: sockets made inside the pod's netns through
 * `lib/native`, marked with SO_MARK so the pod's rules let them pass, the app dialled from the client's IP with
 * IP_TRANSPARENT, the original destination read with SO_ORIGINAL_DST. The in-process test tier injects a
 * loopback implementation (testbed/fixtures/loopback-sockets.ts) instead; everything above this interface —
 * routing, the HBONE pool and server, policy, telemetry — is the same code in both.
 */
import type { Socket } from 'node:net';
import { closeFd, createTcpListenerFd, dialFrom, getOriginalDst, type SocketAddress } from '../../lib/native/index.js';

/** What `server.listen()` is given: a listening fd made elsewhere, or an address to bind. */
export type ListenTarget = { readonly fd: number } | { readonly host: string; readonly port: number };

/** A listening socket reserved for one of the pod's ports. */
export interface PodListener {
  readonly target: ListenTarget;
  /** Frees the socket when no server took it (the pod stopped before its HBONE listener started). */
  release(): void;
}

export interface PodSockets {
  /** Reserves the pod's listener on `port`, on every address of the pod; conflicts throw here, at once. */
  listen(port: number): PodListener;
  /** A connection leaving the pod (HBONE to a peer, plain TCP, passthrough); emits 'connect' / 'error'. */
  dialOut(address: string, port: number): Socket;
  /** A connection to an app in the pod, from `sourceIp` when given (the app then sees the real caller). */
  dialApp(address: string, port: number, sourceIp: string | undefined): Socket;
  /** Where an accepted, redirected connection was going. Throws (with a stable code) when that is not known. */
  originalDst(socket: Socket): SocketAddress;
}

const family = (ip: string): 4 | 6 => (ip.includes(':') ? 6 : 4);

/**
 * Sockets inside the pod's network namespace `netnsFd`, each carrying `mark` (Istio: 0x539) so that the pod's
 * REDIRECT rules skip the proxy's own traffic.
 */
export function inPodSockets(netnsFd: number, mark: number): PodSockets {
  return {
    listen(port) {
      const fd = createTcpListenerFd({ netnsFd, address: '0.0.0.0', port, mark, reuseAddr: true });
      let owned = true;
      return {
        target: { fd },
        release: () => {
          if (owned) closeFd(fd);
          owned = false;
        },
      };
    },
    dialOut: (address, port) => dialFrom({ netnsFd, mark, host: address, port, family: family(address) }),
    dialApp: (address, port, sourceIp) =>
      dialFrom({
        netnsFd,
        mark,
        host: address,
        port,
        family: family(address),
        // A foreign source address needs IP_TRANSPARENT; the pod's fwmark rule routes the replies back to us.
        ...(sourceIp === undefined ? {} : { transparent: true, bindAddress: sourceIp }),
      }),
    originalDst: (socket) => getOriginalDst(socket),
  };
}
