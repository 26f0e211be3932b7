// The Trellis server process: the Next.js app (login, admin UI, control API) and,
// by default, the DERP relay, on one HTTP port; the web-apps origin on a second.
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import next from "next";
import { parseCookie } from "cookie";
import { ConfigError, ControlRuntime, installRuntime, loadConfig, NodeApi } from "@trellis/control";
import { loadOrCreateAuthSecret, pruneSessions } from "@trellis/control/auth";
import { clientAddress } from "@trellis/control/http";
import { createLogger } from "@trellis/log";
import { loadOrCreateKeyFile } from "@trellis/proto/keyfile";
import { Relay } from "@trellis/relay";
import { startAppsOrigin } from "./apps-origin";
import { consoleCsp, consoleSecurityHeaders, newNonce } from "./src/lib/security-headers";
import { actorFromSessionCookie } from "./src/lib/session-cookie";

const dev = process.argv.includes("--dev");
const webDir = dirname(fileURLToPath(import.meta.url));

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger("server");
  const control = await ControlRuntime.open(config, log);
  installRuntime(control);
  // next-auth reads these; they stay inside this process.
  process.env.NEXTAUTH_URL = config.publicUrl;
  process.env.NEXTAUTH_SECRET = loadOrCreateAuthSecret(config.authSecret, config.dataDir);
  const prune = setInterval(() => {
    pruneSessions(control.db).catch((err: unknown) => log.warn({ err }, "pruning expired sessions failed"));
  }, 3600_000);
  prune.unref();

  const relay = config.embeddedRelay
    ? await Relay.start({
        key: loadOrCreateKeyFile(join(config.dataDir, "relay.key")),
        log: log.child({ component: "relay" }),
        stunPort: config.stunPort,
        meshKey: config.relayMeshKey,
        meshWith: config.relayMeshWith,
        meshInsecure: config.relayMeshInsecure,
        verifyClient: config.relayVerifyClients ? (keys) => control.admitsNodeKeys(keys) : undefined,
        metricsPath: "/metrics",
        processMetrics: true,
        // Handshakes are counted per client: behind a trusted proxy, the forwarded one.
        clientIp: (req) =>
          clientAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"], config.trustedProxies),
      })
    : null;
  if (relay) control.attachRelay(relay);
  // Every endpoint nodes call is served here, before Next.js (control/src/http).
  const nodeApi = new NodeApi(control, {
    sessionActor: (req) => {
      const header = req.headers.cookie;
      if (!header) return Promise.resolve(null);
      const jar = parseCookie(header);
      return actorFromSessionCookie((name) => jar[name], control.db, config.publicUrl);
    },
  });

  const app = next({ dev, dir: webDir, hostname: config.host, port: config.port });
  await app.prepare();
  const handle = app.getRequestHandler();
  const upgradeNext = dev ? app.getUpgradeHandler() : null;

  const securityHeaders = consoleSecurityHeaders(config.publicUrl);
  const server = createServer((req, res) => {
    if (relay?.handleRequest(req, res)) return;
    if (nodeApi.handles(req)) {
      void nodeApi.serve(req, res);
      return;
    }
    for (const [name, value] of securityHeaders) res.setHeader(name, value);
    // Next puts the nonce of the request's policy on the scripts it renders (see security-headers.ts).
    const nonce = req.url?.startsWith("/_next/static/") ? null : newNonce();
    const csp = consoleCsp(nonce, { dev });
    res.setHeader("content-security-policy", csp);
    req.headers["content-security-policy"] = csp;
    // The login rate limiter keys on the client address; never trust a
    // client-sent value (X-Forwarded-For only from TRELLIS_TRUSTED_PROXIES).
    req.headers["x-trellis-remote-addr"] = clientAddress(
      req.socket.remoteAddress,
      req.headers["x-forwarded-for"],
      config.trustedProxies,
    );
    handle(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, "request handler failed");
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  server.on("upgrade", (req, socket, head) => {
    if (relay?.handleUpgrade(req, socket, head)) return;
    if (upgradeNext) {
      void upgradeNext(req, socket, head);
      return;
    }
    socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  });

  const apps = config.apps
    ? await startAppsOrigin({ port: config.apps.port, host: config.host, consoleUrl: config.publicUrl })
    : null;

  const lines = [`Trellis is running at ${config.publicUrl}`];
  lines.push(
    `  database: ${control.db.target.provider}${control.db.target.file ? ` (${control.db.target.file})` : ""}`,
  );
  lines.push(`  relay:    ${relay ? `${config.publicUrl.replace(/^http/, "ws")}/derp` : "external"}`);
  if (relay?.stunListenPort !== undefined) lines.push(`  stun:     udp port ${relay.stunListenPort}`);
  lines.push(`  web apps: ${config.apps ? config.apps.url : "off"}`);
  const token = await control.issueSetupToken();
  if (token) {
    lines.push("");
    lines.push("First run: no admin account exists yet. Create it here (the link works once):");
    lines.push(`  ${config.publicUrl}/setup#token=${token}`);
  }
  process.stdout.write(lines.join("\n") + "\n");

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, "shutting down");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    void (async () => {
      await relay?.close();
      server.closeAllConnections();
      apps?.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => (apps ? apps.close(() => resolve()) : resolve()));
      await app.close?.();
      await control.close();
      process.exit(0);
    })();
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`trellis: configuration error: ${err.message}\n`);
  } else {
    process.stderr.write(
      `trellis: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  }
  process.exit(1);
});
