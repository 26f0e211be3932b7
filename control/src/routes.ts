// Subnet and exit routes: nodes advertise them (registration), admins approve
// them, and the policy's `autoApprovers` approve them automatically — when a
// node advertises them and again whenever the policy changes. Approval only
// adds: an admin removes an approval explicitly. A route takes effect when it
// is both advertised and approved (the policy engine ignores the rest).
import type { Database } from "@trellis/db";
import { ControlError } from "./errors";
import { jsonList } from "./errors-util";
import { topologyInput } from "./netmap";
import {
  autoApprovedRoutes,
  parseTopology,
  type NodeInfo,
  type Policy,
  type Topology,
} from "@trellis/policy";
import { formatPrefix, parsePrefix, type Prefix } from "@trellis/proto/ip";
import { audit, nodeRef } from "./audit";

/**
 * Routes as canonical prefixes (host bits cleared, IPv6 per RFC 5952),
 * deduplicated and sorted; a 400 naming `field.<i>` for any that is not a
 * CIDR prefix. `check` may refuse a prefix with a message for that field.
 */
export function canonicalPrefixes(
  routes: readonly string[],
  field: string,
  check?: (p: Prefix) => string | null,
): string[] {
  const out = new Set<string>();
  routes.forEach((r, i) => {
    const p = parsePrefix(r);
    const problem = p ? (check?.(p) ?? null) : "not a CIDR prefix";
    if (problem !== null || !p) {
      throw new ControlError("invalid_request", 400, `${field}.${i}: "${r}": ${problem}`, [
        { path: `${field}.${i}`, message: problem ?? "not a CIDR prefix" },
      ]);
    }
    out.add(formatPrefix(p));
  });
  return [...out].sort();
}

/**
 * Add the routes `autoApprovers` approve to the given nodes (all when
 * omitted). `topology`: the tailnet as the caller already has it (a policy
 * save has the snapshot's); otherwise built from the nodes that advertise
 * routes. Returns the ids of nodes whose approvals changed.
 */
export async function applyAutoApprovals(
  db: Database,
  policy: Policy,
  nodeIds?: string[],
  topology?: Topology,
): Promise<string[]> {
  if (policy.autoApprovers.routes.length === 0 && policy.autoApprovers.exitNode.length === 0) return [];
  const wanted = topology?.nodes
    .filter((n) => n.advertised.length > 0 && (!nodeIds || nodeIds.includes(n.name)))
    .map((n) => n.name);
  if (wanted?.length === 0) return [];
  const rows = await db.prisma.node.findMany({
    where: {
      ...(wanted ? { id: { in: wanted } } : nodeIds ? { id: { in: nodeIds } } : {}),
      NOT: { advertisedRoutes: "[]" },
    },
  });
  if (rows.length === 0) return [];
  let nodes: readonly NodeInfo[];
  if (topology) {
    nodes = topology.nodes.filter((n) => rows.some((r) => r.id === n.name));
  } else {
    const owners = [...new Set(rows.map((r) => r.userId).filter((u): u is string => u !== null))];
    const users = await db.prisma.user.findMany({ where: { id: { in: owners } } });
    nodes = parseTopology(topologyInput(rows, users, new Date()).input, "tailnet").nodes;
  }
  const changed: string[] = [];
  for (const info of nodes) {
    const row = rows.find((r) => r.id === info.name)!;
    const approved = jsonList(row.approvedRoutes);
    const add = autoApprovedRoutes(policy, info)
      .map(formatPrefix)
      .filter((r) => !approved.includes(r));
    if (add.length === 0) continue;
    const next = [...approved, ...add].sort();
    await db.prisma.$transaction(async (tx) => {
      await tx.node.update({ where: { id: row.id }, data: { approvedRoutes: JSON.stringify(next) } });
      await audit(tx, {
        actor: "system",
        action: "node.routes_auto_approved",
        target: nodeRef(row.id),
        detail: { before: approved, after: next },
      });
    });
    changed.push(row.id);
  }
  return changed;
}
