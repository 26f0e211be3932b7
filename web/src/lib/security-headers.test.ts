import { describe, expect, it } from "vitest";
import { consoleSecurityHeaders } from "./security-headers";

describe("console security headers", () => {
  it("forbid framing, sniffing and cross-site referrers; HSTS only behind TLS", () => {
    const plain = new Map(consoleSecurityHeaders("http://vpn.internal:3000"));
    expect(plain.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(plain.get("x-frame-options")).toBe("DENY");
    expect(plain.get("x-content-type-options")).toBe("nosniff");
    expect(plain.get("referrer-policy")).toBe("same-origin");
    expect(plain.has("strict-transport-security")).toBe(false);
    const tls = new Map(consoleSecurityHeaders("https://vpn.example.com"));
    expect(tls.get("strict-transport-security")).toMatch(/^max-age=\d+/);
  });
});
