import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { generateKeyPair, type KeyPair } from "@trellis/proto/keyfile";
import {
  FrameReader,
  FrameType,
  KEY_LEN,
  MAGIC,
  encodeFrame,
  openBox,
  sealBox,
  type Frame,
} from "@trellis/client/derp";
import { handshakeKey, LoginReplays, NONCE_TAG_LEN } from "./admission";
import { connectClient, startTestRelay, waitFor, type TestRelay } from "./testing/harness";

const relays: TestRelay[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  cleanups.splice(0).forEach((c) => c());
  await Promise.all(relays.splice(0).map((r) => r.stop()));
});

async function relay(cfg: Parameters<typeof startTestRelay>[0] = {}) {
  const r = await startTestRelay(cfg);
  relays.push(r);
  return r;
}

const text = (s: string) => new TextEncoder().encode(s);

/** A connection over `Upgrade: DERP` that has sent its request and reads the answer and frames. */
interface RawConn {
  sock: Socket;
  frames: Frame[];
  /** The status line, once the relay has answered. */
  status: () => string | null;
  /** Whether the relay closed the connection. */
  ended: () => boolean;
}

async function upgrade(port: number, localAddress = "127.0.0.1"): Promise<RawConn> {
  const sock = connect({ port, host: "127.0.0.1", localAddress });
  cleanups.push(() => sock.destroy());
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  const frames: Frame[] = [];
  const reader = new FrameReader(1 << 20);
  let status: string | null = null;
  let head = Buffer.alloc(0);
  let ended = false;
  sock.on("data", (d: Buffer) => {
    if (status === null) {
      head = Buffer.concat([head, d]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      status = head.subarray(0, head.indexOf("\r\n")).toString();
      d = head.subarray(end + 4);
    }
    frames.push(...reader.push(d));
  });
  sock.on("end", () => (ended = true));
  sock.on("close", () => (ended = true));
  sock.on("error", () => (ended = true));
  sock.write("GET /derp HTTP/1.1\r\nHost: relay\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n");
  return { sock, frames, status: () => status, ended: () => ended };
}

/** Log in with `info` (a whole ClientInfo frame); true when the relay answered with its server info. */
async function logIn(conn: RawConn, info: Uint8Array): Promise<boolean> {
  await waitFor(() => conn.frames.length >= 1, "the server key frame");
  conn.sock.write(info);
  await waitFor(
    () => conn.ended() || conn.frames.some((f) => f.type === FrameType.ServerInfo),
    "the server info, or the connection closed",
  );
  return conn.frames.some((f) => f.type === FrameType.ServerInfo);
}

function clientInfoFrame(key: KeyPair, serverKey: Uint8Array): Uint8Array {
  return encodeFrame(
    FrameType.ClientInfo,
    key.publicKey,
    sealBox(text('{"version":2,"canAckPings":true}'), key.privateKey, serverKey),
  );
}

async function outcomes(r: TestRelay): Promise<Record<string, number>> {
  const metric = await r.relay.metrics.connections.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.outcome), v.value]));
}

