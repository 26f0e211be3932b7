import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createLogger } from "@trellis/log";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { FrameType, MAGIC, decodeFrame, encodeFrame } from "./frame";
import { Relay } from "./server";

let server: Server;
let relay: Relay;
let base: string;
const key = generateKeyPair();

beforeEach(async () => {
  relay = new Relay({ key, log: createLogger("relay-test", "silent"), maxClients: 3 });
  server = createServer((_, res) => res.writeHead(404).end());
  server.on("upgrade", (req, socket, head) => {
    if (!relay.handleUpgrade(req, socket, head)) socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(async () => {
  await relay.close();
  await new Promise<void>((r) => server.close(() => r()));
});

/** Connect and collect binary messages; resolves once open. */
async function connect(path = "/derp") {
  const ws = new WebSocket(base + path);
  const frames: Uint8Array[] = [];
  const waiters: (() => void)[] = [];
  ws.on("message", (d: Buffer) => {
    frames.push(new Uint8Array(d));
    waiters.splice(0).forEach((w) => w());
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const next = async (): Promise<Uint8Array> => {
    const deadline = Date.now() + 5000;
    while (frames.length === 0) {
      if (Date.now() > deadline) throw new Error("no frame within 5 s");
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return frames.shift()!;
  };
  const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
  return { ws, next, closed };
}

describe("relay over WebSocket", () => {
  it("greets each client with its server key", async () => {
    const c = await connect();
    const frame = decodeFrame(await c.next());
    expect(frame.type).toBe(FrameType.ServerKey);
    expect([...frame.payload.subarray(0, 8)]).toEqual([...MAGIC]);
    expect([...frame.payload.subarray(8)]).toEqual([...key.publicKey]);
    expect(relay.health()).toMatchObject({ status: "listening", clients: 1 });
    c.ws.close();
  });

  it("answers a ping with a pong carrying the same data", async () => {
    const c = await connect();
    await c.next();
    c.ws.send(encodeFrame(FrameType.Ping, new Uint8Array([8, 7, 6, 5, 4, 3, 2, 1])));
    const pong = decodeFrame(await c.next());
    expect(pong.type).toBe(FrameType.Pong);
    expect([...pong.payload]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    c.ws.close();
  });

  it("closes only the connection that sent a malformed frame", async () => {
    const bad = await connect();
    const good = await connect();
    await bad.next();
    await good.next();
    bad.ws.send(new Uint8Array([4, 0, 0, 0, 50, 1, 2]));
    expect(await bad.closed).toBe(1002);
    good.ws.send(encodeFrame(FrameType.Ping, new Uint8Array(8)));
    expect(decodeFrame(await good.next()).type).toBe(FrameType.Pong);
    good.ws.close();
  });

  it("refuses text messages", async () => {
    const c = await connect();
    c.ws.send("hello");
    expect(await c.closed).toBe(1003);
  });

  it("leaves other paths to the host server", async () => {
    await expect(connect("/not-derp")).rejects.toThrow(/404/);
  });

  it("caps the number of connections", async () => {
    const open = [await connect(), await connect(), await connect()];
    await expect(connect()).rejects.toThrow(/503/);
    open.forEach((c) => c.ws.close());
  });
});
