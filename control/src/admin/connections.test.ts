import { describe, expect, it } from "vitest";
import type { Database } from "@trellis/db";
import { PROVIDERS, testDatabases } from "../testing/db";
import { listConnections } from "./connections";
import { actorOf, adminContext, createNode, createUser, rejection } from "./testing";

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`admin connection log on ${provider}`, () => {
    const dbs = testDatabases(provider);

    async function world() {
      const db = await dbs.open();
      const ctx = adminContext(db);
      const auditor = await createUser(db, "auditor", "audit@example.com");
      const alice = await createUser(db, "member", "alice@example.com");
      const bob = await createUser(db, "member", "bob@example.com");
      const a = await createNode(db, "alice-laptop", { userId: alice.id });
      const b = await createNode(db, "bob-laptop", { userId: bob.id });
      const srv = await createNode(db, "srv", { tags: ["tag:web"] });
      return { db, ctx, auditor, alice, bob, a, b, srv };
    }

    function log(
      db: Database,
      minute: number,
      reporterId: string,
      src: { ip: string; node?: string },
      dst: { ip: string; node?: string },
      extra: { txBytes?: bigint; rxBytes?: bigint } = {},
    ) {
      return db.prisma.connectionLog.create({
        data: {
          reporterId,
          direction: "out",
          proto: 6,
          srcIp: src.ip,
          srcPort: 40000 + minute,
          dstIp: dst.ip,
          dstPort: 443,
          srcNodeId: src.node ?? null,
          dstNodeId: dst.node ?? null,
          startedAt: new Date(Date.UTC(2030, 0, 1, 0, minute)),
          ...extra,
        },
      });
    }

    it("lists newest first with both ends resolved and byte counts as numbers", async () => {
      const { db, ctx, auditor, a, b } = await world();
      const big = 2n ** 40n + 7n;
      await log(db, 1, a.id, { ip: a.ipv4!, node: a.id }, { ip: b.ipv4!, node: b.id }, { txBytes: big });
      await log(db, 2, b.id, { ip: b.ipv6!, node: b.id }, { ip: "192.168.1.5" });
      await log(db, 3, "gone-node", { ip: "100.64.9.9", node: "gone-node" }, { ip: a.ipv4!, node: a.id });
      const page = await listConnections(ctx, actorOf(auditor), {});
      expect(page.total).toBe(3);
      const [third, second, first] = page.items;
      expect(first).toMatchObject({
        reporter: { id: a.id, name: "alice-laptop" },
        src: `${a.ipv4}:40001`,
        dst: `${b.ipv4}:443`,
        srcNode: { id: a.id, name: "alice-laptop", user: "alice@example.com" },
        dstNode: { id: b.id, name: "bob-laptop", user: "bob@example.com" },
        txBytes: Number(big),
        rxBytes: 0,
        endedAt: null,
        startedAt: "2030-01-01T00:01:00.000Z",
      });
      expect(second).toMatchObject({ src: `[${b.ipv6}]:40002`, dst: "192.168.1.5:443", dstNode: null });
      expect(third).toMatchObject({
        reporter: { id: "gone-node", name: "(removed)" },
        srcNode: { id: "gone-node", name: "(removed)", user: null },
      });
    });

    it("filters by node (reporter or either end), by owner and by time", async () => {
      const { db, ctx, auditor, bob, a, b, srv } = await world();
      await log(db, 1, a.id, { ip: a.ipv4!, node: a.id }, { ip: srv.ipv4!, node: srv.id });
      await log(db, 2, srv.id, { ip: b.ipv4!, node: b.id }, { ip: srv.ipv4!, node: srv.id });
      await log(db, 3, b.id, { ip: b.ipv4!, node: b.id }, { ip: "8.8.8.8" });
      const minutes = async (q: Record<string, string>) =>
        (await listConnections(ctx, actorOf(auditor), q)).items.map((c) =>
          new Date(c.startedAt).getUTCMinutes(),
        );
      expect(await minutes({ nodeId: srv.id })).toEqual([2, 1]);
      expect(await minutes({ nodeId: a.id })).toEqual([1]);
      expect(await minutes({ userId: bob.id })).toEqual([3, 2]);
      expect(await minutes({ userId: bob.id, nodeId: a.id })).toEqual([]);
      expect(await minutes({ since: "2030-01-01T00:02:00Z" })).toEqual([3, 2]);
      expect(await minutes({ until: "2030-01-01T00:02:00Z" })).toEqual([1]);
    });

    it("pages without repeats", async () => {
      const { db, ctx, auditor, a, b } = await world();
      // Two records share a start time: the id breaks the tie.
      for (const m of [1, 2, 2, 3, 4]) await log(db, m, a.id, { ip: a.ipv4!, node: a.id }, { ip: b.ipv4! });
      const ids: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await listConnections(ctx, actorOf(auditor), {
          limit: "2",
          ...(cursor ? { cursor } : {}),
        });
        expect(page.total).toBe(5);
        ids.push(...page.items.map((c) => c.id));
        cursor = page.nextCursor ?? undefined;
        pages++;
      } while (cursor);
      expect(pages).toBe(3);
      expect(new Set(ids).size).toBe(5);
    });

    it("is for holders of logs:read only, and checks the query", async () => {
      const { ctx, alice, auditor } = await world();
      expect((await rejection(listConnections(ctx, actorOf(alice), {}))).status).toBe(403);
      const bad = await rejection(listConnections(ctx, actorOf(auditor), { limit: "500" }));
      expect(bad.status).toBe(400);
      expect(bad.issues?.[0]?.path).toBe("limit");
    });
  });
}
