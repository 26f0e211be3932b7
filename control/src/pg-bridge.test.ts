import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate, openDatabase, type Database } from "@trellis/db";
import { createLogger } from "@trellis/log";
import { postgresBinDir, startTempPostgres, type TempPostgres } from "@trellis/db/testing/postgres";
import { SIGNAL_MAX_SEALED } from "@trellis/proto";
import { EventBus, type ControlEvent, type MapChange } from "./events";
import { recordChange } from "./outbox";
import { PgEventBridge, type BridgeOptions } from "./pg-bridge";

// Two server processes on one PostgreSQL database, as two buses with their
// bridges: a change published in one reaches the other, once; a numbered
// change (the outbox) reaches it even when its NOTIFY does not.

const log = createLogger("bridge-test", "silent");

async function until(cond: () => boolean, what: string, ms = 15_000): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - start;
}

describe.skipIf(postgresBinDir() === null)("PostgreSQL event bridge", () => {
  let pg: TempPostgres;
  const bridges: PgEventBridge[] = [];
  const dbs: Database[] = [];
  beforeAll(async () => {
    pg = await startTempPostgres();
    await migrate(pg.url);
  });
  afterAll(async () => {
    await Promise.all(bridges.map((b) => b.close()));
    await Promise.all(dbs.map((d) => d.close()));
    pg?.stop();
  });

  async function process_(opts: BridgeOptions = {}) {
    const db = await openDatabase(pg.url);
    dbs.push(db);
    const bus = new EventBus();
    const bridge = await PgEventBridge.start(db, bus, log, opts);
    bridges.push(bridge);
    const seen: ControlEvent[] = [];
    bus.subscribe((e) => seen.push(e));
    /** Commit `event` through the outbox, then publish it here, as writers do. */
    const commit = async (event: MapChange) => {
      const numbered = await db.prisma.$transaction((tx) => recordChange(db, tx, event));
      bus.publish(numbered);
      return numbered;
    };
    return { db, bus, bridge, seen, commit };
  }

  it("carries node and policy changes to the other process, never echoing", async () => {
    const a = await process_();
    const b = await process_();
    a.bus.publish({ type: "nodes", ids: ["n1", "n2"], attrsOnly: true });
    await until(() => b.seen.length === 1, "the node event at b");
    expect(b.seen[0]).toMatchObject({
      type: "nodes",
      ids: ["n1", "n2"],
      attrsOnly: true,
      origin: a.bridge.origin,
    });
    b.bus.publish({ type: "policy" });
    await until(() => a.seen.length === 2, "the policy event at a");
    expect(a.seen[1]).toMatchObject({ type: "policy", origin: b.bridge.origin });
    await new Promise((r) => setTimeout(r, 200));
    // Each side saw its own event once (locally) and the other's once: no echoes.
    expect(a.seen.length).toBe(2);
    expect(b.seen.length).toBe(2);
  });

  it("carries settings changes and signals of the largest allowed size, verbatim", async () => {
    const a = await process_();
    const b = await process_();
    a.bus.publish({ type: "settings" });
    const to = "nodekey:" + "a".repeat(64);
    const from = "nodekey:" + "b".repeat(64);
    const sealed = "A".repeat(SIGNAL_MAX_SEALED - 2) + "==";
    a.bus.publish({ type: "signal", to, from, sealed });
    await until(() => b.seen.length === 2, "both events at b");
    expect(b.seen[0]).toMatchObject({ type: "settings", origin: a.bridge.origin });
    expect(b.seen[1]).toEqual({ type: "signal", to, from, sealed, origin: a.bridge.origin });
    // The sender counts once its NOTIFY resolves, which may be after b hears it.
    await until(() => a.bridge.stats.sent === 2, "both sends acknowledged");
  });

  it("splits a large node event to fit NOTIFY's payload limit", async () => {
    const a = await process_();
    const b = await process_();
    const ids = Array.from({ length: 450 }, (_, i) => `node-${i}-${"x".repeat(30)}`);
    a.bus.publish({ type: "nodes", ids });
    await until(() => b.seen.flatMap((e) => (e.type === "nodes" ? e.ids : [])).length === 450, "all ids");
    expect(b.seen.length).toBe(5);
  });

  it("ignores malformed notifications", async () => {
    const a = await process_();
    const { default: PgLib } = await import("pg");
    const raw = new PgLib.Client({ connectionString: pg.url });
    await raw.connect();
    await raw.query("SELECT pg_notify('trellis_events', $1)", ['{"type":"nodes","ids":"not-a-list"}']);
    await raw.query("SELECT pg_notify('trellis_events', $1)", ["not json"]);
    await raw.end();
    await until(() => a.bridge.stats.invalid === 2, "both rejected");
    expect(a.seen).toEqual([]);
  });
});

