// Presence on a real database: transitions land in the rows, and a storm of
// connects is written and announced in a few batches, not one per node.
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
    const ids = await nodes(db, 600);
    await presence.connect(ids[0]!); // the first after a quiet spell goes at once
    const rest = Promise.all(ids.slice(1).map((id) => presence.connect(id)));
    // Shutdown writes what is still waiting instead of sitting out the interval.
    await presence.close();
    await rest;
    expect(events.map((e) => (e.type === "nodes" ? e.ids.length : 0))).toEqual([1, 599]);
    const announced = events.flatMap((e) => (e.type === "nodes" ? e.ids : []));
    expect(new Set(announced)).toEqual(new Set(ids));
    // More ids than one UPDATE takes: all written.
    expect(await db.prisma.node.count({ where: { online: true } })).toBe(600);
  });

  it.skipIf(skip)("keeps the last state of a node that flapped within one batch", async () => {
    const db = await dbs.open();
    const bus = new EventBus();
    const events = listen(bus);
    const presence = new Presence(db, bus, log, { ephemeralGraceMs: 60_000, batchMs: 60_000 });
    const [a, b] = await nodes(db, 2);
    await presence.connect(a!);
    // Both transitions of each node before the batch is written.
    const flap = [presence.connect(b!), presence.disconnect(b!, false)];
    const up = [presence.disconnect(a!, false), presence.connect(a!)];
    await presence.close();
    await Promise.all([...flap, ...up]);
    const rows = await db.prisma.node.findMany({ orderBy: { name: "asc" } });
    expect(rows.map((r) => [r.id, r.online])).toEqual([
      [a, true],
      [b, false],
    ]);
    expect(events.map((e) => (e.type === "nodes" ? e.ids.length : 0))).toEqual([1, 2]);
  });
});
