import { describe, expect, it } from "vitest";
import { ControlError } from "../errors";
import { checkOrigin, type OriginHeaders } from "./csrf";

const PUBLIC = "https://vpn.example.com";

function verdict(h: Partial<OriginHeaders>): number {
  try {
    checkOrigin({ origin: null, secFetchSite: null, host: "vpn.example.com", ...h }, PUBLIC);
    return 200;
  } catch (err) {
    if (ControlError.is(err)) return err.status;
    throw err;
  }
}

describe("checkOrigin compares the whole origin to TRELLIS_PUBLIC_URL's", () => {
  it("passes the console's own origin, or same-origin without an Origin", () => {
    expect(verdict({ origin: "https://vpn.example.com" })).toBe(200);
    expect(verdict({ origin: "https://vpn.example.com", secFetchSite: "same-origin" })).toBe(200);
    expect(verdict({ secFetchSite: "same-origin" })).toBe(200);
  });

  it("refuses without Origin unless Sec-Fetch-Site is same-origin", () => {
    expect(verdict({ secFetchSite: "same-site" })).toBe(403);
    expect(verdict({ secFetchSite: "none" })).toBe(403);
    expect(verdict({ secFetchSite: "cross-site" })).toBe(403);
    expect(verdict({})).toBe(403);
  });

  it("refuses an http:// Origin matching the Host of an https deployment", () => {
    expect(verdict({ origin: "http://vpn.example.com", host: "vpn.example.com" })).toBe(403);
    expect(verdict({ origin: "https://vpn.example.com:8443", host: "vpn.example.com:8443" })).toBe(403);
    expect(verdict({ origin: "https://evil.example", host: "evil.example" })).toBe(403);
    expect(verdict({ origin: "https://vpn.example.com.evil.example" })).toBe(403);
  });

  it("answers Origin: null with a 403, not a 500", () => {
    expect(verdict({ origin: "null" })).toBe(403);
    expect(verdict({ origin: "null", secFetchSite: "same-origin" })).toBe(403);
    expect(verdict({ origin: "not a url" })).toBe(403);
  });
});
