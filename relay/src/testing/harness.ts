import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createLogger } from "@trellis/log";
import { generateKeyPair, type KeyPair } from "@trellis/proto/keyfile";
import { DerpClient } from "@trellis/client/derp";
import { openWebSocket as nodeSocketFactory } from "@trellis/client/node";
import { Relay, type RelayConfig } from "../relay";

/** A relay on a loopback HTTP server, as tests and benchmarks need one. */
export interface TestRelay {
  relay: Relay;
  server: Server;
  port: number;
  url: string;
  key: KeyPair;
  stop(): Promise<void>;
}

export async function startTestRelay(cfg: Partial<RelayConfig> = {}, port = 0): Promise<TestRelay> {
  const key = cfg.key ?? generateKeyPair();
  const relay = await Relay.start({
    key,
    log: createLogger("relay-test", process.env.TRELLIS_LOG_LEVEL ?? "silent"),
    metricsPath: "/metrics",
    ...cfg,
  });
  const server = createServer((req, res) => {
    if (!relay.handleRequest(req, res)) res.writeHead(404).end();
  });
  server.on("upgrade", (req, socket, head) => {
    if (!relay.handleUpgrade(req, socket, head)) socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    relay,
    server,
    key,
    port: bound,
    url: `ws://127.0.0.1:${bound}/derp`,
    async stop() {
      await relay.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A connected DERP client with its own fresh node key. */
export async function connectClient(url: string, key: KeyPair = generateKeyPair()) {
  const client = await DerpClient.connect({
    url,
    privateKey: key.privateKey,
    socketFactory: nodeSocketFactory,
  });
  return { client, key };
}

/** Poll `cond` until true or `timeoutMs` passes (then throw with `what`). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
