// Subnet and exit routes: nodes advertise them (registration), admins approve
// them, and the policy's `autoApprovers` approve them automatically — when a
// node advertises them and again whenever the policy changes. Approval only
// adds: an admin removes an approval explicitly. A route takes effect when it
// is both advertised and approved (the policy engine ignores the rest).
import type { Database } from "@trellis/db";
import { z } from "zod";
import { CidrText } from "@trellis/proto";
import { ControlError } from "./errors";
import { jsonList, parseOr400 } from "./errors-util";
import { topologyInput } from "./netmap";
import { autoApprovedRoutes, parseTopology, type Policy } from "./policy/index";
import { formatPrefix, parsePrefix } from "./policy/ip";

export const ApproveRoutesRequest = z.strictObject({
  /** The complete set of approved routes (replaces the current one). */
  routes: z.array(CidrText).max(256),
});

function canonical(routes: string[]): string[] {
  return [
    ...new Set(
      routes.map((r, i) => {
        const p = parsePrefix(r);
        if (!p) {
          throw new ControlError("invalid_request", 400, `routes.${i}: "${r}" is not a CIDR prefix`, [
            { path: `routes.${i}`, message: "not a CIDR prefix" },
          ]);
        }
        return formatPrefix(p);
      }),
    ),
  ].sort();
}

/**
 * Add the routes `autoApprovers` approve to the given nodes (all when
 * omitted). Returns the ids of nodes whose approvals changed.
 */
export async function applyAutoApprovals(
  db: Database,
  policy: Policy,
  nodeIds?: string[],
): Promise<string[]> {
  if (policy.autoApprovers.routes.length === 0 && policy.autoApprovers.exitNode.length === 0) return [];
  const rows = await db.prisma.node.findMany({
    where: { ...(nodeIds ? { id: { in: nodeIds } } : {}), NOT: { advertisedRoutes: "[]" } },
  });
  if (rows.length === 0) return [];
  const owners = [...new Set(rows.map((r) => r.userId).filter((u): u is string => u !== null))];
  const users = await db.prisma.user.findMany({ where: { id: { in: owners } } });
  const topology = parseTopology(topologyInput(rows, users, new Date()).input, "tailnet");
  const changed: string[] = [];
  for (const info of topology.nodes) {
    const row = rows.find((r) => r.id === info.name)!;
    const approved = jsonList(row.approvedRoutes);
    const add = autoApprovedRoutes(policy, info)
      .map(formatPrefix)
      .filter((r) => !approved.includes(r));
    if (add.length === 0) continue;
    const next = [...approved, ...add].sort();
    await db.prisma.$transaction([
      db.prisma.node.update({ where: { id: row.id }, data: { approvedRoutes: JSON.stringify(next) } }),
      db.prisma.auditEvent.create({
        data: {
          actor: "system",
          action: "node.routes_auto_approved",
          target: `node:${row.id}`,
          detail: JSON.stringify({ before: approved, after: next }),
        },
      }),
    ]);
    changed.push(row.id);
  }
  return changed;
}

/** An admin sets a node's approved routes. */
export async function approveRoutes(
  db: Database,
  nodeId: string,
  body: unknown,
  actor: string,
): Promise<{ advertised: string[]; approved: string[] }> {
  const req = parseOr400(ApproveRoutesRequest, body, "invalid route approval");
  const approved = canonical(req.routes);
  return db.prisma.$transaction(async (tx) => {
    const node = await tx.node.findUnique({ where: { id: nodeId } });
    if (!node) throw new ControlError("not_found", 404, `no node with id ${nodeId}`);
    const before = jsonList(node.approvedRoutes);
    await tx.node.update({ where: { id: nodeId }, data: { approvedRoutes: JSON.stringify(approved) } });
    await tx.auditEvent.create({
      data: {
        actor,
        action: "node.routes_approve",
        target: `node:${nodeId}`,
        detail: JSON.stringify({ before, after: approved }),
      },
    });
    return { advertised: jsonList(node.advertisedRoutes), approved };
  });
}
