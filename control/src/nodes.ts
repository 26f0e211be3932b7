import type { Database } from "@trellis/db";
import { encodeKey } from "@trellis/proto";

/**
 * Which of these WireGuard public keys (raw, or `nodekey:` text) are nodes
 * of the tailnet, approved, whose keys have not expired? The relay asks at
 * every login and again whenever nodes change (verify-clients), so nodes that
 * come and go are reflected at once. A node awaiting approval is refused
 * until an admin authorizes it; a rotated-away key is no node's key any more;
 * a plain WireGuard peer's key is refused (it goes through its gateway only).
 * One query for the whole list.
 */
export async function admittedNodeKeys(
  db: Database,
  keys: readonly (Uint8Array | string)[],
  now = new Date(),
): Promise<boolean[]> {
  const texts = keys.map((k) => (typeof k === "string" ? k : k.length === 32 ? encodeKey("nodekey", k) : ""));
  const wanted = [...new Set(texts.filter((t) => t !== ""))];
  if (wanted.length === 0) return texts.map(() => false);
  const rows = await db.prisma.node.findMany({
    where: { nodeKey: { in: wanted } },
    select: { nodeKey: true, expiresAt: true, authorized: true, wireguardOnly: true },
  });
  // A plain WireGuard peer speaks no DERP: its key has no business on a relay.
  const ok = new Set(
    rows
      .filter((n) => n.authorized && !n.wireguardOnly && (n.expiresAt === null || n.expiresAt > now))
      .map((n) => n.nodeKey),
  );
  return texts.map((t) => ok.has(t));
}
