// trellis-relay: the DERP relay as a process of its own (scale-out, extra regions).
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { isKnownNodeKey } from "@trellis/control";
import { migrate, openDatabase } from "@trellis/db";
import { createLogger } from "@trellis/log";
import { loadOrCreateKeyFile } from "@trellis/proto/keyfile";
import { Relay } from "./relay";

const USAGE = `usage: trellis-relay [options]

  --port N             HTTP port for /derp, /derp/probe, /metrics, /health (default 8081, or PORT)
  --host ADDR          address to listen on (default 0.0.0.0)
  --stun-port N|off    UDP port of the STUN server (default 3478)
  --key-file PATH      the relay's private key, created 0600 on first use (default ./data/relay.key)
  --mesh-key HEX       shared mesh secret, 64 hex digits (or TRELLIS_RELAY_MESH_KEY)
  --mesh-with URLS     comma-separated ws(s)://…/derp URLs of the other relays of the mesh
  --database-url URL   verify clients against the control plane's database (or DATABASE_URL);
                       without one, any node that proves its key is admitted
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
      "database-url": { type: "string", default: process.env.DATABASE_URL },
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
  let verifyClient: ((k: Uint8Array) => Promise<boolean>) | undefined;
  let closeDb = async () => {};
  if (values["database-url"]) {
    await migrate(values["database-url"]);
    const db = await openDatabase(values["database-url"]);
    verifyClient = (k) => isKnownNodeKey(db, k);
    closeDb = () => db.close();
  } else {
    log.warn("no database: verify-clients is off, any node that proves its key is admitted");
  }
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
      await relay.close();
      server.closeAllConnections();
      server.close();
      await closeDb();
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
