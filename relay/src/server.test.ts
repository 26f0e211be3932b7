import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { generateKeyPair, type KeyPair } from "@trellis/proto/keyfile";
import {
  DerpClient,
  DerpClientError,
  FrameType,
  KEY_LEN,
  MAGIC,
  PeerGoneReason,
  RelayLink,
  encodeFrame,
  sealBox,
} from "@trellis/client/derp";
import { openWebSocket as nodeSocketFactory } from "@trellis/client/node";
import { connectClient, rawDerpClient, startTestRelay, waitFor, type TestRelay } from "./testing/harness";

const relays: TestRelay[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  cleanups.splice(0).forEach((c) => c());
  await Promise.all(relays.splice(0).map((r) => r.stop()));
});

async function relay(cfg: Parameters<typeof startTestRelay>[0] = {}, port = 0) {
  const r = await startTestRelay(cfg, port);
  relays.push(r);
  return r;
}

function collect(client: DerpClient) {
  const got: { src: string; data: string }[] = [];
  const gone: { key: string; reason: number }[] = [];
  client.on({
    packet: (src, data) =>
      got.push({ src: Buffer.from(src).toString("hex"), data: Buffer.from(data).toString() }),
    peerGone: (key, reason) => gone.push({ key: Buffer.from(key).toString("hex"), reason }),
  });
  cleanups.push(() => client.close());
  return { got, gone };
}

