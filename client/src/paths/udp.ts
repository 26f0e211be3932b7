// The UDP path's platform seam: one socket per node, carrying WireGuard
// datagrams, disco messages and STUN to and from any address. Nodes that have
// one (gateways: node:dgram) get direct paths to each other over it, with
// endpoints learned from STUN and NATs opened by simultaneous pings;
// browsers have none (their direct paths are WebRTC data channels).
import type { UdpAddr } from "./disco";

export interface UdpSocket {
  /** The bound local port. */
  readonly port: number;
  /** Send one datagram; errors (unreachable, no route) are counted, not thrown. */
  send(data: Uint8Array, to: UdpAddr): void;
  /** Every datagram received. `data` may be reused after the call returns. */
  onMessage(fn: (data: Uint8Array, from: UdpAddr) => void): void;
  /**
   * This host's own addresses that peers on the same networks could reach
   * (no loopback, link-local or tailnet addresses); with the port, the
   * node's local endpoint candidates.
   */
  localAddresses(): string[];
  close(): void;
}

/** Open the node's UDP socket (`port` 0: any free port). */
export type UdpSocketFactory = (port: number) => Promise<UdpSocket>;
