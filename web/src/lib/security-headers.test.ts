import { describe, expect, it } from "vitest";
import { consoleCsp, consoleSecurityHeaders, newNonce, nonceOf } from "./security-headers";

describe("console security headers", () => {
  it("forbid framing, sniffing and cross-site referrers; HSTS only behind TLS", () => {
    const plain = new Map(consoleSecurityHeaders("http://vpn.internal:3000"));
    expect(plain.get("x-frame-options")).toBe("DENY");
    expect(plain.get("x-content-type-options")).toBe("nosniff");
    expect(plain.get("referrer-policy")).toBe("same-origin");
    expect(plain.has("strict-transport-security")).toBe(false);
    const tls = new Map(consoleSecurityHeaders("https://vpn.example.com"));
    expect(tls.get("strict-transport-security")).toMatch(/^max-age=\d+/);
  });

  it("runs only scripts with the response's nonce: no inline script or eval otherwise", () => {
    const nonce = newNonce();
    const csp = consoleCsp(nonce);
    expect(csp).toContain(`script-src 'nonce-${nonce}' 'strict-dynamic' 'wasm-unsafe-eval';`);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("object-src 'none'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("'unsafe-eval'");
    expect(consoleCsp(nonce, { dev: true })).toContain("'unsafe-eval'");
    expect(nonceOf(csp)).toBe(nonce);
  });

  it("makes a new unguessable nonce for every response", () => {
    const seen = new Set(Array.from({ length: 1000 }, newNonce));
    expect(seen.size).toBe(1000);
    for (const n of seen) expect(Buffer.from(n, "base64")).toHaveLength(16);
  });

  it("gives static chunks the framing rules but no script policy", () => {
    const csp = consoleCsp(null);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("script-src");
  });
});
