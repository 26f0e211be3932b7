// MagicDNS names of removed machines stay with their owner for a while.
// Peers keep using a name after its machine is gone (ssh db-prod, a bookmark,
// a config file); if anyone's new machine could take the name at once, a
// member could register "db-prod" and receive what was meant for the
// departed server. So a removed machine's name is retired for its owner (its
// user, or its set of tags) for 30 days: that owner's next machine may take
// it back (a reinstalled server keeps its name), anyone else's gets a
// suffixed name. Every path that deletes a machine retires its name here.
import type { Database } from "@trellis/db";
import { jsonList } from "./errors-util";

type Tx = Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0];

/** How long a removed machine's name is kept for its owner. */
export const NAME_RETIRED_MS = 30 * 24 * 3600 * 1000;

/** Who a machine belongs to, for retired names: its tags when it has any, else its user. */
export function nameOwner(node: { userId: string | null; tags: string | string[] }): string {
  const tags = typeof node.tags === "string" ? jsonList(node.tags) : node.tags;
  if (tags.length > 0) return `tags:${JSON.stringify([...tags].sort())}`;
  return `user:${node.userId ?? ""}`;
}

/** Retire the names of machines about to be deleted (call inside the deleting transaction). */
export async function retireNames(
  tx: Tx,
  nodes: { name: string; userId: string | null; tags: string }[],
  now = new Date(),
): Promise<void> {
  for (const n of nodes) {
    const row = { owner: nameOwner(n), retiredAt: now };
    await tx.retiredName.upsert({ where: { name: n.name }, create: { name: n.name, ...row }, update: row });
  }
}

/** Retired names kept for an owner other than `owner`: those among `names`, or (`{ startsWith }`) with that prefix. */
export async function namesHeldForOthers(
  tx: Tx,
  which: string[] | { startsWith: string },
  owner: string,
  now = new Date(),
): Promise<Set<string>> {
  if (Array.isArray(which) && which.length === 0) return new Set();
  const rows = await tx.retiredName.findMany({
    where: {
      name: Array.isArray(which) ? { in: which } : which,
      retiredAt: { gt: new Date(now.getTime() - NAME_RETIRED_MS) },
    },
    select: { name: true, owner: true },
  });
  return new Set(rows.filter((r) => r.owner !== owner).map((r) => r.name));
}

/** A name taken by `owner`'s new machine is no longer retired; expired retirements are pruned as it goes. */
export async function claimName(tx: Tx, name: string, now = new Date()): Promise<void> {
  await tx.retiredName.deleteMany({
    where: { OR: [{ name }, { retiredAt: { lte: new Date(now.getTime() - NAME_RETIRED_MS) } }] },
  });
}
