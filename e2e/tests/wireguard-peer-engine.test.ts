// How a gateway's node engine takes plain WireGuard peers, on loopback with
// no namespaces: the gateway is the engine's Node flavour with a UDP socket
// (userspace stack), and the WireGuard peers are the WASM WireGuard engine
// driven over a plain UDP socket — the protocol as any WireGuard speaks it.
// A plain peer's handshake from an address nobody proved is answered, and its
// ping to the gateway comes back; a Trellis node's key handshaking from such
// an address is not answered (Trellis peers' paths are proven by disco), with
// or without plain peers in the gateway's map.
import { createSocket, type Socket } from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeEngine, openUdpSocket } from "@trellis/client/node";
import type { NodeEngine } from "@trellis/client";
import { addrBytes, parseAddr } from "@trellis/proto/ip";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { decodeKey, wgKeyText, type MachineInfo, type WireGuardPeerConfig } from "@trellis/proto";
import { WireGuardEngine, type EngineOutput } from "@trellis/wasm/node";
import { api, firstAdmin, type Caller } from "../src/console";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until } from "../src/wait";

const data = tempDataDir();
let trellis: RunningTrellis;
let admin: Caller;
let gw: NodeEngine;
let gwId: string;
let gwPort: number;
const engines: NodeEngine[] = [];
const peers: RawPeer[] = [];

/**
 * A WireGuard peer that is nothing but WireGuard: the WASM engine with its
 * userspace stack, one peer (the gateway at 127.0.0.1:`port`), its own UDP
 * socket, and a timer that runs the engine's clock.
 */
class RawPeer {
  readonly engine: WireGuardEngine;
  readonly replies: number[] = [];
  private readonly sock: Socket = createSocket("udp4");
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    privateKey: Uint8Array,
    address: string,
    gatewayKey: Uint8Array,
    private readonly port: number,
  ) {
    this.engine = new WireGuardEngine(privateKey, { stack: true });
    this.engine.setAddresses([address]);
    this.engine.upsertPeer({ publicKey: gatewayKey, allowedIps: ["100.64.0.0/10"], endpoint: 1 });
    this.sock.on("message", (m) =>
      this.handle(this.engine.receive([{ data: new Uint8Array(m), endpoint: 1 }])),
    );
    this.sock.bind(0, "127.0.0.1");
    this.timer = setInterval(() => this.handle(this.engine.poll()), 50);
  }

  private handle(out: EngineOutput[]): void {
    for (const o of out) {
      if (o.kind === "datagram") this.sock.send(o.data, this.port, "127.0.0.1");
      if (o.kind === "ping-reply") this.replies.push(o.seq);
    }
  }

  ping(address: string, seq: number): void {
    this.engine.ping(addrBytes(parseAddr(address)!), seq);
    this.handle(this.engine.poll());
  }

  private closed = false;
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.sock.close();
  }
}

const POLICY = JSON.stringify({
  tagOwners: {
    "tag:gw": ["autogroup:admin"],
    "tag:wg": ["autogroup:admin"],
    "tag:node": ["autogroup:admin"],
  },
  acls: [{ action: "accept", src: ["tag:wg", "tag:node"], dst: ["tag:gw:*"] }],
});

async function preAuthKey(tag: string): Promise<string> {
  const r = await api(url(), admin, "POST", "/api/v1/keys", { tags: [tag], reusable: true });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.key as string;
}
const url = () => trellis.url;

function drops(reason: string): number {
  return gw.status().drops[reason] ?? 0;
}

beforeAll(async () => {
  trellis = await startTrellis({ dataDir: data.dir });
  admin = await firstAdmin(trellis.url, trellis.setupLink());
  expect((await api(trellis.url, admin, "PUT", "/api/v1/policy", { text: POLICY })).status).toBe(200);
  gw = nodeEngine({
    baseUrl: trellis.url,
    privateKey: generateKeyPair().privateKey,
    register: { preAuthKey: await preAuthKey("tag:gw"), hostname: "gw", os: "linux" },
    webrtc: false,
    udp: await openUdpSocket(0),
  });
  engines.push(gw);
  await gw.start();
  gwPort = gw.status().udp!.port;
  const m = await until("the gateway's UDP endpoints in Machines", async () => {
    const r = await api(trellis.url, admin, "GET", "/api/v1/machines?q=gw");
    return (r.body.items as MachineInfo[]).find((x) => x.name === "gw" && x.endpoints.length > 0);
  });
  gwId = m.id;
}, 180_000);

