import { describe, expect, it } from "vitest";
import { clientAddress, parseTrustedProxies } from "./client-address";

const trusted = parseTrustedProxies(["10.0.0.0/8", "::1"]).prefixes;

describe("clientAddress", () => {
  it("is the socket's peer when no proxy is trusted, whatever X-Forwarded-For claims", () => {
    expect(clientAddress("203.0.113.9", "1.2.3.4", [])).toBe("203.0.113.9");
    expect(clientAddress("203.0.113.9", "1.2.3.4", trusted)).toBe("203.0.113.9");
  });

  it("behind a trusted proxy, each client is told apart by the address the proxy saw", () => {
    expect(clientAddress("10.0.0.2", "198.51.100.7", trusted)).toBe("198.51.100.7");
    expect(clientAddress("::ffff:10.0.0.2", "198.51.100.8", trusted)).toBe("198.51.100.8");
    expect(clientAddress("::1", "2001:db8::5", trusted)).toBe("2001:db8::5");
  });

  it("believes nothing left of the first untrusted hop (a client-forged prefix)", () => {
    expect(clientAddress("10.0.0.2", "6.6.6.6, 198.51.100.7", trusted)).toBe("198.51.100.7");
    expect(clientAddress("10.0.0.2", ["6.6.6.6", "198.51.100.7, 10.0.0.3"], trusted)).toBe("198.51.100.7");
    expect(clientAddress("10.0.0.2", "garbage, 198.51.100.7", trusted)).toBe("198.51.100.7");
    expect(clientAddress("10.0.0.2", "198.51.100.7, garbage", trusted)).toBe("10.0.0.2");
  });

  it("a trusted peer without the header is the client", () => {
    expect(clientAddress("10.0.0.2", undefined, trusted)).toBe("10.0.0.2");
    expect(clientAddress(undefined, undefined, trusted)).toBe("unknown");
  });

  it("parses addresses and prefixes, naming the first bad entry", () => {
    expect(parseTrustedProxies(["127.0.0.1", "fd00::/8"]).bad).toBeUndefined();
    expect(parseTrustedProxies(["127.0.0.1", "proxy.local"]).bad).toBe("proxy.local");
  });
});
