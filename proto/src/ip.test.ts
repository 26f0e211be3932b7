import { describe, expect, it } from "vitest";
import { addr16, addrBytes, addrFromBytes, formatAddr, parseAddr, parseSocketAddr } from "./ip";

describe("addresses as bytes", () => {
  it("round-trips IPv4 and IPv6 through network-order bytes", () => {
    for (const text of [
      "192.0.2.1",
      "0.0.0.0",
      "255.255.255.255",
      "fd7a:115c:a1e0::1",
      "::",
      "2001:db8::ff00:42:8329",
    ]) {
      const a = parseAddr(text)!;
      const bytes = addrBytes(a);
      expect(bytes.length).toBe(a.v === 4 ? 4 : 16);
      expect(formatAddr(addrFromBytes(bytes)!)).toBe(text);
    }
    expect([...addrBytes(parseAddr("192.0.2.1")!)]).toEqual([192, 0, 2, 1]);
    expect(addrFromBytes(new Uint8Array(5))).toBeNull();
  });

  it("maps IPv4 into 16 bytes as DERP carries endpoints", () => {
    expect([...addr16(parseAddr("192.0.2.1")!)]).toEqual([
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1,
    ]);
    expect([...addr16(parseAddr("::1")!)].at(-1)).toBe(1);
  });

  it("reads socket addresses: IPv4-mapped IPv6 is IPv4, zones are dropped, junk is refused", () => {
    expect(parseSocketAddr("::ffff:192.0.2.1")).toEqual({ v: 4, n: 0xc0000201n });
    expect(formatAddr(parseSocketAddr("fe80::1%eth0")!)).toBe("fe80::1");
    expect(parseSocketAddr("not an address")).toBeNull();
    expect(parseSocketAddr("1.2.3")).toBeNull();
  });
});
