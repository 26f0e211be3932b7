// IP addresses and prefixes, the one module for them (@trellis/proto/ip):
// parsing, canonical text, bytes as packets and protocols carry them,
// containment, and the tailnet's and the internet's address sets. Addresses
// are bigints so one code path serves IPv4 and IPv6; hot loops (the packet
// filter) compile them to integers first. Bundle-safe.

/** An IPv4 or IPv6 address. `n` is the address as an unsigned integer. */
export interface Addr {
  readonly v: 4 | 6;
  readonly n: bigint;
}

/** A CIDR prefix with its host bits cleared. */
export interface Prefix {
  readonly v: 4 | 6;
  readonly base: bigint;
  readonly bits: number;
}

const WIDTH = { 4: 32, 6: 128 } as const;
const MAX = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n } as const;

function parseV4(s: string): bigint | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  let n = 0n;
  for (const p of parts) {
    // Leading zeros are refused: some parsers read them as octal, so their meaning is ambiguous.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const octet = Number(p);
    if (octet > 255) return null;
    n = (n << 8n) | BigInt(octet);
  }
  return n;
}

function parseV6(s: string): bigint | null {
  if (s.length < 2 || s.includes("%")) return null;
  let tail4: bigint | null = null;
  let text = s;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    tail4 = parseV4(s.slice(lastColon + 1));
    if (tail4 === null) return null;
    text = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const group = (g: string) => (g === "" ? [] : g.split(":"));
  const head = group(halves[0]!);
  const tail = halves.length === 2 ? group(halves[1]!) : [];
  const groups =
    halves.length === 2 ? [...head, ...Array(8 - head.length - tail.length).fill("0"), ...tail] : head;
  if (groups.length !== 8 || (halves.length === 2 && head.length + tail.length > 7)) return null;
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== null) n = (n & ~0xffffffffn) | tail4;
  return n;
}

/** Parse an IPv4 or IPv6 address (no zone, no brackets); null when it is not one. */
export function parseAddr(s: string): Addr | null {
  if (s.includes(":")) {
    const n = parseV6(s);
    return n === null ? null : { v: 6, n };
  }
  const n = parseV4(s);
  return n === null ? null : { v: 4, n };
}

/**
 * Parse an address as a socket reports it: an IPv4-mapped IPv6 address
 * (`::ffff:192.0.2.1`, what a dual-stack socket gives for IPv4 peers) is the
 * IPv4 address, and a zone (`fe80::1%eth0`) is dropped.
 */
export function parseSocketAddr(s: string): Addr | null {
  const zone = s.indexOf("%");
  const a = parseAddr(zone < 0 ? s : s.slice(0, zone));
  if (a?.v === 6 && a.n >> 32n === 0xffffn) return { v: 4, n: a.n & 0xffffffffn };
  return a;
}

