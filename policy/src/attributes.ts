// Per-node outcomes of a policy other than packet filters: which advertised
// routes `autoApprovers` approve, and which `nodeAttrs` attributes a node has.
import { identityMatches, nodeParty } from "./evaluate";
import { formatPrefix, prefixCovers, type Prefix } from "@trellis/proto/ip";
import type { Selector } from "./aliases";
import type { Policy } from "./model";
import type { NodeInfo, Topology } from "./topology";

function nodeMatches(policy: Policy, sels: readonly Selector[], n: NodeInfo): boolean {
  // A prefix selector matches a node when any of its addresses is inside.
  return n.addrs.some((a) => sels.some((s) => identityMatches(s, nodeParty(n, a), policy)));
}

/**
 * Routes of `node` that `autoApprovers` approve: a subnet route when a
 * `routes` entry covering it lists the node (by user, group or tag), an exit
 * route (0.0.0.0/0, ::/0) when `exitNode` lists it. As with Tailscale, the
 * approval belongs to the route's advertiser: a user-owned node is approved
 * through its user, a tagged node only through its tags.
 */
export function autoApprovedRoutes(policy: Policy, node: NodeInfo): Prefix[] {
  return node.advertised.filter((r) => {
    if (r.bits === 0) return nodeMatches(policy, policy.autoApprovers.exitNode, node);
    return policy.autoApprovers.routes.some(
      (e) => prefixCovers(e.prefix, r) && nodeMatches(policy, e.approvers, node),
    );
  });
}

/** Auto-approved routes of every node that has some, as CIDR text: `{ "<node name>": ["10.0.0.0/24", …] }`. */
export function autoApprovals(policy: Policy, topology: Topology): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const n of topology.nodes) {
    const routes = autoApprovedRoutes(policy, n);
    if (routes.length > 0) out[n.name] = routes.map(formatPrefix);
  }
  return out;
}

/** `nodeAttrs` attributes of every node, sorted and without repeats (nodes without any are left out). */
export function nodeAttributes(policy: Policy, topology: Topology): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const n of topology.nodes) {
    const attrs = new Set<string>();
    for (const na of policy.nodeAttrs)
      if (nodeMatches(policy, na.target, n)) na.attr.forEach((a) => attrs.add(a));
    if (attrs.size > 0) out[n.name] = [...attrs].sort();
  }
  return out;
}
