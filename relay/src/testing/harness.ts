import { createServer, type Server } from "node:http";
import { connect as tcpConnect, type AddressInfo, type Socket } from "node:net";
import { createLogger } from "@trellis/log";
import { generateKeyPair, type KeyPair } from "@trellis/proto/keyfile";
import {
  DerpClient,
  FrameReader,
  FrameType,
  MAGIC,
  encodeFrame,
  openBox,
  sealBox,
  type Frame,
} from "@trellis/client/derp";
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

/** A raw DERP client that did not get the answers the protocol promises. */
export class RawClientError extends Error {
  override readonly name = "RawClientError";
}

/**
 * A native DERP client over `Upgrade: DERP` on a raw TCP connection, as
 * Tailscale's Go client connects over plain HTTP: it logs in and then
 * collects every frame it reads (unless `read: false` pauses the socket).
 */
export async function rawDerpClient(
  port: number,
  key: KeyPair,
  opts: { read?: boolean } = {},
): Promise<{ sock: Socket; frames: Frame[]; serverKey: Uint8Array }> {
  const sock: Socket = tcpConnect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  sock.write("GET /derp HTTP/1.1\r\nHost: relay\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n");
  const reader = new FrameReader(1 << 20);
  const frames: Frame[] = [];
  let headerDone = false;
  let pending = Buffer.alloc(0);
  let failure: Error | null = null;
  sock.on("data", (d: Buffer) => {
    if (!headerDone) {
      pending = Buffer.concat([pending, d]);
      const end = pending.indexOf("\r\n\r\n");
      if (end < 0) return;
      const status = pending.subarray(0, 12).toString();
      if (status !== "HTTP/1.1 101") {
        failure = new RawClientError(`relay answered the upgrade with ${status}`);
        return;
      }
      headerDone = true;
      d = pending.subarray(end + 4);
    }
    frames.push(...reader.push(d));
  });
  const until = async (n: number, what: string) => {
    await waitFor(() => failure !== null || frames.length >= n, what);
    if (failure) throw failure;
  };
  await until(1, "server key frame");
  const serverKey = frames[0]!.payload.slice(MAGIC.length);
  sock.write(
    encodeFrame(
      FrameType.ClientInfo,
      key.publicKey,
      sealBox(new TextEncoder().encode('{"version":2}'), key.privateKey, serverKey),
    ),
  );
  await until(2, "server info frame");
  if (frames[1]!.type !== FrameType.ServerInfo || !openBox(frames[1]!.payload, key.privateKey, serverKey)) {
    throw new RawClientError("the relay's second frame is not a server info sealed to this client");
  }
  frames.splice(0, 2);
  if (opts.read === false) sock.pause();
  return { sock, frames, serverKey };
}