/** Send once the relay has a route (the mesh learns routes asynchronously). */
function trySend(client: DerpClient, dst: Uint8Array, data: string): boolean {
  client.send(dst, text(data));
  return false;
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const hex = (k: KeyPair) => Buffer.from(k.publicKey).toString("hex");
const text = (s: string) => new TextEncoder().encode(s);

/** A native DERP client over `Upgrade: DERP`, closed after each test. */
async function rawClient(port: number, key: KeyPair, opts: { read?: boolean } = {}) {
  const raw = await rawDerpClient(port, key, opts);
  cleanups.push(() => raw.sock.destroy());
  return raw;
}

describe("DERP relay", () => {
  it("relays packets between two clients, addressed by key, with the sender's key", async () => {
    const r = await relay();
    const a = await connectClient(r.url);
    const b = await connectClient(r.url);
    const inbox = collect(b.client);
    collect(a.client);
    expect(a.client.send(b.key.publicKey, text("hello b"))).toBe(true);
    await waitFor(() => inbox.got.length === 1, "packet at b");
    expect(inbox.got[0]).toEqual({ src: hex(a.key), data: "hello b" });
    expect(r.relay.health()).toMatchObject({ status: "listening", clients: 2 });
  });

  it("speaks the plain Upgrade: DERP transport, interoperating with WebSocket clients", async () => {
    const r = await relay();
    const native = generateKeyPair();
    const raw = await rawClient(r.port, native);
    const ws = await connectClient(r.url);
    const inbox = collect(ws.client);
    raw.sock.write(encodeFrame(FrameType.SendPacket, ws.key.publicKey, text("from native")));
    await waitFor(() => inbox.got.length === 1, "packet from the raw client");
    expect(inbox.got[0]).toEqual({ src: hex(native), data: "from native" });
    ws.client.send(native.publicKey, text("to native"));
    await waitFor(() => raw.frames.some((f) => f.type === FrameType.RecvPacket), "packet at the raw client");
    const f = raw.frames.find((x) => x.type === FrameType.RecvPacket)!;
    expect(Buffer.from(f.payload.subarray(KEY_LEN)).toString()).toBe("to native");
  });

  it("reassembles frames split across and packed into transport messages", async () => {
    const r = await relay();
    const b = await connectClient(r.url);
    const inbox = collect(b.client);
    const key = generateKeyPair();
    const ws = new WebSocket(r.url, ["derp"]);
    cleanups.push(() => ws.terminate());
    const first = await new Promise<Buffer>((res) => ws.once("message", (d: Buffer) => res(d)));
    const serverKey = first.subarray(5 + MAGIC.length);
    const info = encodeFrame(
      FrameType.ClientInfo,
      key.publicKey,
      sealBox(text("{}"), key.privateKey, serverKey),
    );
    ws.send(info.subarray(0, 7));
    ws.send(info.subarray(7));
    await new Promise((res) => ws.once("message", res));
    const p1 = encodeFrame(FrameType.SendPacket, b.key.publicKey, text("one"));
    const p2 = encodeFrame(FrameType.SendPacket, b.key.publicKey, text("two"));
    const both = new Uint8Array([...p1, ...p2]);
    ws.send(both.subarray(0, 40));
    ws.send(both.subarray(40));
    await waitFor(() => inbox.got.length === 2, "both packets");
    expect(inbox.got.map((g) => g.data)).toEqual(["one", "two"]);
  });

  it("delivers only to the addressed key and refuses a client that cannot prove its key", async () => {
    const r = await relay();
    const a = await connectClient(r.url);
    const b = await connectClient(r.url);
    const c = await connectClient(r.url);
    const atB = collect(b.client);
    const atC = collect(c.client);
    a.client.send(b.key.publicKey, text("for b only"));
    await waitFor(() => atB.got.length === 1, "packet at b");
    await new Promise((res) => setTimeout(res, 100));
    expect(atC.got).toEqual([]);

    // An impostor claims b's public key but seals with another private key.
    const impostor = generateKeyPair();
    const ws = new WebSocket(r.url, ["derp"]);
    const first = await new Promise<Buffer>((res) => ws.once("message", (d: Buffer) => res(d)));
    const serverKey = first.subarray(5 + MAGIC.length);
    const closed = new Promise<void>((res) => ws.once("close", () => res()));
    ws.send(
      encodeFrame(FrameType.ClientInfo, b.key.publicKey, sealBox(text("{}"), impostor.privateKey, serverKey)),
    );
    await closed;
    expect(r.relay.health().clients).toBe(3);
    a.client.send(b.key.publicKey, text("still b"));
    await waitFor(() => atB.got.length === 2, "b still connected");
  });

  it("with verify-clients, refuses unknown keys and admits known ones", async () => {
    const known = generateKeyPair();
    const r = await relay({
      verifyClient: async (keys) => keys.map((k) => Buffer.from(k).equals(Buffer.from(known.publicKey))),
    });
    await expect(connectClient(r.url)).rejects.toThrow(DerpClientError);
    const ok = await connectClient(r.url, known);
    collect(ok.client);
    expect(r.relay.health()).toMatchObject({ clients: 1, verify_clients: true });
    expect(await r.relay.metrics.render()).toMatch(
      /trellis_relay_connections_total\{outcome="unknown_key"\} 1/,
    );
  });

  it("holds what a client sends while its login is verified, in order, up to 64 frames", async () => {
    const aKey = generateKeyPair();
    let admitA: (() => void) | null = null;
    const r = await relay({
      verifyClient: async (keys) => {
        if (Buffer.from(keys[0]!).equals(Buffer.from(aKey.publicKey))) {
          await new Promise<void>((res) => (admitA = res));
        }
        return keys.map(() => true);
      },
    });
    const b = await connectClient(r.url);
    const atB = collect(b.client);
    // A native client that starts at once (fast start) and sends before it is admitted.
    const sock = connect(r.port, "127.0.0.1");
    cleanups.push(() => sock.destroy());
    let got = Buffer.alloc(0);
    sock.on("data", (d: Buffer) => (got = Buffer.concat([got, d])));
    await new Promise<void>((res) => sock.once("connect", () => res()));
    sock.write(
      "GET /derp HTTP/1.1\r\nHost: relay\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nDerp-Fast-Start: 1\r\n\r\n",
    );
    await waitFor(() => got.length >= 5 + 40, "the server key");
    const serverKey = got.subarray(5 + 8, 5 + 40);
    const frames = [
      encodeFrame(
        FrameType.ClientInfo,
        aKey.publicKey,
        sealBox(text('{"version":2}'), aKey.privateKey, serverKey),
      ),
      ...Array.from({ length: 70 }, (_, i) =>
        encodeFrame(FrameType.SendPacket, b.key.publicKey, text(`p${i}`)),
      ),
    ];
    sock.write(Buffer.concat(frames));
    await waitFor(() => admitA !== null, "a's verification");
    const queueFull = async () =>
      Number(
        /dropped_packets_total\{reason="queue_full"\} (\d+)/.exec(await r.relay.metrics.render())?.[1] ?? 0,
      );
    // Every frame read: 64 held, the rest dropped.
    for (const deadline = Date.now() + 10_000; (await queueFull()) < 6;) {
      if (Date.now() > deadline) throw new Error("the frames beyond 64 were not dropped");
      await new Promise((res) => setTimeout(res, 10));
    }
    expect(atB.got).toEqual([]);
    admitA!();
    await waitFor(() => atB.got.length === 64, "the held packets at b");
    expect(atB.got.map((g) => g.data)).toEqual(Array.from({ length: 64 }, (_, i) => `p${i}`));
    expect(await queueFull()).toBe(6);
  });

  it("drops a connected node the verifier no longer admits, and tells its peers", async () => {
    const admitted = new Set<string>();
    const r = await relay({
      verifyClient: async (keys) => keys.map((k) => admitted.has(Buffer.from(k).toString("hex"))),
    });
    const aKey = generateKeyPair();
    const bKey = generateKeyPair();
    for (const k of [aKey, bKey]) admitted.add(Buffer.from(k.publicKey).toString("hex"));
    const a = await connectClient(r.url, aKey);
    const b = await connectClient(r.url, bKey);
    const atA = collect(a.client);
    collect(b.client);
    a.client.send(bKey.publicKey, text("hello"));
    await waitFor(() => r.relay.health().clients === 2, "both connected");
    // b's node is deleted: the relay is told to look again.
    admitted.delete(Buffer.from(bKey.publicKey).toString("hex"));
    expect(await r.relay.server.revalidate()).toBe(1);
    expect(r.relay.health().clients).toBe(1);
    await waitFor(() => atA.gone.some((g) => g.key === hex(bKey)), "PeerGone for b");
    expect(await r.relay.metrics.render()).toMatch(/trellis_relay_connections_total\{outcome="revoked"\} 1/);
    // Still admitted clients are left alone.
    expect(await r.relay.server.revalidate()).toBe(0);
  });

  it("tells senders when a destination is not here, and receivers when a sender leaves", async () => {
    const r = await relay();
    const a = await connectClient(r.url);
    const b = await connectClient(r.url);
    const atA = collect(a.client);
    const atB = collect(b.client);
    const nobody = generateKeyPair();
    a.client.send(nobody.publicKey, text("anyone?"));
    await waitFor(() => atA.gone.length === 1, "not-here notice");
    expect(atA.gone[0]).toEqual({ key: hex(nobody), reason: PeerGoneReason.NotHere });
    a.client.send(b.key.publicKey, text("hi"));
    await waitFor(() => atB.got.length === 1, "packet at b");
    // b has a reverse path to a through the relay; when a leaves, b must forget it.
    a.client.close();
    await waitFor(() => atB.gone.length === 1, "peer-gone notice at b");
    expect(atB.gone[0]).toEqual({ key: hex(a.key), reason: PeerGoneReason.Disconnected });
  });

  it("closes only the connection that sends an oversized or malformed frame", async () => {
    const r = await relay();
    const a = await connectClient(r.url);
    const b = await connectClient(r.url);
    const atB = collect(b.client);
    const bad = generateKeyPair();
    const raw = await rawClient(r.port, bad);
    const closed = new Promise<void>((res) => raw.sock.once("close", () => res()));
    const header = new Uint8Array(5);
    header[0] = FrameType.SendPacket;
    new DataView(header.buffer).setUint32(1, 10 << 20); // announces 10 MiB
    raw.sock.write(header);
    await closed;
    const bad2 = await rawClient(r.port, generateKeyPair());
    const closed2 = new Promise<void>((res) => bad2.sock.once("close", () => res()));
    bad2.sock.write(encodeFrame(FrameType.Ping, new Uint8Array(3))); // ping must carry 8 bytes
    await closed2;
    a.client.send(b.key.publicKey, text("unaffected"));
    await waitFor(() => atB.got.length === 1, "traffic between good clients");
    expect(r.relay.health().clients).toBe(2);
    await expect(a.client.ping()).resolves.toBeGreaterThanOrEqual(0);
  });

  it("caps a slow reader's queue while other clients keep their full traffic", async () => {
    const depth = 16;
    // The rate limit is off here (it has its own test): this one is about queues.
    const r = await relay({
      limits: { sendQueueDepth: depth, maxInFlightBytes: 64 * 1024, rateBytesPerSec: 0 },
    });
    const sender = await connectClient(r.url);
    const fast = await connectClient(r.url);
    const atFast = collect(fast.client);
    collect(sender.client);
    const slowKey = generateKeyPair();
    const slow = await rawClient(r.port, slowKey, { read: false });
    // Enough bytes to overrun the kernel's socket buffers towards the stalled reader.
    const packet = new Uint8Array(8 * 1024);
    const N = 4000;
    // The fast flow is flow-controlled end to end, as TCP inside the tunnel would be:
    // at most half a queue of it is unacknowledged. Whatever the scheduler does, a
    // relay that keeps the flows apart then delivers all of it, while the stalled
    // reader (which is never waited for) overruns its own queue.
    const window = depth / 2;
    const deadline = Date.now() + 60_000;
    let sent = 0;
    while (sent < N) {
      if (Date.now() > deadline) throw new Error(`sender stalled after ${sent} packets`);
      // Pace the sender by its own socket so this test measures the relay, not the client.
      if (!sender.client.send(slowKey.publicKey, packet)) {
        await new Promise((res) => setTimeout(res, 5));
        continue;
      }
      while (atFast.got.length < sent + 1 - window) {
        if (Date.now() > deadline) throw new Error(`fast client stuck at ${atFast.got.length}/${sent}`);
        await new Promise((res) => setImmediate(res));
      }
      while (!sender.client.send(fast.key.publicKey, packet)) await new Promise((res) => setTimeout(res, 5));
      sent++;
    }
    await waitFor(() => atFast.got.length === N, `all ${N} packets at the fast client`, 30_000);
    const metrics = await r.relay.metrics.render();
    const queued = Number(/trellis_relay_queued_frames (\d+)/.exec(metrics)![1]);
    const dropped = Number(
      /trellis_relay_dropped_packets_total\{reason="queue_full"\} (\d+)/.exec(metrics)![1],
    );
    expect(queued).toBeLessThanOrEqual(depth);
    expect(dropped).toBeGreaterThan(0);
    slow.sock.destroy();
  });

  it("drops what a client sends beyond its rate limit, and says so in its server info", async () => {
    // The bucket's clock stands still, so the count is exact however slow the machine.
    let now = 1_000_000;
    const r = await relay({
      limits: { rateBytesPerSec: 10_000, rateBurstBytes: 20_000 },
      clock: () => now,
    });
    const a = await connectClient(r.url);
    const b = await connectClient(r.url);
    const atB = collect(b.client);
    collect(a.client);
    expect(a.client.serverInfo).toMatchObject({
      tokenBucketBytesPerSecond: 10_000,
      tokenBucketBytesBurst: 20_000,
    });
    for (let i = 0; i < 50; i++) a.client.send(b.key.publicKey, new Uint8Array(1000));
    await a.client.ping(); // the relay has read everything sent before it
    await waitFor(() => atB.got.length === 20, "the burst at b");
    expect(await r.relay.metrics.render()).toMatch(/reason="rate_limited"\} 30\n/);
    // Half a second refills 5,000 bytes: five more packets of ten get through.
    now += 500;
    for (let i = 0; i < 10; i++) a.client.send(b.key.publicKey, new Uint8Array(1000));
    await a.client.ping();
    await waitFor(() => atB.got.length === 25, "the refill at b");
    expect(await r.relay.metrics.render()).toMatch(/reason="rate_limited"\} 35\n/);
  });

  it("lets clients ride out a relay restart, reconnecting with backoff", async () => {
    const key = generateKeyPair();
    const r1 = await startTestRelay({ key });
    const port = r1.port;
    const aKey = generateKeyPair();
    const bKey = generateKeyPair();
    const got: string[] = [];
    let restartHint = 0;
    const linkA = new RelayLink(
      { url: r1.url, privateKey: aKey.privateKey, socketFactory: nodeSocketFactory, minBackoffMs: 50 },
      {
        restarting: (ms) => (restartHint = ms),
      },
    );
    const linkB = new RelayLink(
      { url: r1.url, privateKey: bKey.privateKey, socketFactory: nodeSocketFactory, minBackoffMs: 50 },
      { packet: (_s, d) => got.push(Buffer.from(d).toString()) },
    );
    cleanups.push(
      () => linkA.close(),
      () => linkB.close(),
    );
    await waitFor(() => linkA.connected && linkB.connected, "both links up");
    await r1.stop();
    expect(restartHint).toBeGreaterThan(0);
    await waitFor(() => !linkA.connected, "link A notices the restart");
    const r2 = await relay({ key }, port);
    expect(r2.port).toBe(port);
    await waitFor(
      () => linkA.connected && linkB.connected && r2.relay.health().clients === 2,
      "links back",
      15_000,
    );
    expect(linkA.connects).toBe(2);
    linkA.send(bKey.publicKey, text("after restart"));
    await waitFor(() => got.includes("after restart"), "packet after restart");
  });

  it("backs off two links with one key, which the relay keeps closing, instead of redialling in a loop", async () => {
    const r = await relay();
    const key = generateKeyPair();
    // A cloned state directory, or a restarted daemon whose old process lingers: the newest
    // connection of a key wins, so each link's connection is closed as the other dials.
    const links = [0, 1].map(
      () =>
        new RelayLink({
          url: r.url,
          privateKey: key.privateKey,
          socketFactory: nodeSocketFactory,
          minBackoffMs: 50,
        }),
    );
    cleanups.push(...links.map((l) => () => l.close()));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    // With the backoff (50, 100, 200 … ms, halved at most by jitter) each link dials about
    // six times in 2 s; starting it over at every handshake made it dozens.
    for (const l of links) expect(l.connects).toBeLessThanOrEqual(10);
    expect(links[0]!.connects + links[1]!.connects).toBeGreaterThan(2);
  });

  it("exposes Prometheus metrics and the probe endpoint", async () => {
    const r = await relay();
    const a = await connectClient(r.url);
    const b = await connectClient(r.url);
    collect(a.client);
    const atB = collect(b.client);
    a.client.send(b.key.publicKey, new Uint8Array(100));
    await waitFor(() => atB.got.length === 1, "the packet");
    const res = await fetch(`http://127.0.0.1:${r.port}/metrics`);
    const body = await res.text();
    expect(res.headers.get("content-type")).toMatch(/text\/plain/);
    expect(body).toMatch(/trellis_relay_clients\{kind="node"\} 2/);
    expect(body).toMatch(/trellis_relay_forwarded_packets_total\{path="local"\} 1/);
    expect(body).toMatch(/trellis_relay_forwarded_bytes_total\{path="local"\} 100/);
    expect((await fetch(`http://127.0.0.1:${r.port}/derp/probe`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${r.port}/derp`)).status).toBe(426);
  });
});

describe("relay mesh", () => {
  const meshKey = "ab".repeat(32);

  it("forwards between clients homed on two meshed relays, both ways", async () => {
    const p1 = await freePort();
    let p2 = await freePort();
    for (let i = 0; p2 === p1 && i < 10; i++) p2 = await freePort();
    const [k1, k2] = [generateKeyPair(), generateKeyPair()];
    // Each pins the other's relay key; ws:// on loopback only with meshInsecure.
    const url = (p: number, k: KeyPair) => `ws://127.0.0.1:${p}/derp#relaykey:${hex(k)}`;
    const r1 = await relay({ key: k1, meshKey, meshWith: [url(p2, k2)], meshInsecure: true }, p1);
    const r2 = await relay({ key: k2, meshKey, meshWith: [url(p1, k1)], meshInsecure: true }, p2);
    await waitFor(
      () => r1.relay.health().mesh?.connected === 1 && r2.relay.health().mesh?.connected === 1,
      "mesh links up",
      15_000,
    );
    const a = await connectClient(r1.url);
    const b = await connectClient(r2.url);
    const atA = collect(a.client);
    const atB = collect(b.client);
    // Each relay watches the other and so learns where the other's clients live.
    await waitFor(
      () => atA.got.length > 0 || trySend(b.client, a.key.publicKey, "b to a"),
      "route to a",
      15_000,
    );
    await waitFor(() => atA.got.length >= 1, "packet across the mesh to a");
    expect(atA.got[0]).toEqual({ src: hex(b.key), data: "b to a" });
    a.client.send(b.key.publicKey, text("a to b"));
    await waitFor(() => atB.got.length === 1, "packet across the mesh to b");
    expect(atB.got[0]).toEqual({ src: hex(a.key), data: "a to b" });
    expect(await r2.relay.metrics.render()).toMatch(
      /trellis_relay_forwarded_packets_total\{path="mesh_out"\} \d+/,
    );
    expect(await r2.relay.metrics.render()).toMatch(
      /trellis_relay_forwarded_packets_total\{path="mesh_in"\} 1/,
    );
    expect(await r1.relay.metrics.render()).toMatch(
      /trellis_relay_forwarded_packets_total\{path="mesh_in"\} \d+/,
    );
  });

  it("refuses a mesh login with the wrong mesh key and forward-packet from plain clients", async () => {
    const r1 = await relay({ meshKey });
    const wrong = generateKeyPair();
    await expect(
      DerpClient.connect({
        url: r1.url,
        privateKey: wrong.privateKey,
        meshKey: "cd".repeat(32),
        socketFactory: nodeSocketFactory,
      }),
    ).rejects.toThrow(DerpClientError);
    const plain = await connectClient(r1.url);
    const closed = new Promise<void>((res) => plain.client.on({ close: () => res() }));
    plain.client.forward(plain.key.publicKey, generateKeyPair().publicKey, text("x"));
    await closed;
  });
});
