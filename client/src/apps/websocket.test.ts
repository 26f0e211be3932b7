import { createHash } from "node:crypto";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket as WsSocket } from "ws";
import { netDial } from "../testing/net-duplex";
import { connectWebSocket, TailnetWebSocket, WebSocketError } from "./websocket";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function wsServer(onConnection: (ws: WsSocket) => void, opts: { protocol?: string } = {}) {
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    ...(opts.protocol ? { handleProtocols: () => opts.protocol! } : {}),
  });
  wss.on("connection", onConnection);
  await new Promise<void>((r) => wss.once("listening", () => r()));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  );
  return (wss.address() as AddressInfo).port;
}

interface ClientFrame {
  fin: boolean;
  op: number;
  masked: boolean;
  payload: Buffer;
}

/** A hand-written server: completes the handshake (or not, per `accept`), then hands over the socket and the client's frames. */
async function rawWsServer(
  onOpen: (socket: Socket, frames: ClientFrame[], onFrame: (f: (frame: ClientFrame) => void) => void) => void,
  accept: (key: string) => string = (key) =>
    createHash("sha1")
      .update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
      .digest("base64"),
) {
  const open = new Set<Socket>();
  const server = createNetServer((socket) => {
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => undefined); // the client resets failed connections on purpose
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const frames: ClientFrame[] = [];
    let listener: ((frame: ClientFrame) => void) | null = null;
    socket.on("data", (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      if (!upgraded) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1");
        buf = buf.subarray(end + 4);
        upgraded = true;
        const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? "";
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n\r\n`,
        );
        onOpen(socket, frames, (f) => (listener = f));
      }
      for (;;) {
        if (buf.length < 2) return;
        const masked = (buf[1]! & 0x80) !== 0;
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        const maskLen = masked ? 4 : 0;
        if (buf.length < off + maskLen + len) return;
        const mask = buf.subarray(off, off + maskLen);
        const payload = Buffer.from(buf.subarray(off + maskLen, off + maskLen + len));
        if (masked) for (let i = 0; i < len; i++) payload[i]! ^= mask[i & 3]!;
        const frame = { fin: (buf[0]! & 0x80) !== 0, op: buf[0]! & 0x0f, masked, payload };
        buf = buf.subarray(off + maskLen + len);
        frames.push(frame);
        listener?.(frame);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  );
  return (server.address() as AddressInfo).port;
}

/** A server frame (unmasked). */
function frame(op: number, payload: Buffer | string, fin = true): Buffer {
  const p = typeof payload === "string" ? Buffer.from(payload) : payload;
  if (p.length >= 126) throw new Error("test frames are small");
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | op, p.length]), p]);
}

function closePayload(code: number, reason = ""): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

function next<T extends Event>(ws: EventTarget, type: string): Promise<T> {
  return new Promise((r) => ws.addEventListener(type, (e) => r(e as T), { once: true }));
}

function closeCode(f: ClientFrame | undefined): number | undefined {
  return f && f.payload.length >= 2 ? f.payload.readUInt16BE(0) : undefined;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("TailnetWebSocket", () => {
  it("opens, echoes text and binary (arraybuffer and blob), and closes cleanly with the page's code", async () => {
    let serverClose: { code: number; reason: string } | null = null;
    let handshakeHeaders: Record<string, string | string[] | undefined> = {};
    const wss = new WebSocketServer({
      host: "127.0.0.1",
      port: 0,
      handleProtocols: (p) => (p.has("chat") ? "chat" : false),
    });
    wss.on("connection", (ws, req) => {
      handshakeHeaders = req.headers;
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on("close", (code, reason) => (serverClose = { code, reason: reason.toString() }));
    });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())));
    const port = (wss.address() as AddressInfo).port;

    const ws = new TailnetWebSocket(
      `ws://server:${port}/socket?x=1#frag`,
      ["superchat", "chat"],
      netDial(port),
      {
        headers: [["Origin", "https://trellis.example"]],
      },
    );
    expect(ws.readyState).toBe(TailnetWebSocket.CONNECTING);
    expect(ws.url).toBe(`ws://server:${port}/socket?x=1`);
    expect(() => ws.send("too early")).toThrow(/connecting/);
    let opened = 0;
    ws.onopen = () => opened++;
    await next(ws, "open");
    expect(opened).toBe(1);
    expect([ws.readyState, ws.protocol, ws.extensions]).toEqual([TailnetWebSocket.OPEN, "chat", ""]);
    expect(handshakeHeaders.host).toBe(`server:${port}`);
    expect(handshakeHeaders.origin).toBe("https://trellis.example");

    const messages: unknown[] = [];
    ws.onmessage = (e) => messages.push(e.data);
    ws.send("héllo ✓");
    await until(() => messages.length === 1);
    expect(messages[0]).toBe("héllo ✓");

    ws.binaryType = "arraybuffer";
    ws.send(new Uint8Array([1, 2, 3, 250]));
    await until(() => messages.length === 2);
    expect(messages[1]).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(messages[1] as ArrayBuffer)]).toEqual([1, 2, 3, 250]);

    ws.binaryType = "blob";
    const big = new Uint8Array(200_000).map((_, i) => i & 0xff);
    ws.send(big.buffer);
    await until(() => messages.length === 3);
    expect(messages[2]).toBeInstanceOf(Blob);
    expect(Buffer.from(await (messages[2] as Blob).arrayBuffer()).equals(Buffer.from(big))).toBe(true);

    // A Blob's bytes come asynchronously; what is sent after it still arrives after it.
    ws.send(new Blob(["from a blob"]));
    ws.send("after the blob");
    await until(() => messages.length === 5);
    expect(await (messages[3] as Blob).text()).toBe("from a blob");
    expect(messages[4]).toBe("after the blob");
    expect(ws.bufferedAmount).toBe(0);

    const closed = next<CloseEvent>(ws, "close");
    ws.close(4001, "bye now");
    expect(ws.readyState).toBe(TailnetWebSocket.CLOSING);
    const ev = await closed;
    expect([ev.code, ev.reason, ev.wasClean]).toEqual([4001, "bye now", true]);
    expect(ws.readyState).toBe(TailnetWebSocket.CLOSED);
    await until(() => serverClose !== null);
    expect(serverClose).toEqual({ code: 4001, reason: "bye now" });
    ws.send("dropped");
    expect(ws.bufferedAmount).toBe(7);
  });

  it("reports a server's close code and reason", async () => {
    const port = await wsServer((ws) => setTimeout(() => ws.close(4002, "server says bye"), 20));
    const ws = new TailnetWebSocket(`ws://app:${port}/`, [], netDial(port));
    const events: string[] = [];
    ws.addEventListener("error", () => events.push("error"));
    const ev = await next<CloseEvent>(ws, "close");
    expect([ev.code, ev.reason, ev.wasClean]).toEqual([4002, "server says bye", true]);
    expect(events).toEqual([]);
  });

  it("echoes a server's close frame before ending the connection", async () => {
    let frames: ClientFrame[] = [];
    const port = await rawWsServer((socket, seen, onFrame) => {
      frames = seen;
      onFrame((f) => {
        if (f.op === 8) socket.end();
      });
      socket.write(frame(8, closePayload(4003, "later")));
    });
    const session = await connectWebSocket({ dial: netDial(port), host: "app", target: "/" });
    const c = await new Promise<{ code: number; reason: string; wasClean: boolean }>((r) =>
      session.start({ message: () => undefined, close: r }),
    );
    expect(c).toEqual({ code: 4003, reason: "later", wasClean: true });
    expect(frames.filter((f) => f.op === 8).map(closeCode)).toEqual([4003]);
  });

  it("answers pings with pongs, and its own pings get pongs", async () => {
    let pong: Buffer | null = null;
    const port = await wsServer((ws) => {
      ws.on("pong", (data) => (pong = data));
      ws.ping(Buffer.from("are you there"));
    });
    const session = await connectWebSocket({ dial: netDial(port), host: "app", target: "/" });
    const pongs: string[] = [];
    session.start({
      message: () => undefined,
      close: () => undefined,
      pong: (p) => pongs.push(Buffer.from(p).toString()),
    });
    await until(() => pong !== null);
    expect(pong!.toString()).toBe("are you there");
    session.ping(new TextEncoder().encode("and you?"));
    await until(() => pongs.length === 1);
    expect(pongs).toEqual(["and you?"]);
    session.close(1000);
  });

  it("reassembles a fragmented message with a ping between its fragments", async () => {
    let frames: ClientFrame[] = [];
    const port = await rawWsServer((socket, seen) => {
      frames = seen;
      socket.write(frame(1, "Hel", false));
      socket.write(frame(9, "mid"));
      socket.write(frame(0, "lo, ", false));
      setTimeout(() => socket.write(frame(0, "wörld")), 10);
    });
    const session = await connectWebSocket({ dial: netDial(port), host: "app", target: "/" });
    const messages: (string | Uint8Array)[] = [];
    session.start({ message: (m) => messages.push(m), close: () => undefined });
    await until(() => messages.length === 1 && frames.length >= 1);
    expect(messages).toEqual(["Hello, wörld"]);
    expect(frames[0]).toMatchObject({ op: 10, masked: true, fin: true });
    expect(frames[0]!.payload.toString()).toBe("mid");
  });

  it.each([
    ["a message over the bound", [frame(2, Buffer.alloc(100))], 1009, "too_large"],
    ["text that is not UTF-8", [frame(1, Buffer.from([0xc3, 0x28]))], 1007, "protocol"],
    ["a masked server frame", [Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0, 0])], 1002, "protocol"],
    ["reserved bits", [Buffer.from([0xc1, 0x01, 0x61])], 1002, "protocol"],
    ["an unknown opcode", [frame(3, "x")], 1002, "protocol"],
    ["a continuation without a message", [frame(0, "x")], 1002, "protocol"],
    ["a fragmented ping", [frame(9, "x", false)], 1002, "protocol"],
    ["an invalid close code", [frame(8, closePayload(1005))], 1002, "protocol"],
  ])("fails the connection on %s, telling the server why", async (_what, send, code, errorCode) => {
    let frames: ClientFrame[] = [];
    const port = await rawWsServer((socket, seen) => {
      frames = seen;
      for (const b of send) socket.write(b);
    });
    const session = await connectWebSocket({
      dial: netDial(port),
      host: "app",
      target: "/",
      maxMessageBytes: 64,
    });
    const closed = new Promise<Parameters<Parameters<typeof session.start>[0]["close"]>[0]>((r) =>
      session.start({ message: () => undefined, close: r }),
    );
    const c = await closed;
    expect([c.code, c.wasClean, c.error?.code]).toEqual([1006, false, errorCode]);
    await until(() => frames.some((f) => f.op === 8));
    expect(closeCode(frames.find((f) => f.op === 8))).toBe(code);
  });

  it("refuses a handshake with a wrong Sec-WebSocket-Accept", async () => {
    const port = await rawWsServer(
      () => undefined,
      () => "d3JvbmcgYWNjZXB0IGtleQ==",
    );
    const err = await connectWebSocket({ dial: netDial(port), host: "app", target: "/" }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WebSocketError);
    expect((err as WebSocketError).code).toBe("handshake");
    expect((err as WebSocketError).message).toMatch(/Sec-WebSocket-Accept/);

    const ws = new TailnetWebSocket(`ws://app:${port}/`, [], netDial(port));
    const order: string[] = [];
    ws.onerror = () => order.push("error");
    ws.onclose = (e) => order.push(`close ${e.code} ${e.wasClean}`);
    await next(ws, "close");
    expect(order).toEqual(["error", "close 1006 false"]);
    expect(ws.readyState).toBe(TailnetWebSocket.CLOSED);
  });

  it("refuses a server that answers without upgrading, keeping its response", async () => {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, verifyClient: () => false });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())));
    const port = (wss.address() as AddressInfo).port;
    const err = await connectWebSocket({ dial: netDial(port), host: "app", target: "/" }).catch(
      (e: unknown) => e,
    );
    expect((err as WebSocketError).code).toBe("handshake");
    expect((err as WebSocketError).response?.status).toBe(401);
  });

  it("refuses a subprotocol that was not offered", async () => {
    const port = await wsServer(() => undefined, { protocol: "other" });
    const err = await connectWebSocket({
      dial: netDial(port),
      host: "app",
      target: "/",
      protocols: ["chat"],
    }).catch((e: unknown) => e);
    expect((err as WebSocketError).code).toBe("handshake");
  });

  it("reports a connection that drops without a close handshake as an error and 1006", async () => {
    const port = await wsServer((ws) => setTimeout(() => ws.terminate(), 20));
    const ws = new TailnetWebSocket(`ws://app:${port}/`, undefined, netDial(port));
    const order: string[] = [];
    ws.addEventListener("error", () => order.push("error"));
    ws.addEventListener("close", (e) =>
      order.push(`close ${(e as CloseEvent).code} ${(e as CloseEvent).wasClean}`),
    );
    await next(ws, "close");
    expect(order).toEqual(["error", "close 1006 false"]);
  });

  it("validates like the browser's WebSocket", async () => {
    const dial = netDial(1);
    expect(() => new TailnetWebSocket("ftp://x/", [], dial)).toThrow(/ws: or wss:/);
    expect(() => new TailnetWebSocket("ws://x/", ["a", "a"], dial)).toThrow(/duplicate/);
    expect(() => new TailnetWebSocket("ws://x/", ["bad protocol"], dial)).toThrow(/subprotocol/);
    const port = await wsServer(() => undefined);
    const ws = new TailnetWebSocket(`ws://app:${port}/`, [], netDial(port));
    await next(ws, "open");
    expect(() => ws.close(1001)).toThrow(/1000 nor 3000-4999/);
    expect(() => ws.close(1000, "x".repeat(124))).toThrow(/123 bytes/);
    ws.binaryType = "nonsense" as BinaryType;
    expect(ws.binaryType).toBe("blob");
    ws.close();
    await next(ws, "close");
  });

  it("closing while connecting fails with an error and 1006, and nothing opens", async () => {
    const port = await wsServer(() => undefined);
    const ws = new TailnetWebSocket(`ws://app:${port}/`, [], netDial(port));
    const order: string[] = [];
    ws.onopen = () => order.push("open");
    ws.onerror = () => order.push("error");
    ws.onclose = (e) => order.push(`close ${e.code}`);
    ws.close();
    expect(ws.readyState).toBe(TailnetWebSocket.CLOSED);
    await new Promise((r) => setTimeout(r, 100));
    expect(order).toEqual(["error", "close 1006"]);
  });
});
