// The gateway's UDP socket (node:dgram) for the engine's UDP paths. IPv4
// only for now: the STUN server, the NAT tests and every gateway measured
// here are IPv4; an IPv6 socket is the next step.
import { createSocket } from "node:dgram";
import { networkInterfaces } from "node:os";
import { isTailnetAddr, parseAddr } from "@trellis/proto/ip";
import type { UdpSocket, UdpSocketFactory } from "../paths/udp";

/**
 * Socket buffers asked for. Linux caps them at net.core.{r,w}mem_max
 * (usually 208 KiB) unless raised; the default drops datagrams when a burst
 * of WireGuard traffic arrives faster than one JS turn drains them.
 */
export const UDP_BUFFER_BYTES = 7 << 20;

export class UdpBindError extends Error {
  override readonly name = "UdpBindError";
}

/** Addresses of this host's interfaces that another host could reach. */
export function reachableAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) {
      if (ni.internal || ni.family !== "IPv4") continue;
      const a = parseAddr(ni.address);
      if (!a || isTailnetAddr(a) || ni.address.startsWith("169.254.")) continue;
      out.push(ni.address);
    }
  }
  return out;
}

export const openUdpSocket: UdpSocketFactory = async (port) => {
  const sock = createSocket({ type: "udp4", reuseAddr: false });
  await new Promise<void>((resolve, reject) => {
    sock.once("error", (err) =>
      reject(new UdpBindError(`cannot bind UDP port ${port}: ${err.message}`, { cause: err })),
    );
    sock.bind(port, () => resolve());
  });
  // A send to an unreachable address reports here; it must not end the socket.
  sock.on("error", () => undefined);
  try {
    sock.setRecvBufferSize(UDP_BUFFER_BYTES);
    sock.setSendBufferSize(UDP_BUFFER_BYTES);
  } catch {
    // Capped or refused by the kernel: the socket works with what it has.
  }
  let handler: (data: Uint8Array, from: { address: string; port: number }) => void = () => undefined;
  sock.on("message", (msg, rinfo) => handler(msg, { address: rinfo.address, port: rinfo.port }));
  const socket: UdpSocket = {
    port: sock.address().port,
    send: (data, to) => sock.send(data, to.port, to.address),
    onMessage: (fn) => {
      handler = fn;
    },
    localAddresses: reachableAddresses,
    close: () => sock.close(),
  };
  return socket;
};
