import { describe, expect, it } from "vitest";
import type { Models } from "@trellis/db";
import { createLogger } from "@trellis/log";
import { applyDelta, type FullMap, type MapMessage } from "@trellis/proto";
import { addressesOf } from "./addresses";
import { MapSession } from "./map-session";
import { TailnetSnapshot } from "./netmap";
import type { NetmapService } from "./netmap-service";
import { parsePolicy } from "@trellis/policy";

const relayMap = { regions: {} };
const dns = { domain: "t.internal", nameservers: [] };
const log = createLogger("map-session-test", "silent");

function row(i: number, tag: string): Models.Node {
  const { ipv4, ipv6 } = addressesOf(i);
  const at = new Date(0);
  return {
    id: `id${i}`,
    nodeKey: "nodekey:" + i.toString(16).padStart(64, "0"),
    previousKeys: "[]",
    name: `n${String(i).padStart(3, "0")}`,
    hostname: `n${i}`,
    ipv4,
    ipv6,
    os: "",
    tags: JSON.stringify([tag]),
    userId: null,
    advertisedRoutes: "[]",
    approvedRoutes: "[]",
    endpoints: "[]",
    homeRegion: null,
    online: false,
    lastSeen: null,
    ephemeral: false,
    authorized: true,
    preAuthKeyId: null,
    createdAt: at,
    updatedAt: at,
    expiresAt: null,
    wireguardOnly: false,
    gatewayId: null,
  };
}

/** The NetmapService surface a session uses, over a snapshot the test replaces. */
class Netmaps {
  constructor(public snap: TailnetSnapshot) {}
  snapshot() {
    return Promise.resolve(this.snap);
  }
  mapFor(id: string) {
    return Promise.resolve(this.snap.mapFor(id, relayMap, dns));
  }
  whyGone() {
    return Promise.resolve("deleted" as const);
  }
}

/** Let every session's coalescing timer fire and its update finish (all in-process, no I/O). */
const settle = () => new Promise((r) => setTimeout(r, 30));

describe("map session", () => {
  it("keeps every node's map equal to a fresh one through policy, attribute and membership changes, sending only what changed", async () => {
    let seed = 11;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const tags = ["tag:a", "tag:b", "tag:c"];
    const owners = { tagOwners: Object.fromEntries(tags.map((t) => [t, []])) };
    const policies = [
      { acls: tags.map((t) => ({ action: "accept", src: [t], dst: [`${t}:*`] })) },
      { acls: tags.map((t) => ({ action: "accept", src: [t], dst: [`${t}:22`] })) },
      { acls: [{ action: "accept", src: ["tag:a"], dst: ["tag:b:22", "tag:c:80"] }] },
    ].map((p, k) => ({ ...parsed(JSON.stringify({ ...owners, ...p })), version: k + 1 }));
    let rows = Array.from({ length: 24 }, (_, k) => row(k + 1, tags[k % tags.length]!));
    let policy = policies[0]!;
    const netmaps = new Netmaps(TailnetSnapshot.build(rows, [], policy, "t.internal"));

    // One session per node, and what each node makes of its stream.
    const maps = new Map<string, FullMap>();
    let redundant = 0;
    const sessions = new Map<string, MapSession>();
    for (const r of rows) {
      const s = new MapSession(
        r.id,
        netmaps as unknown as NetmapService,
        (m: MapMessage) => {
          if (m.type !== "delta") throw new Error("only deltas follow the first map");
          const had = maps.get(r.id)!;
          for (const p of m.peersChanged ?? []) {
            const before = had.peers.find((q) => q.id === p.id);
            if (before && JSON.stringify(before) === JSON.stringify(p)) redundant++;
          }
          maps.set(r.id, applyDelta(had, m));
        },
        log,
        { coalesceMs: 0 },
      );
      sessions.set(r.id, s);
      maps.set(r.id, (await s.first()) as FullMap);
    }

    let deltasWithPeers = 0;
    for (let step = 0; step < 40; step++) {
      const kind = rand(3);
      const before = new Map(maps);
      if (kind === 0) {
        policy = policies[rand(policies.length)]!;
        netmaps.snap = TailnetSnapshot.build(rows, [], policy, "t.internal", new Date(), netmaps.snap);
        for (const s of sessions.values()) s.notify();
      } else if (kind === 1) {
        const picked = [...new Set(Array.from({ length: 1 + rand(3) }, () => rows[rand(rows.length)]!))];
        // Some rows are written without a change peers can see (a new object all the same).
        const changed = picked.map((r) =>
          rand(2) === 0
            ? { ...r, updatedAt: new Date(1000 + step) }
            : {
                ...r,
                endpoints: JSON.stringify([`192.0.2.${rand(250)}:${1000 + step}`]),
                online: rand(2) === 0,
              },
        );
        rows = rows.map((r) => changed.find((c) => c.id === r.id) ?? r);
        netmaps.snap = netmaps.snap.withRows(changed);
        const ids = changed.map((c) => c.id);
        for (const s of sessions.values()) s.notify(ids);
      } else {
        const k = rand(rows.length);
        rows = rows.map((r, i) =>
          i === k
            ? { ...r, tags: JSON.stringify([tags[rand(tags.length)]]), updatedAt: new Date(step + 1) }
            : r,
        );
        netmaps.snap = TailnetSnapshot.build(rows, [], policy, "t.internal", new Date(), netmaps.snap);
        for (const s of sessions.values()) s.notify();
      }
      await settle();
      const fresh = TailnetSnapshot.build(rows, [], policy, "t.internal");
      for (const r of rows) {
        const { seq: _seq, ...got } = maps.get(r.id)!;
        expect(JSON.stringify(got), `step ${step} (${kind}), ${r.name}`).toBe(
          JSON.stringify(fresh.mapFor(r.id, relayMap, dns)),
        );
        if (maps.get(r.id)!.peers !== before.get(r.id)!.peers) deltasWithPeers++;
      }
    }
    for (const s of sessions.values()) s.close();
    // Deltas carried peers when peers changed, and never a peer the node already had as it is.
    expect(deltasWithPeers).toBeGreaterThan(20);
    expect(redundant).toBe(0);
  });
});

function parsed(text: string) {
  return { version: 1, text, policy: parsePolicy(text) };
}
