import type { Database } from "@trellis/db";
import { encodeKey } from "@trellis/proto";

/**
 * Is this WireGuard public key a node of the tailnet, approved, whose key has
 * not expired? The relay asks at every login (verify-clients), so nodes that
 * come and go are reflected at once. A node awaiting approval is refused
 * until an admin authorizes it; a rotated-away key is no node's key any more.
 */
export async function isKnownNodeKey(db: Database, key: Uint8Array, now = new Date()): Promise<boolean> {
  if (key.length !== 32) return false;
  const node = await db.prisma.node.findUnique({
    where: { nodeKey: encodeKey("nodekey", key) },
    select: { expiresAt: true, authorized: true },
  });
  return node !== null && node.authorized && (node.expiresAt === null || node.expiresAt > now);
}
