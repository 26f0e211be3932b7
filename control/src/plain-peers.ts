// When a gateway's plain WireGuard peers last completed a handshake with it:
// their presence, which no map stream gives (they have none). Only the
// gateway a peer goes through is believed, and a time never moves back.
import type { Database } from "@trellis/db";
import { PlainPeersSeenRequest } from "@trellis/proto";
import { parseOr400 } from "./errors-util";

/**
 * Store the handshake times `gatewayId` reports as its plain peers' last
 * seen; returns the ids of the machines whose time moved. Keys that are not
 * plain peers of this gateway are ignored (a gateway cannot speak for
 * others'), and a time ahead of `now` counts as `now`.
 */
export async function plainPeersSeen(
  db: Database,
  gatewayId: string,
  body: unknown,
  now = new Date(),
): Promise<string[]> {
  const req = parseOr400(PlainPeersSeenRequest, body, "invalid plain WireGuard peers report");
  const latest = new Map<string, Date>();
  for (const p of req.peers) {
    const at = new Date(Math.min(Date.parse(p.lastHandshake), now.getTime()));
    const had = latest.get(p.key);
    if (!had || had < at) latest.set(p.key, at);
  }
  const rows = await db.prisma.node.findMany({
    where: { nodeKey: { in: [...latest.keys()] }, wireguardOnly: true, gatewayId },
    select: { id: true, nodeKey: true, lastSeen: true },
  });
  const moved: string[] = [];
  for (const r of rows) {
    const at = latest.get(r.nodeKey)!;
    if (r.lastSeen && r.lastSeen >= at) continue;
    // Conditional, so a report racing another cannot move the time back.
    const n = await db.prisma.node.updateMany({
      where: { id: r.id, OR: [{ lastSeen: null }, { lastSeen: { lt: at } }] },
      data: { lastSeen: at },
    });
    if (n.count > 0) moved.push(r.id);
  }
  return moved;
}
