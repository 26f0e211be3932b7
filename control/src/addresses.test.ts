import { describe, expect, it } from "vitest";
import { addressesOf, reservedIndex } from "./addresses";

describe("address pairs", () => {
  it("use the same index in 100.64.0.0/10 and fd7a:115c:a1e0::/48", () => {
    expect(addressesOf(1)).toEqual({ ipv4: "100.64.0.1", ipv6: "fd7a:115c:a1e0::1" });
    expect(addressesOf(0x10203)).toEqual({ ipv4: "100.65.2.3", ipv6: "fd7a:115c:a1e0::1:203" });
    expect(addressesOf((1 << 22) - 1).ipv4).toBe("100.127.255.255");
  });

  it("skip the network address, 100.100.100.0/24 and the ChromeOS block 100.115.92.0/23", () => {
    const at = (ip: string) => {
      const [a, b, c, d] = ip.split(".").map(Number);
      return ((a! << 24) | (b! << 16) | (c! << 8) | d!) - 0x64400000;
    };
    for (const ip of ["100.64.0.0", "100.100.100.0", "100.100.100.255", "100.115.92.0", "100.115.93.255"])
      expect(reservedIndex(at(ip)), ip).toBe(true);
    for (const ip of ["100.64.0.1", "100.100.99.255", "100.115.91.255", "100.115.94.0"])
      expect(reservedIndex(at(ip)), ip).toBe(false);
  });
});