describe("login replays", () => {
  const tag = (s: string) => s.padEnd(NONCE_TAG_LEN, "-");
  /** A login: true when it is new (and now remembered), false when seen before. */
  const login = (r: LoginReplays, key: string, nonce: string, now: number) => {
    if (r.seen(key, tag(nonce), now)) return false;
    r.remember(key, tag(nonce), now);
    return true;
  };

  it("remembers each (key, nonce) for the window, the most recent per key, and a bounded number in all", () => {
    const r = new LoginReplays({ windowMs: 1000, perKey: 3, max: 5 });
    expect(login(r, "a", "n1", 0)).toBe(true);
    expect(login(r, "a", "n1", 10)).toBe(false);
    // Another key's login with the same nonce is another login.
    expect(login(r, "b", "n1", 10)).toBe(true);
    // Past the window it is forgotten (what the window cannot prevent: SECURITY.md).
    expect(login(r, "a", "n1", 999)).toBe(false);
    expect(login(r, "a", "n1", 1000)).toBe(true);
    // A key keeps its 3 most recent.
    for (const n of ["n2", "n3", "n4"]) expect(login(r, "a", n, 1100)).toBe(true);
    expect(login(r, "a", "n1", 1100)).toBe(true);
    expect(login(r, "a", "n4", 1100)).toBe(false);
    expect(login(r, "a", "n2", 1100)).toBe(true);
    expect(r.size).toBeLessThanOrEqual(5);
    // At most 5 in all: the oldest go first, whichever key they are of.
    for (const k of ["c", "d", "e", "f"]) expect(login(r, k, "x", 1200)).toBe(true);
    expect(r.size).toBe(5);
    expect(login(r, "f", "x", 1200)).toBe(false);
    expect(login(r, "c", "x", 1200)).toBe(false);
    // Tags are matched whole, never across two of them.
    login(r, "g", "n1", 1200);
    login(r, "g", "n2", 1200);
    expect(r.seen("g", tag("n1").slice(1) + "n", 1200)).toBe(false);
    expect(r.seen("g", tag("n2"), 1200)).toBe(true);
  });

  it("stays bounded under a flood of one key's logins", () => {
    const r = new LoginReplays({ windowMs: 3600_000, perKey: 4, max: 100 });
    for (let i = 0; i < 50_000; i++) login(r, "k", `n${i}`, i);
    expect(r.size).toBe(4);
    expect(login(r, "k", "n49999", 50_000)).toBe(false);
    expect(login(r, "k", "n0", 50_000)).toBe(true);
    for (let i = 0; i < 50_000; i++) login(r, `k${i}`, "n", 60_000);
    expect(r.size).toBe(100);
    expect(login(r, "k49999", "n", 60_000)).toBe(false);
  });

  it("counts handshakes per IPv4 address and per IPv6 /64", () => {
    expect(handshakeKey("10.0.0.1")).toBe(handshakeKey("::ffff:10.0.0.1"));
    expect(handshakeKey("10.0.0.1")).not.toBe(handshakeKey("10.0.0.2"));
    expect(handshakeKey("2001:db8:1:2::1")).toBe(handshakeKey("2001:db8:1:2:ffff::9"));
    expect(handshakeKey("2001:db8:1:2::1")).not.toBe(handshakeKey("2001:db8:1:3::1"));
  });
});

