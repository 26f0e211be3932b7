// trellis-relay: the DERP relay as a process of its own (scale-out, extra regions).
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { createLogger } from "@trellis/log";
import { loadOrCreateKeyFile } from "@trellis/proto/keyfile";
import { Relay } from "./relay";
import { httpVerifier } from "./verify-http";

const USAGE = `usage: trellis-relay [options]

  --port N             HTTP port for /derp, /derp/probe, /metrics, /health (default 8081, or PORT)
  --host ADDR          address to listen on (default 0.0.0.0)
  --stun-port N|off    UDP port of the STUN server (default 3478)
  --key-file PATH      the relay's private key, created 0600 on first use (default ./data/relay.key)
  --mesh-key HEX       shared mesh secret, 64 hex digits (or TRELLIS_RELAY_MESH_KEY)
  --mesh-with URLS     comma-separated ws(s)://…/derp URLs of the other relays of the mesh
  --control-url URL    the control server whose nodes may use this relay (or TRELLIS_CONTROL_URL);
                       asked at each login and every --recheck seconds (default 15), so a node
                       deleted or expired is dropped
  --recheck N          seconds between rechecks of connected nodes (default 15)

Without --control-url the relay refuses to start, unless TRELLIS_RELAY_VERIFY_CLIENTS=false
(then any node that proves its key is admitted).
Environment: PORT, HOST, TRELLIS_STUN_PORT, TRELLIS_RELAY_MESH_KEY, TRELLIS_RELAY_MESH_WITH,
TRELLIS_CONTROL_URL, TRELLIS_RELAY_VERIFY_CLIENTS, TRELLIS_LOG_LEVEL.
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: process.env.PORT ?? "8081" },
      host: { type: "string", default: process.env.HOST ?? "0.0.0.0" },
      "stun-port": { type: "string", default: process.env.TRELLIS_STUN_PORT ?? "3478" },
      "key-file": { type: "string", default: "data/relay.key" },
      "mesh-key": { type: "string", default: process.env.TRELLIS_RELAY_MESH_KEY },
      "mesh-with": { type: "string", default: process.env.TRELLIS_RELAY_MESH_WITH ?? "" },
      "control-url": { type: "string", default: process.env.TRELLIS_CONTROL_URL },
      recheck: { type: "string", default: "15" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error("--port must be 1-65535");
  const stun = values["stun-port"] === "off" ? null : Number(values["stun-port"]);
  if (stun !== null && (!Number.isInteger(stun) || stun < 0 || stun > 65535)) {
    throw new Error("--stun-port must be 0-65535 or off");
  }
  const log = createLogger("relay");
  const verifyFlag = (process.env.TRELLIS_RELAY_VERIFY_CLIENTS ?? "true").toLowerCase();
  if (!["true", "false", "1", "0"].includes(verifyFlag)) {
    throw new Error("TRELLIS_RELAY_VERIFY_CLIENTS must be true or false");
  }
  const verify = verifyFlag === "true" || verifyFlag === "1";
  const recheckS = Number(values.recheck);
  if (!Number.isInteger(recheckS) || recheckS < 1 || recheckS > 3600)
    throw new Error("--recheck must be 1-3600");
  const controlUrl = values["control-url"];
  if (verify && !controlUrl) {
    throw new Error(
      "verify-clients needs the control server: pass --control-url URL (or set TRELLIS_RELAY_VERIFY_CLIENTS=false to admit any node)",
    );
  }
  if (controlUrl && !/^https?:\/\//.test(controlUrl))
    throw new Error("--control-url must be an http(s):// URL");
  const verifyClient = verify && controlUrl ? httpVerifier(controlUrl) : undefined;
  if (!verifyClient) log.warn("verify-clients is off: any node that proves its key is admitted");
  const meshWith = values["mesh-with"]!.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const relay = await Relay.start({
    key: loadOrCreateKeyFile(values["key-file"]!),
    log,
    stunPort: stun,
    meshKey: values["mesh-key"],
    meshWith,
    verifyClient,
    metricsPath: "/metrics",
    processMetrics: true,
  });
  const recheck = verifyClient
    ? setInterval(() => {
        relay.server
          .revalidate()
          .catch((err: unknown) => log.warn({ err }, "recheck of relay clients failed"));
      }, recheckS * 1000)
    : null;
  recheck?.unref();
  const server = createServer((req, res) => {
    if (relay.handleRequest(req, res)) return;
    if ((req.url ?? "").split("?")[0] === "/health") {
      const health = relay.health();
      res
        .writeHead(health.status === "listening" ? 200 : 503, { "content-type": "application/json" })
        .end(JSON.stringify(health));
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  });
  server.on("upgrade", (req, socket, head) => {
    if (!relay.handleUpgrade(req, socket, head)) socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, values.host, resolve);
  });
  const h = relay.health();
  process.stdout.write(
    `trellis-relay listening on ${values.host}:${port} (/derp)` +
      (h.stun_port !== undefined ? `, STUN on udp ${h.stun_port}` : "") +
      `\n  server key: ${h.server_key}\n`,
  );
  const shutdown = () => {
    void (async () => {
      if (recheck) clearInterval(recheck);
      await relay.close();
      server.closeAllConnections();
      server.close();
      process.exit(0);
    })();
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`trellis-relay: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
