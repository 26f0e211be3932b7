// trellis-relay: the DERP relay as a process of its own (scale-out, extra regions).
import { createServer } from "node:http";
import { createLogger } from "@trellis/log";
import { loadOrCreateKeyFile } from "@trellis/proto/keyfile";
import { USAGE, parseRelayCli } from "./cli";
import { Relay } from "./relay";

async function main(): Promise<void> {
  const cfg = parseRelayCli(process.argv.slice(2), process.env);
  if (cfg === "help") {
    process.stdout.write(USAGE);
    return;
  }
  const log = createLogger("relay");
  const { verifyClient, port } = cfg;
  if (verifyClient) log.info({ controlUrl: cfg.controlUrl }, "verify-clients: asking the control server");
  else log.warn("verify-clients is off: any node that proves its key is admitted");
  const relay = await Relay.start({
    key: loadOrCreateKeyFile(cfg.keyFile),
    log,
    stunPort: cfg.stunPort,
    stunHost: cfg.host,
    meshKey: cfg.meshKey,
    meshWith: cfg.meshWith,
    meshInsecure: cfg.meshInsecure,
    verifyClient,
    metricsPath: "/metrics",
    processMetrics: true,
  });
  const recheck = verifyClient
    ? setInterval(() => {
        relay.server
          .revalidate()
          .catch((err: unknown) => log.warn({ err }, "recheck of relay clients failed"));
      }, cfg.recheckSeconds * 1000)
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
    server.listen(port, cfg.host, resolve);
  });
  const h = relay.health();
  process.stdout.write(
    `trellis-relay listening on ${cfg.host}:${port} (/derp)` +
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
