// Tailnet address allocation: 100.64.0.0/10 and fd7a:115c:a1e0::/48, the
// same index in both (100.64.0.5 ↔ fd7a:115c:a1e0::5), handed out from a
// high-water mark that only grows. Called inside the registration
// transaction: the counter row's update serialises concurrent registrations
// (row lock on PostgreSQL, one writer at a time on SQLite), and the unique
// columns Node.ipv4/ipv6 are the database's own guarantee behind it. An
// address is therefore never handed out twice, not even after its node is
// deleted, until the 4 million IPv4 addresses run out.
import type { Database } from "@trellis/db";
import { ControlError } from "./errors";
import { formatAddr } from "@trellis/proto/ip";

type Tx = Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0];

const COUNTER_ID = "tailnet";
const V4_BASE = 0x64400000; // 100.64.0.0
const V4_SIZE = 1 << 22; // /10
const V6_BASE = 0xfd7a115ca1e0n << 80n; // fd7a:115c:a1e0::/48

/**
 * Indexes never used: 0 (the network address), 100.100.100.0/24, where
 * Tailscale clients expect tailnet services (100.100.100.100 is MagicDNS),
 * and 100.115.92.0/23, which Tailscale keeps out of the tailnet: a policy's
 * `*` does not cover it, so a node there would be left out of every `*` rule.
 */
export function reservedIndex(index: number): boolean {
  const v4 = V4_BASE + index;
  return (
    index === 0 ||
    v4 >>> 8 === (100 << 16) + (100 << 8) + 100 ||
    v4 >>> 9 === ((100 << 24) | (115 << 16) | (92 << 8)) >>> 9
  );
}

export function addressesOf(index: number): { ipv4: string; ipv6: string } {
  return {
    ipv4: formatAddr({ v: 4, n: BigInt(V4_BASE + index) }),
    ipv6: formatAddr({ v: 6, n: V6_BASE + BigInt(index) }),
  };
}

/** Take the next free address pair. Must run inside the transaction that stores it on the node. */
export async function allocateAddresses(tx: Tx): Promise<{ ipv4: string; ipv6: string }> {
  for (;;) {
    const row = await tx.ipAllocation.upsert({
      where: { id: COUNTER_ID },
      create: { id: COUNTER_ID, last: 1 },
      update: { last: { increment: 1 } },
    });
    if (row.last >= V4_SIZE) {
      throw new ControlError("addresses_exhausted", 503, "the tailnet has no IPv4 addresses left");
    }
    if (!reservedIndex(row.last)) return addressesOf(row.last);
  }
}
