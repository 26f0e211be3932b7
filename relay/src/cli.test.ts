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
      "--mesh-with",
      "--recheck",
      "HOST",
      "PORT",
      "TRELLIS_STUN_PORT",
      "TRELLIS_RELAY_VERIFY_CLIENTS",
      "TRELLIS_CONTROL_URL",
      "TRELLIS_RELAY_MESH_KEY",
    ]) {
      expect(USAGE).toContain(word);
    }
  });
});
