// Matching packets against compiled filter rules, with the semantics of
// Tailscale's packet filter: a packet is accepted when some rule lists its
// source, its protocol (TCP, UDP, ICMPv4, ICMPv6 when IPProto is empty) and
// its destination address and port; ports are ignored for protocols that
// have none.
//
// Rules are compiled once (CompiledFilter) into integer ranges: IPv4
// addresses as 32-bit numbers, IPv6 as four 32-bit words, each address set
// sorted and merged so a lookup is a binary search. Matching then reads the
// addresses straight from a packet's bytes and allocates nothing, which is
// what a node needs per packet; the reachability checker and the policy's
// tests use the same matcher through `matchFilter`.
import { addrBytes, lastAddr, parseAddr, parsePrefix, type Addr } from "@trellis/proto/ip";
import type { FilterRule } from "./compile";
import { DEFAULT_PROTOS, protoHasPorts } from "./ports";

/** A packet as far as the filter cares: addresses, IANA protocol and destination port. */
export interface Packet {
  src: Addr;
  dst: Addr;
  proto: number;
  port: number;
}

export class FilterSyntaxError extends Error {
  override readonly name = "FilterSyntaxError";
}

/** An inclusive range of addresses of one family, as bigints. */
interface Range {
  v: 4 | 6;
  lo: bigint;
  hi: bigint;
}

function rangeOf(text: string): Range[] {
  if (text === "*") {
    return [
      { v: 4, lo: 0n, hi: (1n << 32n) - 1n },
      { v: 6, lo: 0n, hi: (1n << 128n) - 1n },
    ];
  }
  const dash = text.indexOf("-");
  if (dash >= 0) {
    const lo = parseAddr(text.slice(0, dash));
    const hi = parseAddr(text.slice(dash + 1));
    if (!lo || !hi || lo.v !== hi.v || lo.n > hi.n)
      throw new FilterSyntaxError(`bad address range "${text}"`);
    return [{ v: lo.v, lo: lo.n, hi: hi.n }];
  }
  const p = parsePrefix(text);
  if (!p) throw new FilterSyntaxError(`bad filter address "${text}"`);
  return [{ v: p.v, lo: p.base, hi: lastAddr(p) }];
}

/**
 * A set of addresses as sorted, merged, non-adjacent ranges: IPv4 in pairs of
 * numbers [lo, hi, …], IPv6 in groups of eight 32-bit words (lo's four, then
 * hi's four, most significant first).
 */
export class AddrRanges {
  private constructor(
    private readonly v4: Float64Array,
    private readonly v6: Uint32Array,
  ) {}

  static of(texts: readonly string[]): AddrRanges {
    const ranges = texts.flatMap(rangeOf);
    const merge = (v: 4 | 6) => {
      const rs = ranges.filter((r) => r.v === v).sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
      const out: Range[] = [];
      for (const r of rs) {
        const last = out.at(-1);
        if (last && r.lo <= last.hi + 1n) {
          if (r.hi > last.hi) last.hi = r.hi;
        } else out.push({ ...r });
      }
      return out;
    };
    const v4 = merge(4);
    const v6 = merge(6);
    const words = new Uint32Array(v6.length * 8);
    v6.forEach((r, i) => {
      for (let w = 0; w < 4; w++) {
        const shift = BigInt(96 - 32 * w);
        words[i * 8 + w] = Number((r.lo >> shift) & 0xffffffffn);
        words[i * 8 + 4 + w] = Number((r.hi >> shift) & 0xffffffffn);
      }
    });
    return new AddrRanges(Float64Array.from(v4.flatMap((r) => [Number(r.lo), Number(r.hi)])), words);
  }

  /** Whether the address in `bytes` (4 or 16 of them, network order) is in the set. */
  has(bytes: Uint8Array): boolean {
    if (bytes.length === 4)
      return this.has4(((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0);
    if (bytes.length === 16) return this.has6(bytes);
    return false;
  }

  private has4(a: number): boolean {
    const r = this.v4;
    let lo = 0;
    let hi = r.length / 2 - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (a < r[mid * 2]!) hi = mid - 1;
      else if (a > r[mid * 2 + 1]!) lo = mid + 1;
      else return true;
    }
    return false;
  }

  private has6(b: Uint8Array): boolean {
    const r = this.v6;
    let lo = 0;
    let hi = r.length / 8 - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (cmp6(b, r, mid * 8) < 0) hi = mid - 1;
      else if (cmp6(b, r, mid * 8 + 4) > 0) lo = mid + 1;
      else return true;
    }
    return false;
  }
}

/** Compare the 16-byte address `b` with the four words at `r[at]`. */
function cmp6(b: Uint8Array, r: Uint32Array, at: number): number {
  for (let w = 0; w < 4; w++) {
    const i = w * 4;
    const x = ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
    const y = r[at + w]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

interface CompiledRule {
  /** protos[p] is 1 when the rule covers IANA protocol p. */
  protos: Uint8Array;
  src: AddrRanges;
  dsts: { ip: AddrRanges; first: number; last: number }[];
}

/** A node's packet filter, compiled for matching packets one by one. */
export class CompiledFilter {
  private constructor(private readonly rules: CompiledRule[]) {}

  /** Compile Tailscale FilterRules; throws FilterSyntaxError on an address that is none. */
  static compile(rules: readonly FilterRule[]): CompiledFilter {
    return new CompiledFilter(
      rules.map((r) => {
        const protos = new Uint8Array(256);
        // A rule with no destinations (a capability grant) accepts no packets.
        if (r.DstPorts?.length)
          for (const p of r.IPProto?.length ? r.IPProto : DEFAULT_PROTOS) protos[p & 255] = 1;
        return {
          protos,
          src: AddrRanges.of(r.SrcIPs),
          dsts: (r.DstPorts ?? []).map((d) => ({
            ip: AddrRanges.of([d.IP]),
            first: d.Ports.First,
            last: d.Ports.Last,
          })),
        };
      }),
    );
  }

  /**
   * The index of the first rule accepting the packet, or -1 when the filter
   * drops it. Addresses are the packet's own bytes (4 for IPv4, 16 for IPv6);
   * `port` is the destination port, ignored for protocols without ports.
   */
  match(src: Uint8Array, dst: Uint8Array, proto: number, port: number): number {
    const ports = protoHasPorts(proto);
    for (let i = 0; i < this.rules.length; i++) {
      const r = this.rules[i]!;
      if (r.protos[proto] !== 1 || !r.src.has(src)) continue;
      for (const d of r.dsts) {
        if (!d.ip.has(dst)) continue;
        if (!ports || (port >= d.first && port <= d.last)) return i;
      }
    }
    return -1;
  }
}

const compiled = new WeakMap<readonly FilterRule[], CompiledFilter>();

/** The index of the first rule in `rules` accepting `pkt`, or -1 when the filter drops it. */
export function matchFilter(rules: readonly FilterRule[], pkt: Packet): number {
  let f = compiled.get(rules);
  if (!f) {
    f = CompiledFilter.compile(rules);
    compiled.set(rules, f);
  }
  return f.match(addrBytes(pkt.src), addrBytes(pkt.dst), pkt.proto, pkt.port);
}

/** A filter address (`*`, an IP, a CIDR or Tailscale's `a-b` range) as a predicate on addresses. */
export function addrSet(text: string): (a: Addr) => boolean {
  const ranges = AddrRanges.of([text]);
  return (a) => ranges.has(addrBytes(a));
}
