// MagicDNS as a node resolves it: a machine's name (`db`), its full name
// (`db.trellis.internal`, with or without the final dot) or an address
// literal → the address to use. From the netmap, with no DNS packets.
import { addrBytes, formatAddr, parseAddr, type Addr } from "@trellis/proto/ip";
import type { FullMap, Peer } from "@trellis/proto/node";

export interface Resolved {
  addr: Addr;
  /** Network-order bytes, as the engine's socket calls take them. */
  bytes: Uint8Array;
  text: string;
  /** The peer the name or address belongs to, when it is a machine's own address. */
  peer: Peer | null;
}

export class ResolveError extends Error {
  override readonly name = "ResolveError";
}

/** The first address of a peer in the family asked (IPv4 by default). */
function peerAddr(p: Peer, v6: boolean): Addr | null {
  for (const a of p.addresses) {
    const parsed = parseAddr(a.split("/")[0]!);
    if (parsed && (parsed.v === 6) === v6) return parsed;
  }
  return null;
}

/** Resolve `host` against the map: a name of a machine, or an address literal. */
export function resolveHost(map: FullMap, host: string, opts: { v6?: boolean } = {}): Resolved {
  const literal = parseAddr(host.replace(/^\[|\]$/g, ""));
  if (literal) {
    const text = formatAddr(literal);
    const peer = map.peers.find((p) => p.addresses.some((a) => a.split("/")[0] === text)) ?? null;
    return { addr: literal, bytes: addrBytes(literal), text, peer };
  }
  const name = host.toLowerCase().replace(/\.$/, "");
  const suffix = map.dns.domain ? `.${map.dns.domain.replace(/\.$/, "")}` : null;
  const short = suffix && name.endsWith(suffix) ? name.slice(0, -suffix.length) : name;
  const peer = map.peers.find((p) => p.name === short || p.dnsName.replace(/\.$/, "") === name);
  if (!peer) throw new ResolveError(`no machine named "${host}" in this tailnet (or the policy hides it)`);
  const addr = peerAddr(peer, opts.v6 ?? false) ?? peerAddr(peer, !(opts.v6 ?? false));
  if (!addr) throw new ResolveError(`machine ${peer.name} has no address`);
  return { addr, bytes: addrBytes(addr), text: formatAddr(addr), peer };
}
