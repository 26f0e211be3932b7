// vncChannel against noVNC's own Websock (core/websock.js, the layer RFB
// attaches channels to), first over in-memory streams for the contract, then
// over a TCP connection to a real Xvnc for the RFB handshake and a pixel.
import { createRequire } from "node:module";
import { createServer, connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { Duplex } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasXvnc, startXvnc, type RunningXvnc } from "../testing/xvnc";
import { vncChannel, type ByteDuplex, type VncChannel, type VncCloseEvent } from "./vnc-socket";

/** The part of noVNC's Websock these tests drive. */
interface Websock {
  readonly readyState: string;
  attach(channel: unknown): void;
  on(evt: "open" | "message" | "close" | "error", h: (e?: unknown) => void): void;
  close(): void;
  rQlen(): number;
  rQshift8(): number;
  rQshift16(): number;
  rQshift32(): number;
  rQshiftStr(len: number): string;
  rQshiftBytes(len: number): Uint8Array;
  sQpush8(n: number): void;
  sQpush16(n: number): void;
  sQpush32(n: number): void;
  sQpushString(s: string): void;
  flush(): void;
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");
let Websock: new () => Websock;
const g = globalThis as Record<string, unknown>;
const shimmed: string[] = [];

beforeAll(async () => {
  // websock.js reads WebSocket's state constants and its logger reads
  // window.console when loaded; Node 20 has neither global.
  if (g.WebSocket === undefined) {
    g.WebSocket = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 };
    shimmed.push("WebSocket");
  }
  if (g.window === undefined) {
    g.window = globalThis;
    shimmed.push("window");
  }
  // The package exports only core/rfb.js; websock.js sits beside it (web/ depends on noVNC).
  const rfb = createRequire(join(ROOT, "web/package.json")).resolve("@novnc/novnc");
  Websock = (
    (await import(pathToFileURL(join(dirname(rfb), "websock.js")).href)) as { default: new () => Websock }
  ).default;
});

afterAll(() => {
  for (const k of shimmed) delete g[k];
});

/** A connected pair of byte streams: what the channel gets, and the far end's view. */
function pipePair(): { near: ByteDuplex; far: ByteDuplex } {
  const a = new TransformStream<Uint8Array, Uint8Array>();
  const b = new TransformStream<Uint8Array, Uint8Array>();
  return {
    near: { readable: a.readable, writable: b.writable },
    far: { readable: b.readable, writable: a.writable },
  };
}

/** Resolves when `ws` has at least n bytes queued; rejects after ms. */
function queued(ws: Websock, wake: { fn: () => void }, n: number, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (ws.rQlen() >= n) return resolve();
    const timer = setTimeout(
      () => reject(new Error(`waited ${ms} ms for ${n} bytes, have ${ws.rQlen()}`)),
      ms,
    );
    wake.fn = () => {
      if (ws.rQlen() < n) return;
      clearTimeout(timer);
      resolve();
    };
  });
}

function attached(channel: VncChannel): { ws: Websock; wake: { fn: () => void }; closes: VncCloseEvent[] } {
  const ws = new Websock();
  const wake = { fn: () => {} };
  const closes: VncCloseEvent[] = [];
  ws.on("message", () => wake.fn());
  ws.on("close", (e) => closes.push(e as VncCloseEvent));
  ws.attach(channel);
  return { ws, wake, closes };
}

const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([
    p,
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`timed out: ${what}`)), ms)),
  ]);

async function readN(reader: ReadableStreamDefaultReader<Uint8Array>, n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const { done, value } = await within(reader.read(), 2000, `${n} bytes at the far end`);
    if (done) break;
    out.push(...value);
  }
  return out;
}

