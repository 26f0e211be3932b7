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