afterAll(async () => {
  for (const p of peers) p.close();
  for (const e of engines) e.close();
  await trellis?.stop();
  data.remove();
});

describe("a gateway's engine and plain WireGuard peers", () => {
  /** A Trellis node (a peer of the gateway) whose key a raw WireGuard peer then uses from an unproven address. */
  async function trellisKeyFromElsewhere(hostname: string): Promise<{ raw: RawPeer; node: NodeEngine }> {
    const keys = generateKeyPair();
    const n = nodeEngine({
      baseUrl: trellis.url,
      privateKey: keys.privateKey,
      register: { preAuthKey: await preAuthKey("tag:node"), hostname, os: "linux" },
      webrtc: false,
    });
    engines.push(n);
    await n.start();
    await until(`${hostname} in the gateway's map`, () => gw.netmap?.peers.some((p) => p.name === hostname));
    const gwKey = decodeKey("nodekey", gw.netmap!.node.key);
    const raw = new RawPeer(keys.privateKey, n.netmap!.node.addresses[0]!.split("/")[0]!, gwKey, gwPort);
    peers.push(raw);
    return { raw, node: n };
  }

  it("does not answer a Trellis node's key from an unproven address while no plain peer is in its map", async () => {
    const before = drops("udp_unknown_source");
    const { raw } = await trellisKeyFromElsewhere("node-a");
    raw.ping(gw.netmap!.node.addresses[0]!.split("/")[0]!, 1);
    await until("the gateway dropping it", () => drops("udp_unknown_source") > before);
    expect(raw.engine.stats().peers[0]!.has_session).toBe(false);
  });

  it("answers a plain peer's handshake from any address; its ping to the gateway comes back", async () => {
    const keys = generateKeyPair();
    const created = await api(trellis.url, admin, "POST", "/api/v1/machines/wireguard", {
      name: "plain",
      gatewayId: gwId,
      publicKey: wgKeyText(keys.publicKey),
      tags: ["tag:wg"],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const conf = (
      await api(trellis.url, admin, "GET", `/api/v1/machines/${(created.body as MachineInfo).id}/wireguard`)
    ).body as WireGuardPeerConfig;
    await until("the plain peer in the gateway's map", () =>
      gw.netmap?.peers.some((p) => p.name === "plain" && p.isWireGuardOnly),
    );
    const raw = new RawPeer(
      keys.privateKey,
      conf.addresses[0]!.split("/")[0]!,
      Buffer.from(conf.gateway.publicKey, "base64"),
      gwPort,
    );
    peers.push(raw);
    const gwAddr = gw.netmap!.node.addresses[0]!.split("/")[0]!;
    let seq = 0;
    await until("a ping reply from the gateway", () => {
      raw.ping(gwAddr, ++seq);
      return raw.replies.length > 0;
    });
    const me = gw.status().peers.find((p) => p.name === "plain")!;
    expect(me.path).toBe("direct");
    expect(me.pathDetail).toMatch(/^UDP 127\.0\.0\.1:\d+ \(plain WireGuard peer\)$/);
  });

  it("still does not answer a Trellis node's key from an unproven address once plain peers are in its map", async () => {
    const before = drops("udp_unknown_source");
    const { raw, node } = await trellisKeyFromElsewhere("node-b");
    raw.ping(gw.netmap!.node.addresses[0]!.split("/")[0]!, 1);
    // The handshake reaches WireGuard now (a plain peer could be behind any address); its answer is held back.
    await until("the gateway dropping its answer", () => drops("udp_unknown_source") > before);
    expect(raw.engine.stats().peers[0]!.has_session).toBe(false);
    // The node itself (once the other holder of its key stops competing with it) reaches the
    // gateway on its own paths.
    raw.close();
    const pong = await node.ping(gw.netmap!.node.addresses[0]!.split("/")[0]!);
    expect(pong.peer).toBe("gw");
  });
});
