import { describe, expect, it } from "vitest";
import type { FullMap } from "@trellis/proto";
import { MapSequenceError, NetmapState } from "./state";
import { fullMap } from "../testing/maps";

describe("NetmapState", () => {
  it("applies a full map and deltas in sequence", () => {
    const s = new NetmapState();
    s.apply(fullMap(3));
    const m = s.apply({ type: "delta", seq: 4, policyVersion: 7 });
    expect(m.seq).toBe(4);
    expect(m.policyVersion).toBe(7);
  });

  it("refuses a delta that skips a seq, keeping the last good map", () => {
    const s = new NetmapState();
    s.apply(fullMap(0));
    s.apply({ type: "delta", seq: 1, policyVersion: 1 });
    expect(() => s.apply({ type: "delta", seq: 3, policyVersion: 3 })).toThrow(MapSequenceError);
    expect(s.map?.policyVersion).toBe(1);
    expect(() => s.apply({ type: "delta", seq: 1 })).toThrow(/skipped from seq 1 to 1/);
  });

  it("refuses a delta before any full map", () => {
    expect(() => new NetmapState().apply({ type: "delta", seq: 0 })).toThrow(/before its full map/);
    const reset = new NetmapState();
    reset.apply(fullMap(0) satisfies FullMap);
    reset.reset();
    expect(reset.map).toBeNull();
  });
});
