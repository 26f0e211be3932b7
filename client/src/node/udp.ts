// The gateway's UDP socket (node:dgram) for the engine's UDP paths: one
// dual-stack socket (IPv4 and IPv6 on one port, as the native data plane's),
// or IPv4 alone on a host without IPv6. Addresses go in and come out as
// plain IPv4 or IPv6 text; IPv4-mapped IPv6 stays inside.
import { createSocket, type Socket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
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

/**
 * Addresses of this host's interfaces that another host could reach: IPv4
 * and (unless `v4only`) IPv6 global and unique-local ones — not loopback,
 * link-local (they need a scope), or the tailnet's own.
 */
export function reachableAddresses(v4only = false): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) {
      if (ni.internal) continue;
      if (ni.family === "IPv6" && (v4only || ni.scopeid !== 0 || /^fe[89ab]/i.test(ni.address))) continue;
      const a = parseAddr(ni.address);
      if (!a || isTailnetAddr(a) || ni.address.startsWith("169.254.")) continue;
      out.push(ni.address);
    }
  }
  return out;
}

function bind(type: "udp4" | "udp6", port: number): Promise<Socket> {
  const sock = createSocket({ type, reuseAddr: false, ...(type === "udp6" ? { ipv6Only: false } : {}) });
  return new Promise<Socket>((resolve, reject) => {
    sock.once("error", (err) => {
      sock.close();
      reject(err);
    });
    sock.bind(port, type === "udp6" ? "::" : "0.0.0.0", () => resolve(sock));
  });
}

/** A datagram's address as this socket sends to it. */
function toSocket(address: string, v6: boolean): string {
  return v6 && isIP(address) === 4 ? `::ffff:${address}` : address;
}

/** A datagram's sender as the engine keys it. */
function fromSocket(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

export const openUdpSocket: UdpSocketFactory = async (port) => {
  let sock: Socket;
  let v6 = true;
  try {
    sock = await bind("udp6", port);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // No IPv6 here (EAFNOSUPPORT, EADDRNOTAVAIL): IPv4 alone. A port in use is the same either way.
    if (code === "EADDRINUSE" || code === "EACCES")
      throw new UdpBindError(`cannot bind UDP port ${port}: ${(err as Error).message}`, { cause: err });
    v6 = false;
    sock = await bind("udp4", port).catch((e: unknown) => {
      throw new UdpBindError(`cannot bind UDP port ${port}: ${(e as Error).message}`, { cause: e });
    });
  }
  // A send to an unreachable address reports here; it must not end the socket.
  sock.on("error", () => undefined);
  try {
    sock.setRecvBufferSize(UDP_BUFFER_BYTES);
    sock.setSendBufferSize(UDP_BUFFER_BYTES);
  } catch {
    // Capped or refused by the kernel: the socket works with what it has.
  }
  let handler: (data: Uint8Array, from: { address: string; port: number }) => void = () => undefined;
  sock.on("message", (msg, rinfo) => handler(msg, { address: fromSocket(rinfo.address), port: rinfo.port }));
  const socket: UdpSocket = {
    port: sock.address().port,
    send: (data, to) => {
      if (isIP(to.address)) return sock.send(data, to.port, toSocket(to.address, v6));
      // A host name (a relay's STUN server): its IPv4 address, as the relay map intends.
      const copy = data.slice();
      lookup(to.address, { family: 4 }).then(
        (r) => sock.send(copy, to.port, toSocket(r.address, v6)),
        () => undefined, // unresolvable now: STUN asks again on its next round
      );
    },
    onMessage: (fn) => {
      handler = fn;
    },
    localAddresses: () => reachableAddresses(!v6),
    close: () => sock.close(),
  };
  return socket;
};
