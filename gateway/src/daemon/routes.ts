// Routes as the gateway's settings name them: the --advertise-routes list
// that up and set both read (one parser, so both refuse the same things),
// what the node registers (its routes plus the exit routes when it offers
// itself as an exit node), and, with --accept-routes in TUN mode, the
// subnet routes of peers routed into the TUN device.
import type { FullMap } from "@trellis/proto/node";
import {
  EXIT_V4,
  EXIT_V6,
  formatPrefix,
  parseAddr,
  parsePrefix,
  prefixesOverlap,
  TAILNET_V4,
  TAILNET_V6,
} from "@trellis/proto/ip";
import type { Logger } from "@trellis/log";
import { ip } from "./host";
import { HostRoutes } from "./host-routes";

/** A bad --advertise-routes value; the message says which entry and why. */
export class RouteListError extends Error {
  override readonly name = "RouteListError";
}

const EXIT_ROUTES = [formatPrefix(EXIT_V4), formatPrefix(EXIT_V6)];

/**
 * Parse `10.0.0.0/24,fd00::/64` into canonical prefixes, in the order given,
 * without repeats; empty text is no routes. Refuses what the control server
 * would refuse or silently change: a missing length, host bits set, and the
 * default routes (those are --advertise-exit-node's).
 */
export function parseRouteList(text: string): string[] {
  const out: string[] = [];
  for (const item of text
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)) {
    const slash = item.indexOf("/");
    const p = slash > 0 ? parsePrefix(item) : null;
    if (!p) throw new RouteListError(`"${item}" is not a CIDR prefix such as 10.0.0.0/24`);
    const canonical = formatPrefix(p);
    if (parseAddr(item.slice(0, slash))!.n !== p.base)
      throw new RouteListError(`"${item}" has host bits set: did you mean ${canonical}?`);
    if (p.bits === 0)
      throw new RouteListError(`"${item}" is a default route: offer an exit node with --advertise-exit-node`);
    if (!out.includes(canonical)) out.push(canonical);
  }
  return out;
}

/** What the node registers as routable: its subnet routes and, as an exit node, 0.0.0.0/0 and ::/0 (sorted, as the server keeps them). */
export function routableIPs(prefs: { advertiseRoutes: string[]; advertiseExitNode: boolean }): string[] {
  const all = new Set<string>();
  for (const r of prefs.advertiseRoutes) {
    const p = parsePrefix(r);
    all.add(p ? formatPrefix(p) : r); // the daemon's schema checked the syntax; the server has the last word
  }
  if (prefs.advertiseExitNode) for (const r of EXIT_ROUTES) all.add(r);
  return [...all].sort();
}

/**
 * The subnet routes peers serve that --accept-routes routes into the TUN
 * device: each peer's allowed IPs beyond its own addresses, without exit
 * routes (using an exit node is not built), anything inside the tailnet's
 * ranges (routed already), and the routes this node advertises itself (its
 * own LAN must stay on the LAN). Canonical and sorted.
 */
export function acceptedRoutes(map: Pick<FullMap, "node" | "peers">): string[] {
  const own = map.node.advertisedRoutes.map(parsePrefix).filter((p) => p !== null);
  const out = new Set<string>();
  for (const peer of map.peers) {
    const addresses = new Set(peer.addresses);
    for (const r of peer.allowedIPs) {
      if (addresses.has(r)) continue;
      const p = parsePrefix(r);
      if (!p || p.bits === 0) continue;
      if (prefixesOverlap(p, TAILNET_V4) || prefixesOverlap(p, TAILNET_V6)) continue;
      if (own.some((o) => prefixesOverlap(o, p))) continue;
      out.add(formatPrefix(p));
    }
  }
  return [...out].sort();
}

/**
 * The accepted routes on the TUN device: `ip route replace` for each new
 * one, `ip route del` for each gone. Removing the device removes them all,
 * so down needs no call here.
 */
export class PeerRoutes extends HostRoutes {
  constructor(tun: string, log: Logger) {
    super(tun, log, {
      done: "peers' subnet routes accepted",
      failed: "could not route the peers' subnet routes",
    });
  }

  protected async apply(routes: string[]): Promise<void> {
    const want = new Set(routes);
    const family = (r: string) => (r.includes(":") ? ["-6"] : []);
    for (const r of this.applied.filter((r) => !want.has(r))) {
      await ip([...family(r), "route", "del", r, "dev", this.tun]);
      this.applied = this.applied.filter((x) => x !== r);
    }
    for (const r of routes) {
      if (this.applied.includes(r)) continue;
      await ip([...family(r), "route", "replace", r, "dev", this.tun]);
      this.applied = [...this.applied, r].sort();
    }
  }
}