describe("relay admission", () => {
  it("refuses a replayed ClientInfo frame, and the connection that logged in with it stays", async () => {
    const r = await relay();
    const victim = generateKeyPair();
    const first = await upgrade(r.port);
    await waitFor(() => first.frames.length >= 1, "the server key frame");
    const serverKey = first.frames[0]!.payload.slice(MAGIC.length);
    const captured = clientInfoFrame(victim, serverKey);
    expect(await logIn(first, captured)).toBe(true);
    first.frames.length = 0;

    // The same frame on another connection, as an eavesdropper on ws:// would send it, over either transport.
    const replay = await upgrade(r.port);
    expect(await logIn(replay, captured)).toBe(false);
    const ws = new WebSocket(r.url, ["derp"]);
    cleanups.push(() => ws.terminate());
    const wsClosed = new Promise<void>((resolve) => ws.on("close", () => resolve()));
    const wsFrames: Buffer[] = [];
    ws.on("message", (d: Buffer) => {
      wsFrames.push(d);
      if (wsFrames.length === 1) ws.send(captured);
    });
    await wsClosed;
    expect(wsFrames).toHaveLength(1); // the server key, and no server info
    expect((await outcomes(r)).replayed_client_info).toBe(2);

    // The victim is still the one connected, and still gets its packets.
    expect(r.relay.server.has(victim.publicKey)).toBe(true);
    expect(first.ended()).toBe(false);
    expect(first.frames.some((f) => f.type === FrameType.Health)).toBe(false);
    const sender = await connectClient(r.url);
    cleanups.push(() => sender.client.close());
    sender.client.send(victim.publicKey, text("still yours"));
    await waitFor(
      () => first.frames.some((f) => f.type === FrameType.RecvPacket),
      "the packet at the victim",
    );
    const got = first.frames.find((f) => f.type === FrameType.RecvPacket)!;
    expect(Buffer.from(got.payload.subarray(KEY_LEN)).toString()).toBe("still yours");

    // A new login of the victim's (a fresh box, so a fresh nonce) is no replay: it replaces the old connection.
    const again = await upgrade(r.port);
    expect(await logIn(again, clientInfoFrame(victim, serverKey))).toBe(true);
    const info = again.frames.find((f) => f.type === FrameType.ServerInfo)!;
    expect(openBox(info.payload, victim.privateKey, serverKey)).not.toBeNull();
    await waitFor(() => first.ended(), "the older connection replaced");
  });

  it("refuses the same frame while its first use is still being verified, and remembers only admitted logins", async () => {
    let admit: ((ok: boolean) => void) | null = null;
    const asked: number[] = [];
    const r = await relay({
      verifyClient: (keys) => {
        asked.push(keys.length);
        return new Promise((resolve) => (admit = (ok) => resolve(keys.map(() => ok))));
      },
    });
    const key = generateKeyPair();
    const first = await upgrade(r.port);
    await waitFor(() => first.frames.length >= 1, "the server key frame");
    const serverKey = first.frames[0]!.payload.slice(MAGIC.length);

    // Refused by the verifier: not remembered, so the same frame is asked about again (no replay).
    const refusedFrame = clientInfoFrame(key, serverKey);
    const firstDone = logIn(first, refusedFrame);
    await waitFor(() => admit !== null, "the verifier asked");
    admit!(false);
    admit = null;
    expect(await firstDone).toBe(false);
    const retry = await upgrade(r.port);
    const retryDone = logIn(retry, refusedFrame);
    await waitFor(() => admit !== null, "the verifier asked again");
    admit!(false);
    admit = null;
    expect(await retryDone).toBe(false);
    expect(asked).toEqual([1, 1]);

    // While a login is verified, its frame again is a replay.
    const frame = clientInfoFrame(key, serverKey);
    const a = await upgrade(r.port);
    const aDone = logIn(a, frame);
    await waitFor(() => admit !== null, "the verifier asked about the login");
    const b = await upgrade(r.port);
    expect(await logIn(b, frame)).toBe(false);
    admit!(true);
    expect(await aDone).toBe(true);
    expect(asked).toEqual([1, 1, 1]);
    expect((await outcomes(r)).replayed_client_info).toBe(1);
  });

  it("refuses the 33rd connection still logging in from one address, while another address connects", async () => {
    const r = await relay();
    const pending: RawConn[] = [];
    for (let i = 0; i < 32; i++) pending.push(await upgrade(r.port, "127.0.0.1"));
    await waitFor(() => r.relay.server.handshakeCount === 32, "32 connections in the handshake");
    expect(pending.every((c) => c.status() === "HTTP/1.1 101 Switching Protocols")).toBe(true);

    const refused = await upgrade(r.port, "127.0.0.1");
    await waitFor(() => refused.status() !== null, "the answer to the 33rd");
    expect(refused.status()).toBe("HTTP/1.1 429 Too Many Requests");
    await waitFor(() => refused.ended(), "the 33rd closed");
    expect((await outcomes(r)).refused_handshakes_per_ip).toBe(1);

    // Another address is not held up by the first one's logins.
    const other = await upgrade(r.port, "127.0.0.2");
    await waitFor(() => other.frames.length >= 1, "the server key at the other address");
    const key = generateKeyPair();
    expect(await logIn(other, clientInfoFrame(key, other.frames[0]!.payload.slice(MAGIC.length)))).toBe(true);

    // A login that finishes frees its address's slot.
    const done = pending.pop()!;
    expect(
      await logIn(done, clientInfoFrame(generateKeyPair(), done.frames[0]!.payload.slice(MAGIC.length))),
    ).toBe(true);
    await waitFor(() => r.relay.server.handshakeCount === 31, "the finished login's slot freed");
    const next = await upgrade(r.port, "127.0.0.1");
    await waitFor(() => next.status() !== null, "the answer to the next");
    expect(next.status()).toBe("HTTP/1.1 101 Switching Protocols");
    const metrics = await r.relay.metrics.render();
    expect(metrics).toMatch(/trellis_relay_handshakes 32/);
    expect(metrics).toMatch(/trellis_relay_connections_total\{outcome="refused_handshakes_per_ip"\} 1/);
  });

  it("closes a connection that has not logged in by the handshake deadline, freeing its slot", async () => {
    const r = await relay({ limits: { handshakeTimeoutMs: 200, maxHandshakesPerIp: 1 } });
    const slow = await upgrade(r.port);
    await waitFor(() => r.relay.server.handshakeCount === 1, "the connection in the handshake");
    const refused = await upgrade(r.port);
    await waitFor(() => refused.status() !== null, "the answer to the second");
    expect(refused.status()).toBe("HTTP/1.1 429 Too Many Requests");
    await waitFor(() => slow.ended(), "the slow connection closed at the deadline");
    await waitFor(() => r.relay.server.handshakeCount === 0, "its slot freed");
    expect((await outcomes(r)).handshake_timeout).toBe(1);
    const next = await upgrade(r.port);
    await waitFor(() => next.frames.length >= 1, "the server key");
    expect(
      await logIn(next, clientInfoFrame(generateKeyPair(), next.frames[0]!.payload.slice(MAGIC.length))),
    ).toBe(true);
  });
});