/** The address in network byte order: 4 bytes for IPv4, 16 for IPv6. */
export function addrBytes(a: Addr): Uint8Array {
  const out = new Uint8Array(a.v === 4 ? 4 : 16);
  let n = a.n;
  for (let i = out.length - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/** 16 bytes for any address, IPv4 mapped into IPv6 (`::ffff:a.b.c.d`), as DERP carries endpoints. */
export function addr16(a: Addr): Uint8Array {
  return addrBytes(a.v === 6 ? a : { v: 6, n: (0xffffn << 32n) | a.n });
}

/** The address in `bytes` (4 of them for IPv4, 16 for IPv6); null for any other length. */
export function addrFromBytes(bytes: Uint8Array): Addr | null {
  if (bytes.length !== 4 && bytes.length !== 16) return null;
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return { v: bytes.length === 4 ? 4 : 6, n };
}

/** Parse "a.b.c.d/len", "x::y/len" or a bare address (a /32 or /128); null when invalid. Host bits are cleared. */
export function parsePrefix(s: string): Prefix | null {
  const slash = s.indexOf("/");
  const addr = parseAddr(slash < 0 ? s : s.slice(0, slash));
  if (!addr) return null;
  let bits: number = WIDTH[addr.v];
  if (slash >= 0) {
    const b = s.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(b)) return null;
    bits = Number(b);
    if (bits > WIDTH[addr.v]) return null;
  }
  return prefixOf(addr, bits);
}

/** The prefix of `bits` bits containing `addr`. */
export function prefixOf(addr: Addr, bits: number): Prefix {
  const host = BigInt(WIDTH[addr.v] - bits);
  return { v: addr.v, base: (addr.n >> host) << host, bits };
}

/** The last address of a prefix. */
export function lastAddr(p: Prefix): bigint {
  return p.base | (MAX[p.v] >> BigInt(p.bits));
}

/** Whether `p` contains `a`. */
export function prefixContains(p: Prefix, a: Addr): boolean {
  if (p.v !== a.v) return false;
  const host = BigInt(WIDTH[p.v] - p.bits);
  return a.n >> host === p.base >> host;
}

/** Whether two prefixes share at least one address (one contains the other). */
export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  if (a.v !== b.v) return false;
  const bits = Math.min(a.bits, b.bits);
  const host = BigInt(WIDTH[a.v] - bits);
  return a.base >> host === b.base >> host;
}

/** Whether `outer` contains every address of `inner`. */
export function prefixCovers(outer: Prefix, inner: Prefix): boolean {
  return outer.v === inner.v && outer.bits <= inner.bits && prefixesOverlap(outer, inner);
}

/** Whether the prefix is one address (/32 or /128). */
export function isSingle(p: Prefix): boolean {
  return p.bits === WIDTH[p.v];
}

