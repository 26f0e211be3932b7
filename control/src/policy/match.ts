// Matching a packet against compiled filter rules, with the semantics of
// Tailscale's packet filter: a packet is accepted when some rule lists its
// source, its protocol (TCP, UDP, ICMPv4, ICMPv6 when IPProto is empty) and
// its destination address and port; ports are ignored for protocols that
// have none. Used by tests and the reachability checker; nodes enforce the
// same rules.
import type { FilterRule } from "./compile";
import { parseAddr, parsePrefix, prefixContains, type Addr } from "./ip";
import { DEFAULT_PROTOS, protoHasPorts } from "./ports";

/** A packet as far as the filter cares: addresses, IANA protocol and destination port. */
export interface Packet {
  src: Addr;
  dst: Addr;
  proto: number;
  port: number;
}

type AddrSet = (a: Addr) => boolean;
const setCache = new Map<string, AddrSet>();

/** Compile a filter address (`*`, an IP, a CIDR or Tailscale's `a-b` range) into a predicate. */
export function addrSet(text: string): AddrSet {
  let f = setCache.get(text);
  if (f) return f;
  if (text === "*") f = () => true;
  else if (text.includes("-")) {
    const [lo, hi] = text.split("-").map((s) => parseAddr(s));
    if (!lo || !hi || lo.v !== hi.v) throw new Error(`bad address range "${text}"`);
    f = (a) => a.v === lo.v && a.n >= lo.n && a.n <= hi.n;
  } else {
    const p = parsePrefix(text);
    if (!p) throw new Error(`bad filter address "${text}"`);
    f = (a) => prefixContains(p, a);
  }
  if (setCache.size > 100_000) setCache.clear();
  setCache.set(text, f);
  return f;
}

/** The index of the first rule in `rules` accepting `pkt`, or -1 when the filter drops it. */
export function matchFilter(rules: readonly FilterRule[], pkt: Packet): number {
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (!r.DstPorts?.length) continue;
    const protos = r.IPProto?.length ? r.IPProto : DEFAULT_PROTOS;
    if (!protos.includes(pkt.proto)) continue;
    if (!r.SrcIPs.some((s) => addrSet(s)(pkt.src))) continue;
    const ports = protoHasPorts(pkt.proto);
    for (const d of r.DstPorts) {
      if (!addrSet(d.IP)(pkt.dst)) continue;
      if (!ports || (pkt.port >= d.Ports.First && pkt.port <= d.Ports.Last)) return i;
    }
  }
  return -1;
}
