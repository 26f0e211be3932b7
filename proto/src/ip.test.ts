import { describe, expect, it } from "vitest";
import {
  addr16,
  addrBytes,
  addrFromBytes,
  formatAddr,
  isTailnetAddr,
  parseAddr,
  parseSocketAddr,
  TAILNET_SOURCES,
} from "./ip";

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

describe("the tailnet's address space", () => {
  it("is written as Tailscale writes it, with 100.115.92.0/23 left out", () => {
    expect(TAILNET_SOURCES.map((s) => s.text)).toEqual([
      "100.64.0.0-100.115.91.255",
      "100.115.94.0-100.127.255.255",
      "fd7a:115c:a1e0::/48",
    ]);
  });

  it("holds node addresses but not the ChromeOS block, other CGNAT space or other ULAs", () => {
    const inside = (t: string) => isTailnetAddr(parseAddr(t)!);
    for (const t of ["100.64.0.1", "100.115.91.255", "100.115.94.0", "100.127.255.255", "fd7a:115c:a1e0::5"])
      expect(inside(t), t).toBe(true);
    for (const t of [
      "100.115.92.0",
      "100.115.93.255",
      "100.63.255.255",
      "100.128.0.0",
      "10.1.2.3",
      "fd7a:115c:a1e1::1",
    ])
      expect(inside(t), t).toBe(false);
  });
});
