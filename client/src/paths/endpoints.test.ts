import { describe, expect, it } from "vitest";
import { EndpointTable } from "./endpoints";

describe("EndpointTable", () => {
  it("gives one handle per endpoint and finds the endpoint by it", () => {
    const t = new EndpointTable<string>();
    const a = t.handle("10.0.0.1|51820", "a");
    const b = t.handle("10.0.0.2|51820", "b");
    expect(a).not.toBe(b);
    expect(t.handle("10.0.0.1|51820", "a")).toBe(a);
    expect(t.get(a)).toBe("a");
    expect(t.get(b)).toBe("b");
    expect(t.get(12345)).toBeUndefined();
  });

  it("stays bounded under a flood of sources, keeping the endpoints in use", () => {
    const t = new EndpointTable<string>(8);
    const peer = t.handle("peer", "peer");
    for (let i = 0; i < 1000; i++) {
      t.handle(`spoofed-${i}`, "x");
      // The live peer's endpoint is used for every packet sent to it.
      expect(t.get(peer)).toBe("peer");
    }
    expect(t.size).toBe(8);
  });

  it("never hands a reused slot's path to a holder of its old handle", () => {
    const t = new EndpointTable<string>(2);
    const old = t.handle("a", "a");
    t.handle("b", "b");
    t.handle("c", "c"); // reuses a's slot
    expect(t.get(old)).toBeUndefined();
    expect(t.handle("a", "a")).not.toBe(old);
  });
});
