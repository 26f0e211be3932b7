import { describe, expect, it } from "vitest";
import { TokenBuckets } from "./signal";

describe("signal token buckets", () => {
  it("allow a burst, then the sustained rate, per sender", () => {
    let now = 0;
    const b = new TokenBuckets({ perSecond: 20, burst: 40 }, () => now);
    const burst = Array.from({ length: 50 }, () => b.take("a")).filter(Boolean).length;
    expect(burst).toBe(40);
    expect(b.take("b")).toBe(true); // another sender has its own bucket
    now += 500; // half a second refills 10
    expect(Array.from({ length: 20 }, () => b.take("a")).filter(Boolean).length).toBe(10);
    now += 60_000; // never more than the burst
    expect(Array.from({ length: 50 }, () => b.take("a")).filter(Boolean).length).toBe(40);
  });

  it("stay bounded: idle, refilled buckets are forgotten", () => {
    let now = 0;
    const b = new TokenBuckets({ perSecond: 1, burst: 2 }, () => now, 100);
    for (let i = 0; i < 100; i++) b.take(`n${i}`);
    now += 10_000;
    b.take("last");
    expect((b as unknown as { buckets: Map<string, unknown> }).buckets.size).toBeLessThanOrEqual(1);
  });
});