describe("vncChannel with noVNC's Websock", () => {
  it("is accepted by attach(), is open at once, and delivers bytes sent before anyone listened", async () => {
    const { near, far } = pipePair();
    const channel = vncChannel(near);
    const w = far.writable.getWriter();
    void w.write(new TextEncoder().encode("RFB 003.008\n")); // the server speaks first
    const { ws, wake } = attached(channel);
    expect(ws.readyState).toBe("open");
    expect(channel.binaryType).toBe("arraybuffer");
    await queued(ws, wake, 12);
    expect(ws.rQshiftStr(12)).toBe("RFB 003.008\n");
  });

  it("copies what it sends (noVNC reuses its send buffer) and hands over exact ArrayBuffers", async () => {
    const { near, far } = pipePair();
    const received: ArrayBuffer[] = [];
    const channel = vncChannel(near);
    channel.onmessage = (e) => received.push(e.data);
    const shared = new Uint8Array([9, 9, 1, 2, 3, 9]);
    channel.send(shared.subarray(2, 5));
    shared.fill(0);
    expect(await readN(far.readable.getReader(), 3)).toEqual([1, 2, 3]);

    // A view into a bigger buffer (as Node's pooled Buffers are) arrives as just its bytes.
    const w = far.writable.getWriter();
    await w.write(new Uint8Array([7, 7, 4, 5, 7]).subarray(2, 4));
    await within(
      (async () => {
        while (!received.length) await new Promise((r) => setTimeout(r, 5));
      })(),
      2000,
      "a message",
    );
    expect(received[0]!.byteLength).toBe(2);
    expect([...new Uint8Array(received[0]!)]).toEqual([4, 5]);
  });

  it("close(): closing, then closed with one clean close event, and the far end sees the end", async () => {
    const { near, far } = pipePair();
    const { ws, closes } = attached(vncChannel(near));
    const reader = far.readable.getReader();
    ws.close();
    expect(ws.readyState).toBe("closing");
    expect((await within(reader.read(), 2000, "end of stream")).done).toBe(true);
    await within(
      (async () => {
        while (ws.readyState !== "closed") await new Promise((r) => setTimeout(r, 5));
      })(),
      2000,
      "closed",
    );
    expect(closes).toMatchObject([{ code: 1000, wasClean: true }]);
  });

  it("reports the far end closing as a clean close", async () => {
    const { near, far } = pipePair();
    const { ws, closes } = attached(vncChannel(near));
    await far.writable.close();
    await within(
      (async () => {
        while (!closes.length) await new Promise((r) => setTimeout(r, 5));
      })(),
      2000,
      "close event",
    );
    expect(ws.readyState).toBe("closed");
    expect(closes[0]).toMatchObject({ code: 1000, wasClean: true });
  });

  it("is connecting while the dial runs and fires onopen once it resolves; a failed dial errors and closes", async () => {
    const { near } = pipePair();
    let resolve!: (d: ByteDuplex) => void;
    const { ws } = attached(vncChannel(new Promise<ByteDuplex>((r) => (resolve = r))));
    let opened = 0;
    ws.on("open", () => opened++);
    expect(ws.readyState).toBe("connecting");
    resolve(near);
    await within(
      (async () => {
        while (!opened) await new Promise((r) => setTimeout(r, 5));
      })(),
      2000,
      "open",
    );
    expect(ws.readyState).toBe("open");

    const failed = attached(vncChannel(Promise.reject(new Error("no route to office"))));
    const errors: unknown[] = [];
    failed.ws.on("error", (e) => errors.push(e));
    await within(
      (async () => {
        while (!failed.closes.length) await new Promise((r) => setTimeout(r, 5));
      })(),
      2000,
      "close after a failed dial",
    );
    expect(failed.ws.readyState).toBe("closed");
    expect(failed.closes[0]).toMatchObject({ code: 1006, wasClean: false });
    expect(errors).toMatchObject([{ message: "connect failed: no route to office" }]);
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

if (!hasXvnc)
  console.warn(
    "skipping the real-VNC test: no Xvnc or xsetroot (tigervnc-standalone-server, x11-xserver-utils)",
  );

// Xvnc needs no root on loopback; it listens on 127.0.0.1 only.
describe.skipIf(!hasXvnc)("vncChannel to a real Xvnc", () => {
  let xvnc: RunningXvnc | undefined;
  let socket: Socket | undefined;

  afterAll(async () => {
    socket?.destroy();
    await xvnc?.stop();
  });

  it("completes ProtocolVersion, security None and ClientInit/ServerInit, and reads the root window's colour", async () => {
    xvnc = await startXvnc({
      port: await freePort(),
      iface: "127.0.0.1",
      width: 640,
      height: 480,
      desktop: "trellis-vnc-test",
      color: "#2a7ab0",
    });
    const s = connect({ host: "127.0.0.1", port: xvnc.port });
    socket = s;
    await within(new Promise((r, j) => s.once("connect", r).once("error", j)), 5000, "TCP connect to Xvnc");
    const { ws, wake } = attached(vncChannel(Duplex.toWeb(s) as ByteDuplex));
    const need = (n: number) => queued(ws, wake, n);

    await need(12);
    expect(ws.rQshiftStr(12)).toBe("RFB 003.008\n");
    ws.sQpushString("RFB 003.008\n");
    ws.flush();

    await need(1);
    const count = ws.rQshift8();
    expect(count).toBeGreaterThan(0);
    await need(count);
    const types = [...ws.rQshiftBytes(count)];
    expect(types).toContain(1); // None
    ws.sQpush8(1);
    ws.flush();
    await need(4);
    expect(ws.rQshift32()).toBe(0); // SecurityResult OK (3.8 sends one for None too)

    ws.sQpush8(1); // ClientInit: shared
    ws.flush();
    await need(24);
    const width = ws.rQshift16();
    const height = ws.rQshift16();
    const [bpp, , bigEndian, trueColour] = [...ws.rQshiftBytes(4)];
    const [rMax, gMax, bMax] = [ws.rQshift16(), ws.rQshift16(), ws.rQshift16()];
    const [rShift, gShift, bShift] = [...ws.rQshiftBytes(3)];
    ws.rQshiftBytes(3); // padding
    const nameLen = ws.rQshift32();
    await need(nameLen);
    const name = ws.rQshiftStr(nameLen);
    expect({ width, height, name }).toEqual({ width: 640, height: 480, name: "trellis-vnc-test" });
    expect({ bpp, trueColour }).toEqual({ bpp: 32, trueColour: 1 });

    // One pixel in Raw encoding: xsetroot painted it, so the screen is not blank.
    ws.sQpush8(2); // SetEncodings
    ws.sQpush8(0);
    ws.sQpush16(1);
    ws.sQpush32(0); // Raw
    ws.sQpush8(3); // FramebufferUpdateRequest, not incremental, (10,10) 1×1
    ws.sQpush8(0);
    for (const v of [10, 10, 1, 1]) ws.sQpush16(v);
    ws.flush();
    await need(4);
    expect(ws.rQshift8()).toBe(0); // FramebufferUpdate
    ws.rQshift8();
    expect(ws.rQshift16()).toBe(1); // one rectangle
    await need(12 + 4);
    expect([ws.rQshift16(), ws.rQshift16(), ws.rQshift16(), ws.rQshift16(), ws.rQshift32()]).toEqual([
      10, 10, 1, 1, 0,
    ]);
    const px = ws.rQshiftBytes(4);
    const v = new DataView(px.buffer, px.byteOffset, 4).getUint32(0, !bigEndian);
    const rgb = [(v >> rShift!) & rMax, (v >> gShift!) & gMax, (v >> bShift!) & bMax];
    expect(rgb).toEqual([0x2a, 0x7a, 0xb0]);

    ws.close();
  });
});
