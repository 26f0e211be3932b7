import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { postgresBinDir, startTempPostgres, type TempPostgres } from "@trellis/db/testing/postgres";
import { SIGNAL_MAX_SEALED } from "@trellis/proto";
import { EventBus, type ControlEvent } from "./events";
import { PgEventBridge } from "./pg-bridge";

// Two server processes on one PostgreSQL database, as two buses with their
// bridges: a change published in one reaches the other, once.

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
  beforeAll(async () => {
    pg = await startTempPostgres();
  });
  afterAll(async () => {
    await Promise.all(bridges.map((b) => b.close()));
    pg?.stop();
  });

  async function process_() {
    const bus = new EventBus();
    const bridge = await PgEventBridge.start(pg.url, bus, log);
    bridges.push(bridge);
    const seen: ControlEvent[] = [];
    bus.subscribe((e) => seen.push(e));
    return { bus, bridge, seen };
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
