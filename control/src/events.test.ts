import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { controlEventSchema, EventBus, type ControlEvent } from "./events";

describe("EventBus", () => {
  it("reports a failing listener in the log, and the other listeners still hear the event", () => {
    const lines: string[] = [];
    const log = pino(
      { level: "error" },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    );
    const bus = new EventBus(log);
    const heard: ControlEvent[] = [];
    bus.subscribe(() => {
      throw new Error("listener broke");
    });
    bus.subscribe((e) => heard.push(e));
    bus.publish({ type: "policy" });
    expect(heard).toEqual([{ type: "policy" }]);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      msg: "event listener failed",
      event: "policy",
      err: { message: "listener broke" },
    });
  });
});

describe("controlEventSchema", () => {
  it("bounds what crosses processes: ids per event, and an origin on the wire", () => {
    const wire = controlEventSchema({ maxIds: 2, originRequired: true });
    expect(wire.safeParse({ type: "nodes", ids: ["a", "b"], origin: "o" }).success).toBe(true);
    expect(wire.safeParse({ type: "nodes", ids: ["a", "b", "c"], origin: "o" }).success).toBe(false);
    expect(wire.safeParse({ type: "policy" }).success).toBe(false);
    expect(wire.safeParse({ type: "signal", to: "x", from: "y", sealed: "", origin: "o" }).success).toBe(
      false,
    );
  });
});

describe("numbered changes on the bus", () => {
  it("publishes each number once, in whatever order and however often it arrives, and tells of gaps", () => {
    const bus = new EventBus();
    const heard: number[] = [];
    bus.subscribe((e) => {
      if (e.type !== "signal" && e.seq !== undefined) heard.push(e.seq);
    });
    let gaps = 0;
    bus.sequence.onGap = () => gaps++;
    bus.sequence.advanceTo(4);
    expect(bus.publish({ type: "policy", seq: 4 })).toBe(false); // already reflected
    expect(bus.publish({ type: "policy", seq: 5 })).toBe(true);
    // 7 before 6: published, and a gap until 6 comes.
    expect(bus.publish({ type: "nodes", ids: ["a"], seq: 7 })).toBe(true);
    expect(bus.sequence).toMatchObject({ applied: 5, gapped: true });
    expect(gaps).toBe(1);
    expect(bus.publish({ type: "nodes", ids: ["a"], seq: 7, origin: "outbox" })).toBe(false);
    expect(bus.publish({ type: "settings", seq: 6 })).toBe(true);
    expect(bus.sequence).toMatchObject({ applied: 7, gapped: false });
    // 9 without 8, and the outbox says 8 never committed (rolled back): the gap closes at 9.
    bus.publish({ type: "policy", seq: 9 });
    bus.sequence.advanceTo(9);
    expect(bus.sequence).toMatchObject({ applied: 9, gapped: false });
    expect(heard).toEqual([5, 7, 6, 9]);
    // Unnumbered events (SQLite, attribute changes, signals) always go through.
    expect(bus.publish({ type: "nodes", ids: ["a"], attrsOnly: true })).toBe(true);
    expect(bus.publish({ type: "nodes", ids: ["a"], attrsOnly: true })).toBe(true);
  });
});
