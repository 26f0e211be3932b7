// Connection-log ingestion (`POST /api/v1/connections`): a node reports the
// connections it opened or accepted. Each record must have the reporter's own
// tailnet address at one end — a node reports its own traffic, never others'
// — or the whole report is refused (400) and nothing is stored. Both ends are
// resolved to nodes by their tailnet addresses at ingestion (null for hosts
// that are no node, e.g. behind a subnet router).
import type { Database, Models } from "@trellis/db";
import { ConnectionReport } from "@trellis/proto";
import { ControlError } from "./errors";
import { parseOr400 } from "./errors-util";
import { formatAddr, parseAddr } from "@trellis/proto/ip";

/** Largest report body accepted, in bytes (500 records fit with room to spare). */
export const MAX_CONNECTION_REPORT_BYTES = 256 * 1024;

/** "ip:port" or "[ipv6]:port" → canonical address text and port; null when not an address. */
function splitEnd(text: string): { ip: string; port: number } | null {
  const colon = text.lastIndexOf(":");
  let host = text.slice(0, colon);
  if (host.startsWith("[")) host = host.slice(1, -1);
  const port = Number(text.slice(colon + 1));
  const addr = parseAddr(host);
  if (!addr || !Number.isInteger(port) || port > 65535) return null;
  return { ip: formatAddr(addr), port };
}

export async function ingestConnections(
  db: Database,
  node: Models.Node,
  body: unknown,
): Promise<{ accepted: number }> {
  const report = parseOr400(ConnectionReport, body, "invalid connection report");
  const own = new Set([node.ipv4, node.ipv6].filter((a): a is string => a !== null));
  const issues: { path: string; message: string }[] = [];
  const records = report.connections.map((c, i) => {
    const src = splitEnd(c.src);
    const dst = splitEnd(c.dst);
    if (!src) issues.push({ path: `connections.${i}.src`, message: "not an address and port" });
    if (!dst) issues.push({ path: `connections.${i}.dst`, message: "not an address and port" });
    if (src && dst && !own.has(src.ip) && !own.has(dst.ip)) {
      issues.push({
        path: `connections.${i}`,
        message: "neither end is one of the reporting node's addresses",
      });
    }
    const startedAt = new Date(c.start);
    const endedAt = c.end === undefined ? null : new Date(c.end);
    if (endedAt && endedAt < startedAt)
      issues.push({ path: `connections.${i}.end`, message: "before start" });
    return { c, src: src!, dst: dst!, startedAt, endedAt };
  });
  if (issues.length > 0) {
    throw new ControlError(
      "invalid_request",
      400,
      `invalid connection report: ${issues[0]!.path}: ${issues[0]!.message}` +
        (issues.length > 1 ? ` (and ${issues.length - 1} more)` : ""),
      issues,
    );
  }
  const ips = [...new Set(records.flatMap((r) => [r.src.ip, r.dst.ip]))];
  const nodes = await db.prisma.node.findMany({
    where: { OR: [{ ipv4: { in: ips } }, { ipv6: { in: ips } }] },
    select: { id: true, ipv4: true, ipv6: true },
  });
  const byIp = new Map<string, string>();
  for (const n of nodes) {
    if (n.ipv4) byIp.set(n.ipv4, n.id);
    if (n.ipv6) byIp.set(n.ipv6, n.id);
  }
  const { count } = await db.prisma.connectionLog.createMany({
    data: records.map(({ c, src, dst, startedAt, endedAt }) => ({
      reporterId: node.id,
      direction: c.direction,
      proto: c.proto,
      srcIp: src.ip,
      srcPort: src.port,
      dstIp: dst.ip,
      dstPort: dst.port,
      srcNodeId: byIp.get(src.ip) ?? null,
      dstNodeId: byIp.get(dst.ip) ?? null,
      startedAt,
      endedAt,
      txBytes: BigInt(c.txBytes),
      rxBytes: BigInt(c.rxBytes),
      txPackets: c.txPackets,
      rxPackets: c.rxPackets,
    })),
  });
  return { accepted: count };
}
