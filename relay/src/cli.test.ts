import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RelayCliError, USAGE, parseRelayCli, type RelayCliConfig } from "./cli";
import type { ClientVerifier } from "./server";

const asked: string[] = [];
const verifier = (url: string): ClientVerifier => {
  asked.push(url);
  return (keys) => Promise.resolve(keys.map(() => true));
};
const parse = (argv: string[], env: Record<string, string> = {}) =>
  parseRelayCli(argv, env, { verifier }) as RelayCliConfig;

describe("trellis-relay's command line", () => {
  it("verifies clients by default, so it will not start without the control server", () => {
    expect(() => parse([])).toThrow(RelayCliError);
    expect(() => parse([])).toThrow(/--control-url/);
    const cfg = parse(["--control-url", "https://vpn.example.com"]);
    expect(cfg.verifyClient).toBeTypeOf("function");
    expect(cfg.controlUrl).toBe("https://vpn.example.com");
    expect(asked).toContain("https://vpn.example.com");
    expect(parse([], { TRELLIS_CONTROL_URL: "http://control:8080" }).verifyClient).toBeTypeOf("function");
  });

  it("honours TRELLIS_RELAY_VERIFY_CLIENTS=false: any node that proves its key, even with a control URL", () => {
    for (const off of ["false", "0", "FALSE"]) {
      expect(parse([], { TRELLIS_RELAY_VERIFY_CLIENTS: off }).verifyClient).toBeUndefined();
    }
    const cfg = parse(["--control-url", "https://vpn.example.com"], {
      TRELLIS_RELAY_VERIFY_CLIENTS: "false",
    });
    expect(cfg.verifyClient).toBeUndefined();
    expect(cfg.controlUrl).toBeUndefined();
    expect(() => parse([], { TRELLIS_RELAY_VERIFY_CLIENTS: "maybe" })).toThrow(/true or false/);
  });

  it("takes the listen address, STUN port and key file from flags or the environment", () => {
    const off = { TRELLIS_RELAY_VERIFY_CLIENTS: "false" };
    expect(parse([], off)).toMatchObject({
      port: 8081,
      host: "0.0.0.0",
      stunPort: 3478,
      keyFile: "data/relay.key",
    });
    expect(parse([], { ...off, PORT: "9000", HOST: "127.0.0.1", TRELLIS_STUN_PORT: "off" })).toMatchObject({
      port: 9000,
      host: "127.0.0.1",
      stunPort: null,
    });
    expect(
      parse(["--host", "::1", "--stun-port", "0", "--key-file", "/etc/trellis/relay.key", "--port", "443"], {
        ...off,
        HOST: "127.0.0.1",
      }),
    ).toMatchObject({ host: "::1", stunPort: 0, keyFile: "/etc/trellis/relay.key", port: 443 });
    expect(() => parse(["--stun-port", "70000"], off)).toThrow(RelayCliError);
    expect(() => parse(["--port", "0"], off)).toThrow(RelayCliError);
    expect(() => parse(["--bogus"], off)).toThrow(RelayCliError);
  });

  it("lists every flag and variable an operator needs in --help", () => {
    expect(parseRelayCli(["--help"], {})).toBe("help");
    for (const word of [
      "--host",
      "--port",
      "--stun-port",
      "--key-file",
      "--control-url",
      "--mesh-key",
      "--mesh-key-file",
      "--mesh-with",
      "--mesh-insecure",
      "--recheck",
      "HOST",
      "PORT",
      "TRELLIS_STUN_PORT",
      "TRELLIS_RELAY_VERIFY_CLIENTS",
      "TRELLIS_CONTROL_URL",
      "TRELLIS_RELAY_MESH_KEY",
      "TRELLIS_RELAY_MESH_INSECURE",
    ]) {
      expect(USAGE).toContain(word);
    }
  });

  it("takes mesh peers only pinned and over wss:// (ws:// when allowed), and the mesh key from a file", () => {
    const env = { TRELLIS_RELAY_VERIFY_CLIENTS: "false" };
    const pin = "#relaykey:" + "ab".repeat(32);
    const cfg = (argv: string[], e: Record<string, string> = env) => {
      const c = parseRelayCli(argv, e);
      if (c === "help") throw new Error("help");
      return c;
    };
    expect(cfg(["--mesh-with", `wss://r2.example/derp${pin}`]).meshWith).toEqual([
      `wss://r2.example/derp${pin}`,
    ]);
    expect(() => cfg(["--mesh-with", "wss://r2.example/derp"])).toThrow(/pinned/);
    expect(() => cfg(["--mesh-with", `ws://r2.example/derp${pin}`])).toThrow(/wss:\/\//);
    expect(cfg(["--mesh-insecure", "--mesh-with", `ws://r2.example/derp${pin}`]).meshInsecure).toBe(true);
    expect(
      cfg(["--mesh-with", `ws://r2.example/derp${pin}`], { ...env, TRELLIS_RELAY_MESH_INSECURE: "true" })
        .meshWith,
    ).toHaveLength(1);
    const dir = mkdtempSync(join(tmpdir(), "relay-cli-"));
    try {
      const file = join(dir, "mesh.key");
      writeFileSync(file, "cd".repeat(32) + "\n", { mode: 0o600 });
      expect(cfg(["--mesh-key-file", file]).meshKey).toBe("cd".repeat(32));
      expect(() => cfg(["--mesh-key-file", join(dir, "missing")])).toThrow(RelayCliError);
      expect(() => cfg(["--mesh-key", "short"])).toThrow(/64 hex digits/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
