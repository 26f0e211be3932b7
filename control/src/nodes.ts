import type { Database } from "@trellis/db";
import { encodeKey } from "@trellis/proto";

/**
 * Is this WireGuard public key a node of the tailnet whose key has not
 * expired? The relay asks at every login (verify-clients), so nodes that
 * come and go are reflected at once.
 */
export async function isKnownNodeKey(db: Database, key: Uint8Array, now = new Date()): Promise<boolean> {
  if (key.length !== 32) return false;
  const node = await db.prisma.node.findUnique({
    where: { nodeKey: encodeKey("nodekey", key) },
    select: { expiresAt: true },
  });
  return node !== null && (node.expiresAt === null || node.expiresAt > now);
}
