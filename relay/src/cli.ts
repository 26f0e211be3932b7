// trellis-relay's command line: flags and environment into a checked config.
// Kept apart from main.ts so that what an operator types is tested.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseMeshPeer } from "./mesh";
import type { ClientVerifier } from "./server";
import { httpVerifier } from "./verify-http";

export const USAGE = `usage: trellis-relay [options]

  --port N             HTTP port for /derp, /derp/probe, /metrics, /health (default 8081, or PORT)
  --host ADDR          address to listen on, HTTP and STUN (default 0.0.0.0, or HOST)
  --stun-port N|off    UDP port of the STUN server (default 3478, or TRELLIS_STUN_PORT; 0 for any)
  --key-file PATH      the relay's private key, created 0600 on first use (default ./data/relay.key)
  --mesh-key-file PATH the shared mesh secret (64 hex digits) read from a file (or
                       TRELLIS_RELAY_MESH_KEY; --mesh-key HEX also works but shows in ps)
  --mesh-with URLS     comma-separated wss://host/derp#relaykey:<hex> of the other relays of the
                       mesh, each pinned to its relay key as its /health shows it
                       (or TRELLIS_RELAY_MESH_WITH); ws:// only with --mesh-insecure
  --mesh-insecure      allow ws:// mesh links (a private network; or TRELLIS_RELAY_MESH_INSECURE=true)
  --control-url URL    the control server whose nodes may use this relay (or TRELLIS_CONTROL_URL);
                       asked at each login and every --recheck seconds (default 15), so a node
                       deleted or expired is dropped
  --recheck N          seconds between rechecks of connected nodes (default 15)
  -h, --help           this text

verify-clients (TRELLIS_RELAY_VERIFY_CLIENTS, default true): only nodes the control server
admits may connect, so --control-url is required; TRELLIS_RELAY_VERIFY_CLIENTS=false admits
any node that proves its key (and warns at start).
Environment: PORT, HOST, TRELLIS_STUN_PORT, TRELLIS_RELAY_MESH_KEY, TRELLIS_RELAY_MESH_WITH,
TRELLIS_RELAY_MESH_INSECURE, TRELLIS_CONTROL_URL, TRELLIS_RELAY_VERIFY_CLIENTS, TRELLIS_LOG_LEVEL.
`;

/** A flag or variable the relay cannot start with; the message says which and why. */
export class RelayCliError extends Error {
  override readonly name = "RelayCliError";
}

export interface RelayCliConfig {
  port: number;
  host: string;
  /** null: no STUN server. */
  stunPort: number | null;
  keyFile: string;
  meshKey: string | undefined;
  meshWith: string[];
  /** ws:// mesh links allowed (mesh.ts parseMeshPeer). */
  meshInsecure: boolean;
  /** The control server asked by verify-clients; undefined when verify-clients is off. */
  controlUrl: string | undefined;
  /** undefined: verify-clients is off (TRELLIS_RELAY_VERIFY_CLIENTS=false). */
  verifyClient: ClientVerifier | undefined;
  recheckSeconds: number;
}

/** Parse argv and the environment; "help" when the usage was asked for. */
export function parseRelayCli(
  argv: string[],
  env: Record<string, string | undefined>,
  opts: { verifier?: (controlUrl: string) => ClientVerifier } = {},
): RelayCliConfig | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: "string", default: env.PORT ?? "8081" },
        host: { type: "string", default: env.HOST ?? "0.0.0.0" },
        "stun-port": { type: "string", default: env.TRELLIS_STUN_PORT ?? "3478" },
        "key-file": { type: "string", default: "data/relay.key" },
        "mesh-key": { type: "string", default: env.TRELLIS_RELAY_MESH_KEY },
        "mesh-key-file": { type: "string" },
        "mesh-with": { type: "string", default: env.TRELLIS_RELAY_MESH_WITH ?? "" },
        "mesh-insecure": {
          type: "boolean",
          default: ["true", "1"].includes(env.TRELLIS_RELAY_MESH_INSECURE ?? ""),
        },
        "control-url": { type: "string", default: env.TRELLIS_CONTROL_URL },
        recheck: { type: "string", default: "15" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    throw new RelayCliError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return "help";
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RelayCliError("--port must be 1-65535");
  const stunPort = values["stun-port"] === "off" ? null : Number(values["stun-port"]);
  if (stunPort !== null && (!Number.isInteger(stunPort) || stunPort < 0 || stunPort > 65535)) {
    throw new RelayCliError("--stun-port must be 0-65535 or off");
  }
  const verifyFlag = (env.TRELLIS_RELAY_VERIFY_CLIENTS ?? "true").toLowerCase();
  if (!["true", "false", "1", "0"].includes(verifyFlag)) {
    throw new RelayCliError("TRELLIS_RELAY_VERIFY_CLIENTS must be true or false");
  }
  const verify = verifyFlag === "true" || verifyFlag === "1";
  const recheckSeconds = Number(values.recheck);
  if (!Number.isInteger(recheckSeconds) || recheckSeconds < 1 || recheckSeconds > 3600) {
    throw new RelayCliError("--recheck must be 1-3600");
  }
  const controlUrl = values["control-url"] || undefined;
  if (controlUrl && !/^https?:\/\//.test(controlUrl)) {
    throw new RelayCliError("--control-url must be an http(s):// URL");
  }
  if (verify && !controlUrl) {
    throw new RelayCliError(
      "verify-clients needs the control server: pass --control-url URL (or set TRELLIS_RELAY_VERIFY_CLIENTS=false to admit any node)",
    );
  }
  let meshKey = values["mesh-key"];
  const keyFile = values["mesh-key-file"];
  if (keyFile) {
    try {
      meshKey = readFileSync(keyFile, "utf8").trim();
    } catch (err) {
      throw new RelayCliError(
        `--mesh-key-file ${keyFile}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  if (meshKey !== undefined && !/^[0-9a-f]{64}$/i.test(meshKey)) {
    throw new RelayCliError("the mesh key must be 64 hex digits");
  }
  const meshWith = values["mesh-with"]!.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of meshWith) {
    try {
      parseMeshPeer(entry, values["mesh-insecure"]);
    } catch (err) {
      throw new RelayCliError(`--mesh-with: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const makeVerifier = opts.verifier ?? ((url: string) => httpVerifier(url));
  return {
    port,
    host: values.host!,
    stunPort,
    keyFile: values["key-file"]!,
    meshKey,
    meshWith,
    meshInsecure: values["mesh-insecure"]!,
    controlUrl: verify ? controlUrl : undefined,
    verifyClient: verify && controlUrl ? makeVerifier(controlUrl) : undefined,
    recheckSeconds,
  };
}
