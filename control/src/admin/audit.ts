// The audit log: every configuration change, newest first, with who did it
// resolved to something a person recognises.
import type { Models } from "@trellis/db";
import { AuditQuery, type AuditEventInfo, type Page } from "@trellis/proto";
import { requireScope, type Actor } from "../auth/actor";
import { parseOr400 } from "../errors-util";
import type { AdminContext } from "./context";
import { nodeRef, userRef } from "../audit";
import { decodeCursor, pageOf, TimeIdCursor } from "./paging";

function parseDetail(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : { value: v };
  } catch {
    return { text };
  }
}

/**
 * Display names of actor strings (audit.ts): `user:<id>` → the user's email,
 * `node:<id>` → the node's name while they exist; `local` → "local
 * operator"; anything else (or anything gone) as it is.
 */
export async function actorNames(ctx: AdminContext, actors: Iterable<string>): Promise<Map<string, string>> {
  const all = [...new Set(actors)];
  const idsOf = (prefix: string) =>
    all.filter((a) => a.startsWith(prefix)).map((a) => a.slice(prefix.length));
  const nodeIds = idsOf("node:");
  const userIds = idsOf("user:");
  const [users, nodes] = await Promise.all([
    userIds.length
      ? ctx.db.prisma.user.findMany({ where: { id: { in: userIds } }, select: { id: true, email: true } })
      : [],
    nodeIds.length
      ? ctx.db.prisma.node.findMany({ where: { id: { in: nodeIds } }, select: { id: true, name: true } })
      : [],
  ]);
  const out = new Map(all.map((a) => [a, a]));
  out.set("local", "local operator");
  for (const u of users) out.set(userRef(u.id), u.email);
  for (const n of nodes) out.set(nodeRef(n.id), n.name);
  return out;
}

/**
 * Audit events, newest first. Filters: `actor` (the stored actor string, or
 * a user's email), `action` (exact, or a prefix when it ends with "." such as
 * "machine."), `target` (exact), `since` (inclusive) and `until` (exclusive).
 */
export async function listAudit(
  ctx: AdminContext,
  actor: Actor,
  query: unknown,
): Promise<Page<AuditEventInfo>> {
  requireScope(actor, "logs:read");
  const q = parseOr400(AuditQuery, query, "invalid audit query");
  const after = decodeCursor(q.cursor, TimeIdCursor);
  const and: Models.Prisma.AuditEventWhereInput[] = [];
  if (q.actor !== undefined) {
    const byEmail = q.actor.includes("@")
      ? await ctx.db.prisma.user.findUnique({ where: { email: q.actor }, select: { id: true } })
      : null;
    and.push({ actor: byEmail ? userRef(byEmail.id) : q.actor });
  }
  if (q.action !== undefined) {
    and.push(q.action.endsWith(".") ? { action: { startsWith: q.action } } : { action: q.action });
  }
  if (q.target !== undefined) and.push({ target: q.target });
  if (q.since !== undefined) and.push({ at: { gte: new Date(q.since) } });
  if (q.until !== undefined) and.push({ at: { lt: new Date(q.until) } });
  const where: Models.Prisma.AuditEventWhereInput = { AND: and };
  const cursorWhere: Models.Prisma.AuditEventWhereInput[] = after
    ? [{ OR: [{ at: { lt: new Date(after[0]) } }, { at: new Date(after[0]), id: { lt: after[1] } }] }]
    : [];
  const [rows, total] = await Promise.all([
    ctx.db.prisma.auditEvent.findMany({
      where: { AND: [...and, ...cursorWhere] },
      orderBy: [{ at: "desc" }, { id: "desc" }],
      take: q.limit + 1,
    }),
    ctx.db.prisma.auditEvent.count({ where }),
  ]);
  const names = await actorNames(
    ctx,
    rows.slice(0, q.limit).flatMap((r) => [r.actor, r.target]),
  );
  return pageOf(
    rows,
    q.limit,
    total,
    (r) => [r.at.toISOString(), r.id],
    (r) => ({
      id: r.id,
      at: r.at.toISOString(),
      actor: r.actor,
      actorName: names.get(r.actor) ?? r.actor,
      action: r.action,
      target: r.target,
      ...withTargetName(r.target, names, parseDetail(r.detail)),
    }),
  );
}

/**
 * The target's name: the user's email or machine's name while they exist;
 * for one removed since, the name its entry recorded; otherwise the target
 * as stored.
 */
function withTargetName(
  target: string,
  names: Map<string, string>,
  detail: Record<string, unknown>,
): { targetName: string; detail: Record<string, unknown> } {
  const known = names.get(target);
  if (known !== undefined && known !== target) return { targetName: known, detail };
  const before = (detail.before ?? {}) as Record<string, unknown>;
  const recorded = [detail.name, detail.email, before.name, before.email].find((v) => typeof v === "string");
  return { targetName: typeof recorded === "string" ? recorded : target, detail };
}

/** Most entries one export carries (its answer says when there were more). */
export const MAX_AUDIT_EXPORT = 50_000;

/**
 * Every audit entry matching the filters of `listAudit` (not its paging),
 * newest first, at most MAX_AUDIT_EXPORT, as JSON or CSV for a file.
 */
export async function exportAudit(
  ctx: AdminContext,
  actor: Actor,
  query: Record<string, string>,
  format: "json" | "csv",
): Promise<{ body: string; truncated: boolean; count: number }> {
  const { cursor: _ignored, limit: _alsoIgnored, ...filters } = query;
  const items: AuditEventInfo[] = [];
  let cursor: string | null = null;
  do {
    const page = await listAudit(ctx, actor, { ...filters, limit: "200", ...(cursor ? { cursor } : {}) });
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && items.length < MAX_AUDIT_EXPORT);
  const truncated = items.length > MAX_AUDIT_EXPORT || cursor !== null;
  const rows = items.slice(0, MAX_AUDIT_EXPORT);
  if (format === "json") return { body: JSON.stringify(rows, null, 1) + "\n", truncated, count: rows.length };
  const header = ["at", "actor", "actor_name", "action", "target", "target_name", "detail"];
  const lines = [header.join(",")];
  for (const e of rows) {
    lines.push(
      [e.at, e.actor, e.actorName, e.action, e.target, e.targetName, JSON.stringify(e.detail)]
        .map(csvField)
        .join(","),
    );
  }
  return { body: lines.join("\r\n") + "\r\n", truncated, count: rows.length };
}

/**
 * One CSV field (RFC 4180 quoting). A value a spreadsheet would run as a
 * formula (=, +, -, @, tab, carriage return first) is prefixed with a
 * quote: names and details come from users.
 */
export function csvField(v: string): string {
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
