// Presence on a real database: transitions land in the rows, and a storm of
// connects is written and announced in a few batches, not one per node. On
// PostgreSQL, replicas share it: a node is online while any live replica
// streams it.
import { describe, expect, it } from "vitest";
import type { Database } from "@trellis/db";
import { createLogger } from "@trellis/log";
import { EventBus, type ControlEvent } from "./events";
import { Presence } from "./presence";
import { PROVIDERS, testDatabases } from "./testing/db";

const log = createLogger("test", "silent");

async function nodes(db: Database, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const row = await db.prisma.node.create({ data: { nodeKey: `nodekey:${i}`, name: `n${i}` } });
    ids.push(row.id);
  }
  return ids;
}

function listen(bus: EventBus): ControlEvent[] {
  const events: ControlEvent[] = [];
  bus.subscribe((e) => events.push(e));
  return events;
}

describe.each(PROVIDERS)("presence on $provider", ({ provider, skip }) => {
  const dbs = testDatabases(provider);

  it.skipIf(skip)("writes each transition before connect resolves and announces it", async () => {
    const db = await dbs.open();
    const bus = new EventBus();
    const events = listen(bus);
    const presence = new Presence(db, bus, log, { ephemeralGraceMs: 60_000 });
    await presence.start();
    const [a] = await nodes(db, 1);
    await presence.connect(a!);
    const row = await db.prisma.node.findUniqueOrThrow({ where: { id: a! } });
    expect(row.online).toBe(true);
    expect(row.lastSeen).not.toBeNull();
    expect(events).toEqual([{ type: "nodes", ids: [a], attrsOnly: true }]);
    // A second stream of the same node is no transition.
    await presence.connect(a!);
    await presence.disconnect(a!, false);
    expect(events).toHaveLength(1);
    await presence.disconnect(a!, false);
    expect((await db.prisma.node.findUniqueOrThrow({ where: { id: a! } })).online).toBe(false);
    expect(events).toHaveLength(2);
    await presence.close();
  });

  it.skipIf(skip)("batches a reconnect storm: every node online, far fewer events than nodes", async () => {
    const db = await dbs.open();
    const bus = new EventBus();
    const events = listen(bus);
    // A long batch interval, so the storm below cannot outrun it on any machine.
    const presence = new Presence(db, bus, log, { ephemeralGraceMs: 60_000, batchMs: 60_000 });
    await presence.start();
    const ids = await nodes(db, 600);
    await presence.connect(ids[0]!); // the first after a quiet spell goes at once
    const rest = Promise.all(ids.slice(1).map((id) => presence.connect(id)));
    await presence.flushPending();
    await rest;
    expect(events.map((e) => (e.type === "nodes" ? e.ids.length : 0))).toEqual([1, 599]);
    const announced = events.flatMap((e) => (e.type === "nodes" ? e.ids : []));
    expect(new Set(announced)).toEqual(new Set(ids));
    // More ids than one UPDATE takes: all written.
    expect(await db.prisma.node.count({ where: { online: true } })).toBe(600);
    await presence.close();
  });

  it.skipIf(skip)(
    "writes at shutdown what is still waiting instead of sitting out the interval",
    async () => {
      const db = await dbs.open();
      const presence = new Presence(db, new EventBus(), log, { ephemeralGraceMs: 60_000, batchMs: 60_000 });
      await presence.start();
      const [a, b] = await nodes(db, 2);
      await presence.connect(a!);
      const late = presence.connect(b!);
      await presence.close();
      await late;
      const online = async (id: string) => (await db.prisma.node.findUniqueOrThrow({ where: { id } })).online;
      if (provider === "sqlite") {
        // One process: its streams' rows stay as they were; the next start clears them.
        expect([await online(a!), await online(b!)]).toEqual([true, true]);
        await new Presence(db, new EventBus(), log, { ephemeralGraceMs: 60_000 }).start();
        expect([await online(a!), await online(b!)]).toEqual([false, false]);
      } else {
        // A replica leaving ends its streams; b's was written first (its row exists), then ended.
        expect(await db.prisma.nodeStream.count()).toBe(0);
        expect([await online(a!), await online(b!)]).toEqual([false, false]);
        expect((await db.prisma.node.findUniqueOrThrow({ where: { id: b! } })).lastSeen).not.toBeNull();
      }
    },
  );

  it.skipIf(skip)("keeps the last state of a node that flapped within one batch", async () => {
    const db = await dbs.open();
    const bus = new EventBus();
    const events = listen(bus);
    const presence = new Presence(db, bus, log, { ephemeralGraceMs: 60_000, batchMs: 60_000 });
    await presence.start();
    const [a, b] = await nodes(db, 2);
    await presence.connect(a!);
    // Both transitions of each node before the batch is written.
    const flap = [presence.connect(b!), presence.disconnect(b!, false)];
    const up = [presence.disconnect(a!, false), presence.connect(a!)];
    await presence.flushPending();
    await Promise.all([...flap, ...up]);
    const rows = await db.prisma.node.findMany({ orderBy: { name: "asc" } });
    expect(rows.map((r) => [r.id, r.online])).toEqual([
      [a, true],
      [b, false],
    ]);
    expect(events.map((e) => (e.type === "nodes" ? e.ids.length : 0))).toEqual([1, 2]);
    await presence.close();
  });

  it.skipIf(skip)("writes a transition again when the database failed it", async () => {
    const db = await dbs.open();
    const [a] = await nodes(db, 1);
    // The first presence write fails, as when the database is briefly away.
    let failures = 0;
    const fail = () => {
      if (failures-- > 0) throw new Error("connection lost");
    };
    const flaky = new Proxy(db.prisma, {
      get(target, prop, receiver) {
        if (prop === "node") {
          const node = target.node;
          return new Proxy(node, {
            get: (n, p) =>
              p === "updateMany"
                ? (...args: unknown[]) => (fail(), n.updateMany(...(args as [never])))
                : Reflect.get(n, p),
          });
        }
        if (prop === "$transaction") {
          return (...args: unknown[]) => (fail(), target.$transaction(...(args as [never])));
        }
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const presence = new Presence({ ...db, target: db.target, prisma: flaky }, new EventBus(), log, {
      ephemeralGraceMs: 60_000,
      batchMs: 10,
    });
    await presence.start();
    failures = 1;
    await presence.connect(a!);
    const deadline = Date.now() + 10_000;
    while (!(await db.prisma.node.findUniqueOrThrow({ where: { id: a! } })).online) {
      if (Date.now() > deadline) throw new Error("the failed write was never retried");
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(failures).toBeLessThan(0);
    await presence.close();
  });
});

const pg = PROVIDERS.find((p) => p.provider === "postgresql")!;

describe.skipIf(pg.skip)("presence shared by replicas on postgresql", () => {
  const dbs = testDatabases("postgresql");
  const online = async (db: Database, id: string) =>
    (await db.prisma.node.findUniqueOrThrow({ where: { id } })).online;
  async function until(what: string, pred: () => Promise<boolean>) {
    const deadline = Date.now() + 10_000;
    while (!(await pred())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  it("keeps a node online while any replica streams it", async () => {
    const db = await dbs.open();
    const one = new Presence(db, new EventBus(), log, { ephemeralGraceMs: 60_000 });
    const two = new Presence(db, new EventBus(), log, { ephemeralGraceMs: 60_000 });
    await one.start();
    await two.start();
    const [a] = await nodes(db, 1);
    await one.connect(a!);
    // The node moves: its new stream opens on two before the old one on one closes.
    await two.connect(a!);
    await one.disconnect(a!, false);
    expect(await online(db, a!)).toBe(true);
    await two.disconnect(a!, false);
    expect(await online(db, a!)).toBe(false);
    // A replica starting later leaves alone what others stream.
    await one.connect(a!);
    const three = new Presence(db, new EventBus(), log, { ephemeralGraceMs: 60_000 });
    await three.start();
    expect(await online(db, a!)).toBe(true);
    await Promise.all([one.close(), two.close(), three.close()]);
    expect(await online(db, a!)).toBe(false);
  });

  it("takes a replica that stopped for dead: its nodes go offline and are announced", async () => {
    const db = await dbs.open();
    const [a, b] = await nodes(db, 2);
    // What a replica that crashed leaves: its row, a stream, an online node.
    const crashedAt = Date.now();
    await db.prisma.replica.create({ data: { id: "crashed", seenAt: new Date(crashedAt) } });
    await db.prisma.nodeStream.create({ data: { nodeId: b!, replicaId: "crashed" } });
    await db.prisma.node.update({ where: { id: b! }, data: { online: true } });
    const bus = new EventBus();
    const events = listen(bus);
    const live = new Presence(db, bus, log, { ephemeralGraceMs: 60_000, heartbeatMs: 50, ttlMs: 2_000 });
    await live.start();
    await live.connect(a!);
    // Not while its last heartbeat is recent (checked only if this machine got here in time).
    const stillOnline = await online(db, b!);
    if (Date.now() - crashedAt < 1_500) expect(stillOnline).toBe(true);
    await until("b is offline", async () => !(await online(db, b!)));
    // The replica's row goes after its streams (a step later).
    await until(
      "the crashed replica is deleted",
      async () => (await db.prisma.replica.findUnique({ where: { id: "crashed" } })) === null,
    );
    expect(await db.prisma.nodeStream.count({ where: { replicaId: "crashed" } })).toBe(0);
    expect(events.some((e) => e.type === "nodes" && e.ids.includes(b!))).toBe(true);
    // The live replica kept its own heartbeat, and its node.
    expect(await online(db, a!)).toBe(true);
    await live.close();
  });

  it("records its streams again when another replica took it for dead", async () => {
    const db = await dbs.open();
    const [a] = await nodes(db, 1);
    const p = new Presence(db, new EventBus(), log, { ephemeralGraceMs: 60_000, heartbeatMs: 50 });
    await p.start();
    await p.connect(a!);
    // As another replica's sweep would after a long pause of this one.
    await db.prisma.replica.delete({ where: { id: p.replicaId! } });
    expect(await db.prisma.nodeStream.count()).toBe(0);
    await until("a's stream is recorded again", async () => (await db.prisma.nodeStream.count()) === 1);
    expect(await online(db, a!)).toBe(true);
    await p.close();
  });

  it("corrects its stream rows when they drifted from the streams it holds", async () => {
    const db = await dbs.open();
    const [a, b] = await nodes(db, 2);
    const p = new Presence(db, new EventBus(), log, { ephemeralGraceMs: 60_000, heartbeatMs: 50 });
    await p.start();
    await p.connect(a!);
    // a's row lost, and a row for b, which this replica does not stream.
    await db.prisma.nodeStream.deleteMany({});
    await db.prisma.nodeStream.create({ data: { nodeId: b!, replicaId: p.replicaId! } });
    await db.prisma.node.update({ where: { id: b! }, data: { online: true } });
    await until("the rows match the streams", async () => {
      const rows = await db.prisma.nodeStream.findMany({ select: { nodeId: true } });
      return rows.length === 1 && rows[0]!.nodeId === a;
    });
    await until("b is offline", async () => !(await online(db, b!)));
    expect(await online(db, a!)).toBe(true);
    await p.close();
  });
});
