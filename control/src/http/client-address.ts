// The client address of a request, for the login limiter and logs. The
// socket's peer, unless that peer is a reverse proxy the operator trusts
// (TRELLIS_TRUSTED_PROXIES): then X-Forwarded-For is read from the right,
// skipping trusted proxies, and the first address that is not one is the
// client. Entries left of it were written by the client and are never
// believed. Bundle-safe.
import { parsePrefix, parseSocketAddr, prefixContains, type Prefix } from "@trellis/proto/ip";

/** True when `address` (as a socket reports it) is inside one of `trusted`. */
function isTrusted(address: string, trusted: readonly Prefix[]): boolean {
  const a = parseSocketAddr(address);
  return a !== null && trusted.some((p) => prefixContains(p, a));
}

/**
 * Parse TRELLIS_TRUSTED_PROXIES' entries (addresses or CIDR prefixes); the
 * first invalid one is returned as `bad`.
 */
export function parseTrustedProxies(entries: readonly string[]): { prefixes: Prefix[]; bad?: string } {
  const prefixes: Prefix[] = [];
  for (const e of entries) {
    const p = parsePrefix(e);
    if (!p) return { prefixes, bad: e };
    prefixes.push(p);
  }
  return { prefixes };
}

/**
 * The client's address: `peer` (the socket's remote address) unless it is
 * a trusted proxy, in which case the rightmost untrusted X-Forwarded-For
 * entry. A trusted peer with no usable header is the client itself.
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: readonly Prefix[],
): string {
  const socket = peer ?? "unknown";
  if (trusted.length === 0 || !isTrusted(socket, trusted) || forwardedFor === undefined) return socket;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor)
    .split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    const a = parseSocketAddr(hop);
    // A hop that is not an address (a proxy's "unknown", garbage) ends the
    // chain of trust: the client is what the last trusted proxy saw.
    if (!a) return i === hops.length - 1 ? socket : hops[i + 1]!;
    if (!trusted.some((p) => prefixContains(p, a))) return hop;
  }
  return hops[0] ?? socket;
}
