import { describe, expect, it } from "vitest";
import { addressesOf } from "./addresses";

describe("address pairs", () => {
  it("use the same index in 100.64.0.0/10 and fd7a:115c:a1e0::/48", () => {
    expect(addressesOf(1)).toEqual({ ipv4: "100.64.0.1", ipv6: "fd7a:115c:a1e0::1" });
    expect(addressesOf(0x10203)).toEqual({ ipv4: "100.65.2.3", ipv6: "fd7a:115c:a1e0::1:203" });
    expect(addressesOf((1 << 22) - 1).ipv4).toBe("100.127.255.255");
  });
});