/** Canonical text of an address: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run as "::"). */
export function formatAddr(a: Addr): string {
  if (a.v === 4) {
    const n = Number(a.n);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((a.n >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1; // a single zero group is not compressed (RFC 5952 4.2.2)
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** Canonical text of a prefix: "10.0.0.0/8"; single addresses keep their "/32" or "/128". */
export function formatPrefix(p: Prefix): string {
  return `${formatAddr({ v: p.v, n: p.base })}/${p.bits}`;
}

/**
 * Text of a prefix the way Tailscale writes packet-filter addresses: a bare
 * address for a single host, CIDR notation otherwise.
 */
export function formatFilterIP(p: Prefix): string {
  return isSingle(p) ? formatAddr({ v: p.v, n: p.base }) : formatPrefix(p);
}

/** Order addresses IPv4 first, then numerically. */
export function compareAddr(a: Addr, b: Addr): number {
  if (a.v !== b.v) return a.v - b.v;
  return a.n < b.n ? -1 : a.n > b.n ? 1 : 0;
}

/** Order prefixes IPv4 first, then by first address, then shorter prefix first. */
export function comparePrefix(a: Prefix, b: Prefix): number {
  if (a.v !== b.v) return a.v - b.v;
  if (a.base !== b.base) return a.base < b.base ? -1 : 1;
  return a.bits - b.bits;
}

/** The smallest list of prefixes covering exactly the inclusive range [lo, hi]. */
export function rangeToPrefixes(v: 4 | 6, lo: bigint, hi: bigint): Prefix[] {
  const out: Prefix[] = [];
  const width = WIDTH[v];
  while (lo <= hi) {
    let bits = width;
    // Grow the block while it stays aligned on `lo` and inside the range.
    while (bits > 0) {
      const size = 1n << BigInt(width - bits + 1);
      if (lo % size !== 0n || lo + size - 1n > hi) break;
      bits--;
    }
    out.push({ v, base: lo, bits });
    lo += 1n << BigInt(width - bits);
  }
  return out;
}

/** `whole` minus every prefix in `holes`, as a sorted minimal prefix list. */
export function subtractPrefixes(whole: Prefix, holes: Prefix[]): Prefix[] {
  const ranges = holes
    .filter((h) => h.v === whole.v && prefixesOverlap(whole, h))
    .map((h) => [h.base, lastAddr(h)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Prefix[] = [];
  let cursor = whole.base;
  const end = lastAddr(whole);
  for (const [lo, hi] of ranges) {
    if (lo > cursor) out.push(...rangeToPrefixes(whole.v, cursor, lo - 1n < end ? lo - 1n : end));
    if (hi + 1n > cursor) cursor = hi + 1n;
  }
  if (cursor <= end) out.push(...rangeToPrefixes(whole.v, cursor, end));
  return out;
}

function must(s: string): Prefix {
  const p = parsePrefix(s);
  if (!p) throw new Error(`bad built-in prefix ${s}`);
  return p;
}

/** The tailnet's own address ranges (design notes §2). */
export const TAILNET_V4 = must("100.64.0.0/10");
export const TAILNET_V6 = must("fd7a:115c:a1e0::/48");
/**
 * The block Tailscale keeps out of the tailnet's IPv4 range (ChromeOS runs
 * its Android and Linux VMs there): no node is given an address in it, and
 * a policy's `*` does not cover it.
 */
export const CHROMEOS_V4 = must("100.115.92.0/23");

/** An inclusive range of addresses of one family. */
export interface AddrRange {
  readonly v: 4 | 6;
  readonly lo: bigint;
  readonly hi: bigint;
}

/**
 * The tailnet's address space as a packet-filter source: 100.64.0.0/10 less
 * 100.115.92.0/23, as the two `first-last` ranges Tailscale writes, and
 * fd7a:115c:a1e0::/48.
 */
export const TAILNET_SOURCES: readonly { readonly text: string; readonly range: AddrRange }[] = [
  rangeSource({ v: 4, lo: TAILNET_V4.base, hi: CHROMEOS_V4.base - 1n }),
  rangeSource({ v: 4, lo: lastAddr(CHROMEOS_V4) + 1n, hi: lastAddr(TAILNET_V4) }),
  { text: formatPrefix(TAILNET_V6), range: { v: 6, lo: TAILNET_V6.base, hi: lastAddr(TAILNET_V6) } },
];

function rangeSource(range: AddrRange): { text: string; range: AddrRange } {
  return {
    text: `${formatAddr({ v: range.v, n: range.lo })}-${formatAddr({ v: range.v, n: range.hi })}`,
    range,
  };
}

/** Whether `a` is in the tailnet's address space as {@link TAILNET_SOURCES} write it. */
export function isTailnetAddr(a: Addr): boolean {
  return a.v === 4
    ? prefixContains(TAILNET_V4, a) && !prefixContains(CHROMEOS_V4, a)
    : prefixContains(TAILNET_V6, a);
}

/** The two exit routes a node advertises to offer itself as an exit node. */
export const EXIT_V4 = must("0.0.0.0/0");
export const EXIT_V6 = must("::/0");

let internetCache: { v4: Prefix[]; v6: Prefix[] } | null = null;

/**
 * The addresses `autogroup:internet` stands for: public unicast space, i.e.
 * everything an exit node forwards except private (RFC 1918, ULA), link-local,
 * loopback, multicast and the tailnet's own ranges. An exit node is not a way
 * into its LAN: that needs the LAN advertised as a subnet route.
 */
export function internetPrefixes(): { v4: Prefix[]; v6: Prefix[] } {
  internetCache ??= {
    v4: subtractPrefixes(
      EXIT_V4,
      [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/3",
      ].map(must),
    ),
    // Global unicast; ULA (fc00::/7, which holds the tailnet's fd7a:115c:a1e0::/48),
    // link-local and multicast all lie outside it.
    v6: [must("2000::/3")],
  };
  return internetCache;
}

/** Whether `a` is in the `autogroup:internet` set. */
export function isInternet(a: Addr): boolean {
  const { v4, v6 } = internetPrefixes();
  return (a.v === 4 ? v4 : v6).some((p) => prefixContains(p, a));
}
