// The node engine against the real server (its control plane, embedded
// relay and STUN server), with nodes of the engine's Node flavour: they
// register, ping each other and carry TCP through WireGuard and their
// userspace stacks — over the relay, then over a WebRTC data channel
// (node-datachannel) or a UDP path found by STUN and disco pings — and the
// packet filter stops what the policy does not allow.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPreAuthKey } from "@trellis/control";
import { nodeEngine, openUdpSocket } from "@trellis/client/node";
import type { NodeEngine, TcpConnection } from "@trellis/client";
import { openDatabase, type Database } from "@trellis/db";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { api, firstAdmin } from "../src/console";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until } from "../src/wait";

const data = tempDataDir();
let trellis: RunningTrellis;
let db: Database;
let key: string;
const engines: NodeEngine[] = [];

beforeAll(async () => {
  trellis = await startTrellis({ dataDir: data.dir });
  db = await openDatabase(`file:${join(data.dir, "trellis.db")}`);
  key = (await createPreAuthKey(db, { tags: ["tag:node"], reusable: true }, "local")).key;
}, 180_000);
afterAll(async () => {
  for (const e of engines) e.close();
  await db?.close();
  await trellis?.stop();
  data.remove();
});

async function node(hostname: string, webrtc: boolean, udp = false): Promise<NodeEngine> {
  const e = nodeEngine({
    baseUrl: trellis.url,
    privateKey: generateKeyPair().privateKey,
    register: { preAuthKey: key, hostname, os: "linux" },
    webrtc,
    udp: udp ? await openUdpSocket(0) : undefined,
  });
  engines.push(e);
  await e.start();
  return e;
}

/** Serve an echo on `port` of `e`'s own stack. */
function echo(e: NodeEngine, port: number): void {
  e.listenTcp(port, (c) => void c.readable.pipeTo(c.writable).catch(() => undefined));
}

async function roundTrip(c: TcpConnection, bytes: number): Promise<Uint8Array> {
  const payload = Uint8Array.from({ length: bytes }, (_, i) => (i * 31) % 251);
  const writer = c.writable.getWriter();
  const reader = c.readable.getReader();
  const done = writer.write(payload);
  const got = new Uint8Array(bytes);
  let n = 0;
  while (n < bytes) {
    const r = await reader.read();
    if (r.done) throw new Error("connection ended early");
    got.set(r.value, n);
    n += r.value.length;
  }
  await done;
  writer.releaseLock();
  reader.releaseLock();
  expect(got).toEqual(payload);
  return got;
}

describe("node engine against the server", () => {
  let a: NodeEngine;
  let b: NodeEngine;

  it("pings and carries TCP over the relay", async () => {
    a = await node("alpha", false);
    b = await node("beta", false);
    await until("each sees the other", () => a.netmap?.peers.length === 1 && b.netmap?.peers.length === 1);
    const ping = await until("a ping reply", () => a.ping("beta", { timeoutMs: 3000 }).catch(() => null));
    expect(ping).toMatchObject({ path: "relay", peer: "beta" });
    echo(b, 7);
    const c = await a.connectTcp("beta.trellis.internal", 7);
    await roundTrip(c, 300_000);
    await c.close();
    const peer = a.status().peers.find((p) => p.name === "beta")!;
    expect(peer).toMatchObject({ path: "relay" });
    expect(peer.txBytes).toBeGreaterThan(300_000);
    expect(peer.lastHandshake).not.toBeNull();
  });

  it("moves to a WebRTC data channel when both sides can, keeping open connections", async () => {
    const c1 = await node("gamma", true);
    const c2 = await node("delta", true);
    await until("peers", () => c1.netmap?.peers.some((p) => p.name === "delta"));
    echo(c2, 8);
    // A connection opened over the relay survives the move to the direct path.
    const conn = await until("a connection", () => c1.connectTcp("delta", 8).catch(() => null));
    await roundTrip(conn, 10_000);
    await until(
      "a verified data channel",
      () => c1.status().peers.find((p) => p.name === "delta")?.path === "direct",
      30_000,
    );
    const ping = await c1.ping("delta");
    expect(ping.path).toBe("direct");
    await roundTrip(conn, 500_000);
    expect(c1.status().peers.find((p) => p.name === "delta")!.pathDetail).toMatch(/WebRTC data channel/);
    await conn.close();
  });

  it("moves to a UDP path between two nodes with UDP sockets, keeping open connections", async () => {
    // WebRTC is on too: two nodes that both publish UDP endpoints use UDP.
    const u1 = await node("epsilon", true, true);
    const u2 = await node("zeta", true, true);
    await until("endpoints published", () =>
      u1.netmap?.peers.some((p) => p.name === "zeta" && p.endpoints.length > 0),
    );
    echo(u2, 9);
    const conn = await until("a connection", () => u1.connectTcp("zeta", 9).catch(() => null));
    await roundTrip(conn, 10_000);
    await until(
      "a verified UDP path",
      () => u1.status().peers.find((p) => p.name === "zeta")?.path === "direct",
      30_000,
    );
    expect(u1.status().peers.find((p) => p.name === "zeta")!.pathDetail).toMatch(/^UDP \S+:\d+/);
    await roundTrip(conn, 500_000);
    expect((await u2.ping("epsilon")).path).toBe("direct");
    // Netcheck: the embedded STUN server answered with an endpoint the node publishes.
    const report = await u1.netcheck();
    expect(report.udp).toBe(true);
    expect(report.stun[0]!.mapped).toMatch(/:\d+$/);
    expect(report.endpoints).toContain(report.stun[0]!.mapped);
    expect(Object.values(report.relayLatencyMs)[0]).toBeGreaterThanOrEqual(0);
    await conn.close();
  });

  it("drops what the packet filter does not allow, and counts it", async () => {
    // The first admin, through the setup link the server printed; then a policy that
    // leaves tag:node only port 80 of tag:node: beta's port 7 is closed to alpha.
    const admin = await firstAdmin(trellis.url, trellis.setupLink());
    const saved = await api(trellis.url, admin, "PUT", "/api/v1/policy", {
      text: JSON.stringify({
        tagOwners: { "tag:node": [] },
        acls: [{ action: "accept", src: ["tag:node"], dst: ["tag:node:80"] }],
      }),
    });
    expect(saved.status).toBe(200);
    await until("the new filter at beta", () => b.netmap?.policyVersion === saved.body.version);
    const before = b.status().drops.filter_no_rule ?? 0;
    await expect(a.connectTcp("beta", 7, { timeoutMs: 3000 })).rejects.toThrow();
    await until("a counted drop at beta", () => (b.status().drops.filter_no_rule ?? 0) > before);
  });
});
