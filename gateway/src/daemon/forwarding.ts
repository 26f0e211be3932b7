// Subnet routing for a gateway in TUN mode: packets from the tailnet to an
// approved advertised route leave through the kernel's forwarding, and are
// masqueraded to the gateway's own address on the way out, so the subnet's
// hosts need no route back to 100.64.0.0/10. Everything lives in one
// nftables table of Trellis's own (`inet trellis`), replaced whole on each
// change and deleted on down; IP forwarding is switched on only while routes
// are served, and put back as it was. The gateway's plain WireGuard peers
// are served the same way: their packets to other tailnet nodes (and
// those nodes' packets to them) come in through the TUN device and go back
// out through it, which only forwarding does; they stay inside the tailnet,
// so nothing masquerades them.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { parsePrefix, prefixesOverlap, TAILNET_V4, TAILNET_V6, formatPrefix } from "@trellis/proto/ip";
import type { FullMap } from "@trellis/proto";
import type { Logger } from "@trellis/log";
import { HostError } from "./host";
import { HostRoutes } from "./host-routes";

export const NFT_TABLE = "trellis";
const NFT_TIMEOUT_MS = 10_000;
const SYSCTL = { 4: "/proc/sys/net/ipv4/ip_forward", 6: "/proc/sys/net/ipv6/conf/all/forwarding" } as const;

function nft(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "nft",
      args,
      { timeout: NFT_TIMEOUT_MS, killSignal: "SIGKILL" },
      (err, out, stderr) => {
        if (!err) return resolve(String(out));
        reject(
          new HostError(`nft ${args.join(" ")} failed: ${String(stderr).trim() || err.message}`, {
            cause: err,
          }),
        );
      },
    );
    child.stdin?.end(input ?? "");
  });
}

/**
 * The ruleset for `routes` (canonical prefixes) leaving through anything but
 * `tun`; a default route (an approved exit node) masquerades all of its
 * family that leaves.
 */
export function rulesetFor(tun: string, routes: readonly string[]): string {
  const outside = routes.filter((r) => !inTailnet(r));
  const v4 = outside.filter((r) => !r.includes(":"));
  const v6 = outside.filter((r) => r.includes(":"));
  const dst = (family: "ip" | "ip6", list: string[]) =>
    list.some((r) => r.endsWith("/0")) ? "" : ` ${family} daddr { ${list.join(", ")} }`;
  const lines = [
    // Declaring the table first makes the delete safe when it does not exist yet.
    `table inet ${NFT_TABLE} {}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
  ];
  if (v4.length) {
    lines.push(`    ip saddr ${formatPrefix(TAILNET_V4)}${dst("ip", v4)} oifname != "${tun}" masquerade`);
  }
  if (v6.length) {
    lines.push(`    ip6 saddr ${formatPrefix(TAILNET_V6)}${dst("ip6", v6)} oifname != "${tun}" masquerade`);
  }
  lines.push("  }", "}", "");
  return lines.join("\n");
}

/** A prefix inside the tailnet's own ranges (a plain WireGuard peer's address). */
function inTailnet(r: string): boolean {
  const p = parsePrefix(r);
  return p !== null && [TAILNET_V4, TAILNET_V6].some((t) => p.bits >= t.bits && prefixesOverlap(p, t));
}

/**
 * The addresses of this gateway's own plain WireGuard peers in `map`: it
 * forwards their packets to and from other tailnet nodes (see the top).
 */
export function plainPeerAddresses(map: Pick<FullMap, "node" | "peers">): string[] {
  const out: string[] = [];
  for (const p of map.peers) {
    if (!p.isWireGuardOnly || (p.gateway !== undefined && p.gateway !== map.node.id)) continue;
    for (const a of p.addresses) {
      const q = parsePrefix(a);
      if (q) out.push(formatPrefix(q));
    }
  }
  return out.sort();
}

/**
 * Which approved routes this node serves: its own subnet routes and, as an
 * approved exit node, 0.0.0.0/0 and ::/0.
 */
export function subnetRoutes(advertised: readonly string[], approved: readonly string[]): string[] {
  const mine = new Set(advertised);
  return approved.filter((r) => mine.has(r) && parsePrefix(r) !== null).sort();
}

/**
 * The approved routes this gateway serves, and its plain peers' addresses:
 * forwarding on, and masquerade in `inet trellis` for what leaves the tailnet.
 */
export class SubnetRouter extends HostRoutes {
  /** Forwarding sysctls as they were before this router switched them on. */
  private readonly saved = new Map<4 | 6, string>();

  constructor(tun: string, log: Logger) {
    super(tun, log, { done: "subnet routes served", failed: "could not serve the subnet routes" });
  }

  protected async apply(routes: string[]): Promise<void> {
    if (routes.length === 0) {
      await this.removeRules();
    } else {
      for (const v of [4, 6] as const) {
        if (routes.some((r) => r.includes(":") === (v === 6))) this.enableForwarding(v);
      }
      await nft(["-f", "-"], rulesetFor(this.tun, routes));
    }
    this.applied = routes;
  }

  private enableForwarding(v: 4 | 6): void {
    const path = SYSCTL[v];
    const before = readFileSync(path, "utf8").trim();
    if (before === "1") return;
    if (!this.saved.has(v)) this.saved.set(v, before);
    writeFileSync(path, "1\n");
  }

  private async removeRules(): Promise<void> {
    if (this.applied.length > 0 || this.error !== null) {
      await nft(["-f", "-"], `table inet ${NFT_TABLE} {}\ndelete table inet ${NFT_TABLE}\n`);
    }
    for (const [v, before] of this.saved) writeFileSync(SYSCTL[v], `${before}\n`);
    this.saved.clear();
  }

  /** Remove the table and put IP forwarding back; waits for an update in progress. */
  close(): Promise<void> {
    return this.update([]);
  }
}