describe.skipIf(postgresBinDir() === null)("the outbox behind the PostgreSQL event bridge", () => {
  let pg: TempPostgres;
  const bridges: PgEventBridge[] = [];
  const dbs: Database[] = [];
  beforeAll(async () => {
    pg = await startTempPostgres();
  });
  afterAll(async () => {
    await Promise.all(bridges.map((b) => b.close()));
    await Promise.all(dbs.map((d) => d.close()));
    pg?.stop();
  });

  /** A process on database `url`: its bus, bridge, what its bus published, and a writer. */
  async function process_(url: string, opts: BridgeOptions = {}) {
    const db = await openDatabase(url);
    dbs.push(db);
    const bus = new EventBus();
    const bridge = await PgEventBridge.start(db, bus, log, opts);
    bridges.push(bridge);
    const seen: ControlEvent[] = [];
    bus.subscribe((e) => seen.push(e));
    const commit = async (event: MapChange) => {
      const numbered = await db.prisma.$transaction((tx) => recordChange(db, tx, event));
      bus.publish(numbered);
      return numbered;
    };
    return { db, bus, bridge, seen, commit };
  }
  async function database(): Promise<string> {
    const url = pg.createDatabase(`o${dbs.length}_${Date.now() % 100_000}`);
    await migrate(url);
    return url;
  }
  const numbered = (seen: ControlEvent[]) =>
    seen.filter((e) => e.type !== "signal" && e.seq !== undefined).map((e) => (e as MapChange).seq);

  it("numbers changes in commit order and publishes each once in every process, the writer's included", async () => {
    const url = await database();
    const a = await process_(url);
    const b = await process_(url);
    const c1 = await a.commit({ type: "policy" });
    const c2 = await b.commit({ type: "nodes", ids: ["n1"] });
    const c3 = await a.commit({ type: "settings" });
    expect([c1.seq, c2.seq, c3.seq]).toEqual([1, 2, 3]);
    await until(() => a.bus.sequence.applied === 3 && b.bus.sequence.applied === 3, "both at 3");
    await new Promise((r) => setTimeout(r, 100));
    // Each heard every change once: its own from its writer (its NOTIFY dropped), the other's by NOTIFY.
    expect(numbered(a.seen)).toEqual([1, 2, 3]);
    expect(numbered(b.seen).sort()).toEqual([1, 2, 3]);
    expect(b.seen.find((e) => e.type === "nodes")).toMatchObject({ ids: ["n1"], seq: 2 });
    expect(a.bridge.stats.replayed + b.bridge.stats.replayed).toBe(0);
  });

  it("reads a change it did not hear from the outbox: at the periodic check, and at a gap", async () => {
    const url = await database();
    const a = await process_(url);
    const b = await process_(url, { checkMs: 300 });
    // b stops hearing NOTIFY while its connection stays up: only the periodic check can bring the change.
    await b.bridge.deafen();
    await a.commit({ type: "policy" });
    await until(() => numbered(b.seen).includes(1), "the policy change through the check", 5_000);
    expect(b.bridge.stats).toMatchObject({ replayed: 1, received: 0, reconnects: 0 });

    // A gap: c hears change 3 but not 2 (committed without NOTIFY reaching it) and reads 2 at once.
    const c = await process_(url, { checkMs: 60_000 });
    await c.bridge.deafen();
    await a.commit({ type: "nodes", ids: ["n2"] });
    const last = await c.commit({ type: "settings" });
    expect(last.seq).toBe(3);
    await until(() => c.bus.sequence.applied === 3, "c's gap filled", 5_000);
    expect(c.seen.find((e) => e.type === "nodes")).toMatchObject({ ids: ["n2"], seq: 2, origin: "outbox" });
    expect(c.bridge.stats.replayed).toBe(1);
  });

  it("announces a change too large for NOTIFY by its number, and the others read it whole", async () => {
    const url = await database();
    const a = await process_(url);
    const b = await process_(url);
    const ids = Array.from({ length: 450 }, (_, i) => `node-${i}-${"x".repeat(30)}`);
    await a.commit({ type: "nodes", ids });
    await until(() => b.bus.sequence.applied === 1, "the change at b");
    const got = b.seen.filter((e) => e.type === "nodes");
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ ids, seq: 1, origin: "outbox" });
  });

  it("after its LISTEN connection is cut, reconnects, takes what was committed meanwhile and recomputes", async () => {
    const url = await database();
    const a = await process_(url);
    const b = await process_(url, { checkMs: 60_000 });
    await a.db.prisma.$queryRawUnsafe(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`,
      `trellis-events ${b.bridge.origin}`,
    );
    await a.commit({ type: "policy" });
    await until(() => b.bridge.stats.reconnects === 1, "b's reconnect", 10_000);
    await until(() => b.bus.sequence.applied === 1, "b at 1", 5_000);
    expect(b.seen.some((e) => e.type === "settings" && e.origin === "reconnect")).toBe(true);
    expect(b.bridge.health()).toMatchObject({ listening: true, seq: 1 });
  });
});
