// The connection log as the admin console lists it: what nodes reported,
// newest first, with both ends resolved to machines where they are ones.
import type { Models } from "@trellis/db";
import { ConnectionQuery, type ConnectionInfo, type Page } from "@trellis/proto";
import { requireScope, type Actor } from "../auth/actor";
import { parseOr400 } from "../errors-util";
import type { AdminContext } from "./context";
import { decodeCursor, pageOf, TimeIdCursor } from "./paging";

/** `ip:port`, bracketing IPv6 addresses. */
function endpoint(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Shown for a node that has been removed since it was logged. */
const REMOVED = "(removed)";

/**
 * Reported connections, newest first by start. `nodeId` matches records the
 * node reported or in which it is either end; `userId` does the same for
 * every machine the user owns; `since`/`until` bound the start time.
 */
export async function listConnections(
  ctx: AdminContext,
  actor: Actor,
  query: unknown,
): Promise<Page<ConnectionInfo>> {
  requireScope(actor, "logs:read");
  const q = parseOr400(ConnectionQuery, query, "invalid connection query");
  const after = decodeCursor(q.cursor, TimeIdCursor);
  const and: Models.Prisma.ConnectionLogWhereInput[] = [];
  const involving = (ids: string[]): Models.Prisma.ConnectionLogWhereInput => ({
    OR: [{ reporterId: { in: ids } }, { srcNodeId: { in: ids } }, { dstNodeId: { in: ids } }],
  });
  if (q.nodeId !== undefined) and.push(involving([q.nodeId]));
  if (q.userId !== undefined) {
    const owned = await ctx.db.prisma.node.findMany({ where: { userId: q.userId }, select: { id: true } });
    and.push(involving(owned.map((n) => n.id)));
  }
  if (q.since !== undefined) and.push({ startedAt: { gte: new Date(q.since) } });
  if (q.until !== undefined) and.push({ startedAt: { lt: new Date(q.until) } });
  const where: Models.Prisma.ConnectionLogWhereInput = { AND: and };
  const cursorWhere: Models.Prisma.ConnectionLogWhereInput[] = after
    ? [
        {
          OR: [
            { startedAt: { lt: new Date(after[0]) } },
            { startedAt: new Date(after[0]), id: { lt: after[1] } },
          ],
        },
      ]
    : [];
  const [rows, total] = await Promise.all([
    ctx.db.prisma.connectionLog.findMany({
      where: { AND: [...and, ...cursorWhere] },
      orderBy: [{ startedAt: "desc" }, { id: "desc" }],
      take: q.limit + 1,
    }),
    ctx.db.prisma.connectionLog.count({ where }),
  ]);
  const page = rows.slice(0, q.limit);
  const ids = [
    ...new Set(page.flatMap((r) => [r.reporterId, r.srcNodeId, r.dstNodeId]).filter((x) => x !== null)),
  ];
  const nodes = ids.length
    ? await ctx.db.prisma.node.findMany({ where: { id: { in: ids } }, include: { user: true } })
    : [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const nodeRef = (id: string | null): ConnectionInfo["srcNode"] => {
    if (id === null) return null;
    const n = byId.get(id);
    return n ? { id, name: n.name, user: n.user?.email ?? null } : { id, name: REMOVED, user: null };
  };
  return pageOf(
    rows,
    q.limit,
    total,
    (r) => [r.startedAt.toISOString(), r.id],
    (r) => ({
      id: r.id,
      reporter: { id: r.reporterId, name: byId.get(r.reporterId)?.name ?? REMOVED },
      direction: r.direction === "in" ? "in" : "out",
      proto: r.proto,
      src: endpoint(r.srcIp, r.srcPort),
      dst: endpoint(r.dstIp, r.dstPort),
      srcNode: nodeRef(r.srcNodeId),
      dstNode: nodeRef(r.dstNodeId),
      startedAt: r.startedAt.toISOString(),
      endedAt: r.endedAt?.toISOString() ?? null,
      txBytes: Number(r.txBytes),
      rxBytes: Number(r.rxBytes),
      txPackets: r.txPackets,
      rxPackets: r.rxPackets,
    }),
  );
}
