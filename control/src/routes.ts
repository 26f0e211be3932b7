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
import type { ControlEvent } from "./events";
import { recordChange } from "./outbox";

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

type Tx = Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0];
/** Where approvals are read from: the database, or the transaction they are written in. */
type Reader = Pick<Tx, "node" | "user">;

/**
 * The routes `autoApprovers` add to the given nodes (all when omitted), as
 * `{id, before, after}` in id order. `topology`: the tailnet as the caller
 * already has it (a policy save has the snapshot's); otherwise built from
 * the nodes that advertise routes.
 */
async function planApprovals(
  reader: Reader,
  policy: Policy,
  nodeIds?: string[],
  topology?: Topology,
): Promise<{ id: string; before: string[]; after: string[] }[]> {
  if (policy.autoApprovers.routes.length === 0 && policy.autoApprovers.exitNode.length === 0) return [];
  const wanted = topology?.nodes
    .filter((n) => n.advertised.length > 0 && (!nodeIds || nodeIds.includes(n.name)))
    .map((n) => n.name);
  if (wanted?.length === 0) return [];
  const rows = await reader.node.findMany({
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
    const users = await reader.user.findMany({ where: { id: { in: owners } } });
    nodes = parseTopology(topologyInput(rows, users, new Date()).input, "tailnet").nodes;
  }
  const plan: { id: string; before: string[]; after: string[] }[] = [];
  for (const info of nodes) {
    const row = rows.find((r) => r.id === info.name)!;
    const approved = jsonList(row.approvedRoutes);
    const add = autoApprovedRoutes(policy, info)
      .map(formatPrefix)
      .filter((r) => !approved.includes(r));
    if (add.length > 0) plan.push({ id: row.id, before: approved, after: [...approved, ...add].sort() });
  }
  // Rows are locked in id order, as presence locks them (presence.ts): no deadlock between the two.
  return plan.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

/**
 * Approve what `autoApprovers` cover, on the given nodes (all when omitted),
 * inside the caller's transaction; returns the ids of nodes whose approvals
 * changed, for the caller to record. A policy save calls it in its own
 * transaction, so its nodes change (and are announced) with it.
 */
export async function autoApproveIn(
  tx: Tx,
  policy: Policy,
  scope: { nodeIds?: string[]; topology?: Topology } = {},
): Promise<string[]> {
  const plan = await planApprovals(tx, policy, scope.nodeIds, scope.topology);
  for (const c of plan) {
    await tx.node.update({ where: { id: c.id }, data: { approvedRoutes: JSON.stringify(c.after) } });
    await audit(tx, {
      actor: "system",
      action: "node.routes_auto_approved",
      target: nodeRef(c.id),
      detail: { before: c.before, after: c.after },
    });
  }
  return plan.map((c) => c.id);
}

/**
 * Approve what `autoApprovers` cover on the given nodes (a registration's)
 * in one transaction; returns the change to publish, or null for none.
 */
export async function applyAutoApprovals(
  db: Database,
  policy: Policy,
  nodeIds: string[],
): Promise<Extract<ControlEvent, { type: "nodes" }> | null> {
  // Most registrations advertise nothing the policy approves: no transaction for them.
  if ((await planApprovals(db.prisma, policy, nodeIds)).length === 0) return null;
  return db.prisma.$transaction(async (tx) => {
    const ids = await autoApproveIn(tx, policy, { nodeIds });
    return ids.length ? recordChange(db, tx, { type: "nodes", ids }) : null;
  });
}
