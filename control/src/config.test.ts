import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config";

const pin = `relaykey:${"cd".repeat(32)}`;

describe("loadConfig", () => {
  it("defaults to port 8080, ./data and SQLite inside it, relay embedded", () => {
    expect(loadConfig({}, "/srv/trellis")).toEqual({
      port: 8080,
      host: "0.0.0.0",
      dataDir: "/srv/trellis/data",
      databaseUrl: "file:/srv/trellis/data/trellis.db",
      embeddedRelay: true,
      publicUrl: "http://localhost:8080",
      apps: { port: 8082, url: "http://localhost:8082" },
      stunPort: 3478,
      relayVerifyClients: true,
      relayMeshKey: undefined,
      relayMeshWith: [],
      relayMeshInsecure: false,
      relayMap: null,
      dnsDomain: "trellis.internal",
      authSecret: null,
      oidc: null,
      trustedProxies: [],
      login: { freeAttempts: 5, firstDelayMs: 1000, maxDelayMs: 900_000 },
    });
  });

  it("puts web apps on an origin of their own: PORT+2, another given one, a URL of its own, or off", () => {
    expect(loadConfig({ PORT: "3000", TRELLIS_PUBLIC_URL: "https://vpn.example.com" }).apps).toEqual({
      port: 3002,
      url: "https://vpn.example.com:3002",
    });
    expect(
      loadConfig({ TRELLIS_APPS_PORT: "9443", TRELLIS_APPS_URL: "https://apps.example.com/" }).apps,
    ).toEqual({
      port: 9443,
      url: "https://apps.example.com",
    });
    expect(loadConfig({ TRELLIS_APPS_PORT: "off" }).apps).toBeNull();
    expect(() => loadConfig({ PORT: "8080", TRELLIS_APPS_PORT: "8080" })).toThrow(
      /TRELLIS_APPS_PORT: must differ/,
    );
    expect(() =>
      loadConfig({
        TRELLIS_PUBLIC_URL: "https://a.example.com",
        TRELLIS_APPS_URL: "https://a.example.com/apps",
      }),
    ).toThrow(/TRELLIS_APPS_URL: must be another origin/);
    expect(() => loadConfig({ TRELLIS_APPS_PORT: "nope" })).toThrow(
      /TRELLIS_APPS_PORT must be a port number or off/,
    );
  });

  it("reads TRELLIS_TRUSTED_PROXIES as addresses and prefixes, and names a bad entry", () => {
    const c = loadConfig({ TRELLIS_TRUSTED_PROXIES: "127.0.0.1, 10.0.0.0/8,fd00::/8" });
    expect(c.trustedProxies.map((p) => p.bits)).toEqual([32, 8, 8]);
    expect(() => loadConfig({ TRELLIS_TRUSTED_PROXIES: "10.0.0.0/8,proxy.lan" })).toThrow(
      /TRELLIS_TRUSTED_PROXIES: "proxy.lan"/,
    );
  });

  it("reads the login throttle's free attempts and delays, and refuses a longest delay under the first", () => {
    expect(
      loadConfig({
        TRELLIS_LOGIN_FREE_ATTEMPTS: "3",
        TRELLIS_LOGIN_DELAY_SECONDS: "0.5",
        TRELLIS_LOGIN_MAX_DELAY_SECONDS: "60",
      }).login,
    ).toEqual({ freeAttempts: 3, firstDelayMs: 500, maxDelayMs: 60_000 });
    expect(() => loadConfig({ TRELLIS_LOGIN_FREE_ATTEMPTS: "0" })).toThrow(/TRELLIS_LOGIN_FREE_ATTEMPTS/);
    expect(() => loadConfig({ TRELLIS_LOGIN_DELAY_SECONDS: "soon" })).toThrow(/TRELLIS_LOGIN_DELAY_SECONDS/);
    expect(() =>
      loadConfig({ TRELLIS_LOGIN_DELAY_SECONDS: "120", TRELLIS_LOGIN_MAX_DELAY_SECONDS: "60" }),
    ).toThrow(/TRELLIS_LOGIN_MAX_DELAY_SECONDS: must be at least/);
  });

  it("honours PORT, TRELLIS_DATA_DIR, DATABASE_URL and TRELLIS_PUBLIC_URL", () => {
    const c = loadConfig(
      {
        PORT: "9000",
        TRELLIS_DATA_DIR: "/var/lib/trellis",
        DATABASE_URL: "postgres://db/trellis",
        TRELLIS_PUBLIC_URL: "https://vpn.example.com/",
        TRELLIS_EMBEDDED_RELAY: "false",
      },
      "/srv",
    );
    expect(c.port).toBe(9000);
    expect(c.dataDir).toBe("/var/lib/trellis");
    expect(c.databaseUrl).toBe("postgres://db/trellis");
    expect(c.publicUrl).toBe("https://vpn.example.com");
    expect(c.embeddedRelay).toBe(false);
  });

  it("reads the relay's STUN port, verification and mesh", () => {
    const c = loadConfig({
      TRELLIS_STUN_PORT: "off",
      TRELLIS_RELAY_VERIFY_CLIENTS: "false",
      TRELLIS_RELAY_MESH_KEY: "ab".repeat(32),
      TRELLIS_RELAY_MESH_WITH: `wss://r2.example.com/derp#${pin}, ws://10.0.0.3:8080/derp#${pin}`,
      TRELLIS_RELAY_MESH_INSECURE: "true",
    });
    expect(c.stunPort).toBeNull();
    expect(c.relayVerifyClients).toBe(false);
    expect(c.relayMeshWith).toEqual([`wss://r2.example.com/derp#${pin}`, `ws://10.0.0.3:8080/derp#${pin}`]);
    expect(c.relayMeshInsecure).toBe(true);
  });

  it("requires each mesh peer's relay key pinned, and wss:// unless TRELLIS_RELAY_MESH_INSECURE", () => {
    const env = { TRELLIS_RELAY_MESH_KEY: "ab".repeat(32) };
    expect(() => loadConfig({ ...env, TRELLIS_RELAY_MESH_WITH: "wss://r2.example.com/derp" })).toThrow(
      /relaykey:<64 hex digits>/,
    );
    expect(() => loadConfig({ ...env, TRELLIS_RELAY_MESH_WITH: `ws://10.0.0.3:8080/derp#${pin}` })).toThrow(
      /must use wss:\/\//,
    );
    expect(
      loadConfig({ ...env, TRELLIS_RELAY_MESH_WITH: `wss://r2.example.com/derp#${pin}` }).relayMeshWith,
    ).toHaveLength(1);
  });

  it("reads a relay map from TRELLIS_RELAY_MAP", () => {
    const map = {
      regions: {
        "7": {
          regionId: 7,
          regionCode: "fra",
          regionName: "Frankfurt",
          nodes: [
            {
              name: "7a",
              regionId: 7,
              hostName: "r.example.com",
              url: "wss://r.example.com/derp",
              stunPort: 3478,
            },
          ],
        },
      },
    };
    expect(loadConfig({ TRELLIS_RELAY_MAP: JSON.stringify(map) }).relayMap).toEqual(map);
  });

  it.each([
    [{ PORT: "http" }, /PORT/],
    [{ PORT: "70000" }, /PORT must be between 1 and 65535/],
    [{ PORT: "80.5" }, /PORT must be an integer/],
    [{ TRELLIS_PUBLIC_URL: "vpn.example.com" }, /TRELLIS_PUBLIC_URL/],
    [{ TRELLIS_EMBEDDED_RELAY: "maybe" }, /TRELLIS_EMBEDDED_RELAY/],
    [{ TRELLIS_STUN_PORT: "udp" }, /TRELLIS_STUN_PORT/],
    [{ TRELLIS_RELAY_MESH_KEY: "secret" }, /TRELLIS_RELAY_MESH_KEY must be 64 lowercase hex/],
    [{ TRELLIS_RELAY_MESH_WITH: "http://r2/derp" }, /TRELLIS_RELAY_MESH_WITH/],
    [{ TRELLIS_RELAY_MAP: "{" }, /TRELLIS_RELAY_MAP: not valid JSON/],
    [{ TRELLIS_RELAY_MAP: '{"regions":{}}' }, /TRELLIS_RELAY_MAP: needs at least one region/],
    [{ TRELLIS_RELAY_MAP: '{"regions":{"1":{"regionId":1}}}' }, /TRELLIS_RELAY_MAP: regions.1/],
    [{ TRELLIS_DNS_DOMAIN: "Bad_Domain" }, /TRELLIS_DNS_DOMAIN/],
  ])("rejects %j naming the variable", (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
