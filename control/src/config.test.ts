import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config";

describe("loadConfig", () => {
  it("defaults to port 8080, ./data and SQLite inside it, relay embedded", () => {
    expect(loadConfig({}, "/srv/trellis")).toEqual({
      port: 8080,
      host: "0.0.0.0",
      dataDir: "/srv/trellis/data",
      databaseUrl: "file:/srv/trellis/data/trellis.db",
      embeddedRelay: true,
      publicUrl: "http://localhost:8080",
    });
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

  it.each([
    [{ PORT: "http" }, /PORT/],
    [{ PORT: "70000" }, /PORT must be between 1 and 65535/],
    [{ PORT: "80.5" }, /PORT must be an integer/],
    [{ TRELLIS_PUBLIC_URL: "vpn.example.com" }, /TRELLIS_PUBLIC_URL/],
    [{ TRELLIS_EMBEDDED_RELAY: "maybe" }, /TRELLIS_EMBEDDED_RELAY/],
  ])("rejects %j naming the variable", (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
