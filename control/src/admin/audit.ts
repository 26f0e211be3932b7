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

type AuditRow = Models.AuditEvent;

/** The filters of an audit query as database conditions (a user's email becomes their actor string). */
async function auditFilters(ctx: AdminContext, q: AuditQuery): Promise<Models.Prisma.AuditEventWhereInput[]> {
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
  return and;
}

/** Entries after a (time, id) position, newest first. */
function rowsAfter(
  ctx: AdminContext,
  and: Models.Prisma.AuditEventWhereInput[],
  after: readonly [string, string] | null,
  take: number,
): Promise<AuditRow[]> {
  const cursorWhere: Models.Prisma.AuditEventWhereInput[] = after
    ? [{ OR: [{ at: { lt: new Date(after[0]) } }, { at: new Date(after[0]), id: { lt: after[1] } }] }]
    : [];
  return ctx.db.prisma.auditEvent.findMany({
    where: { AND: [...and, ...cursorWhere] },
    orderBy: [{ at: "desc" }, { id: "desc" }],
    take,
  });
}

/** Rows as the API shows them, actors and targets named. */
async function auditInfos(
  ctx: AdminContext,
  rows: readonly AuditRow[],
): Promise<(r: AuditRow) => AuditEventInfo> {
  const names = await actorNames(
    ctx,
    rows.flatMap((r) => [r.actor, r.target]),
  );
  return (r) => {
    const detail = parseDetail(r.detail);
    return {
      id: r.id,
      at: r.at.toISOString(),
      actor: r.actor,
      actorName: names.get(r.actor) ?? r.actor,
      action: r.action,
      target: r.target,
      targetName: targetNameOf(r.target, names, detail),
      detail,
    };
  };
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
  const and = await auditFilters(ctx, q);
  const [rows, total] = await Promise.all([
    rowsAfter(ctx, and, after, q.limit + 1),
    ctx.db.prisma.auditEvent.count({ where: { AND: and } }),
  ]);
  const info = await auditInfos(ctx, rows.slice(0, q.limit));
  return pageOf(rows, q.limit, total, (r) => [r.at.toISOString(), r.id], info);
}

/**
 * The target's name: the user's email or machine's name while they exist;
 * for one removed since, the name its entry recorded; otherwise the target
 * as stored.
 */
function targetNameOf(target: string, names: Map<string, string>, detail: Record<string, unknown>): string {
  const known = names.get(target);
  if (known !== undefined && known !== target) return known;
  const before = (detail.before ?? {}) as Record<string, unknown>;
  const recorded = [detail.name, detail.email, before.name, before.email].find((v) => typeof v === "string");
  return typeof recorded === "string" ? recorded : target;
}

/** Most entries one export carries (its answer says when there were more). */
export const MAX_AUDIT_EXPORT = 50_000;
/** Entries read from the database at a time while exporting. */
const EXPORT_BATCH = 1000;

/**
 * Every audit entry matching the filters of `listAudit` (not its paging),
 * newest first, at most MAX_AUDIT_EXPORT, as JSON or CSV for a file. The
 * filters are read once; no page counts the total.
 */
export async function exportAudit(
  ctx: AdminContext,
  actor: Actor,
  query: Record<string, string>,
  format: "json" | "csv",
): Promise<{ body: string; truncated: boolean; count: number }> {
  requireScope(actor, "logs:read");
  const { cursor: _ignored, limit: _alsoIgnored, ...filters } = query;
  const and = await auditFilters(ctx, parseOr400(AuditQuery, filters, "invalid audit query"));
  const items: AuditEventInfo[] = [];
  let after: [string, string] | null = null;
  let truncated = false;
  for (;;) {
    const rows = await rowsAfter(ctx, and, after, EXPORT_BATCH);
    if (rows.length === 0) break;
    if (items.length + rows.length > MAX_AUDIT_EXPORT) {
      truncated = true;
      rows.length = MAX_AUDIT_EXPORT - items.length;
    }
    const info = await auditInfos(ctx, rows);
    items.push(...rows.map(info));
    if (truncated || rows.length < EXPORT_BATCH) break;
    const last = rows[rows.length - 1]!;
    after = [last.at.toISOString(), last.id];
  }
  if (format === "json")
    return { body: JSON.stringify(items, null, 1) + "\n", truncated, count: items.length };
  const header = ["at", "actor", "actor_name", "action", "target", "target_name", "detail"];
  const lines = [header.join(",")];
  for (const e of items) {
    lines.push(
      [e.at, e.actor, e.actorName, e.action, e.target, e.targetName, JSON.stringify(e.detail)]
        .map(csvField)
        .join(","),
    );
  }
  return { body: lines.join("\r\n") + "\r\n", truncated, count: items.length };
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
