import { describe, expect, it } from "vitest";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { boxSharedKey } from "./derp/box";
import { type DiscoMessage, formatUdpAddr, openDisco, parseUdpAddr, sealDisco, type UdpAddr } from "./disco";
import type { UdpSocket } from "./udp";
import { TRUST_MS, UdpPaths } from "./udp-paths";

// A small internet in memory: hosts with one socket each, optionally behind
// a NAT that maps the inside address to a public one and, as Linux's
// conntrack does, lets in only what answers a destination the inside has
// sent to (address- and port-dependent filtering). Delivery is a microtask.
class Net {
  private readonly sockets = new Map<string, (d: Uint8Array, from: UdpAddr) => void>();
  readonly nats: Nat[] = [];
  blocked = false;
  delivered = 0;

  socket(addr: UdpAddr, nat: Nat | null): UdpSocket {
    const key = formatUdpAddr(addr);
    return {
      port: addr.port,
      send: (data, to) => {
        if (this.blocked) return;
        const src = nat ? nat.out(addr, to) : addr;
        queueMicrotask(() => this.arrive(data.slice(), src, to));
      },
      onMessage: (fn) => void this.sockets.set(key, fn),
      localAddresses: () => [addr.address],
      close: () => void this.sockets.delete(key),
    };
  }

  private arrive(data: Uint8Array, from: UdpAddr, to: UdpAddr): void {
    const nat = this.nats.find((n) => n.publicAddress === to.address);
    const inside = nat ? nat.in(from, to) : to;
    if (!inside) return;
    const fn = this.sockets.get(formatUdpAddr(inside));
    if (fn) {
      this.delivered++;
      fn(data, from);
    }
  }
}

class Nat {
  private readonly opened = new Set<string>();
  private readonly inside = new Map<number, UdpAddr>();
  constructor(readonly publicAddress: string) {}

  out(src: UdpAddr, to: UdpAddr): UdpAddr {
    // Endpoint-independent mapping, port preserved (what masquerade does when it can).
    this.inside.set(src.port, src);
    this.opened.add(`${src.port}>${formatUdpAddr(to)}`);
    return { address: this.publicAddress, port: src.port };
  }

  in(from: UdpAddr, to: UdpAddr): UdpAddr | null {
    if (!this.opened.has(`${to.port}>${formatUdpAddr(from)}`)) return null;
    return this.inside.get(to.port) ?? null;
  }
}

const flush = async () => {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => queueMicrotask(r));
};

interface Node {
  key: { publicKey: Uint8Array; privateKey: Uint8Array };
  paths: UdpPaths;
  got: { from: string; data: Uint8Array }[];
  endpoint: UdpAddr;
}

function setup(natted: boolean) {
  const net = new Net();
  let now = 1_000_000;
  const relay: { to: Node; data: Uint8Array; from: Node }[] = [];
  const mk = (inside: string, publicAddr: string): Node => {
    const nat = natted ? new Nat(publicAddr) : null;
    if (nat) net.nats.push(nat);
    const addr = { address: inside, port: 41641 };
    const key = generateKeyPair();
    const node: Node = {
      key,
      got: [],
      endpoint: nat ? { address: publicAddr, port: 41641 } : addr,
    } as unknown as Node;
    node.paths = new UdpPaths({
      socket: net.socket(addr, nat),
      privateKey: key.privateKey,
      publicKey: key.publicKey,
      sendRelay: (peer, data) => {
        const to = nodes.find((n) => formatKey(n.key.publicKey) === formatKey(peer))!;
        relay.push({ to, data, from: node });
      },
      onDatagram: (from, data) => node.got.push({ from, data }),
      onEndpoints: () => undefined,
      onChange: () => undefined,
      log: () => undefined,
      now: () => now,
    });
    return node;
  };
  const nodes: Node[] = [];
  const a = mk("192.168.1.10", "198.51.100.1");
  const b = mk("192.168.2.20", "203.0.113.2");
  nodes.push(a, b);
  const introduce = (publishA = [formatUdpAddr(a.endpoint)], publishB = [formatUdpAddr(b.endpoint)]) => {
    a.paths.setPeer(b.key.publicKey, "b", publishB);
    b.paths.setPeer(a.key.publicKey, "a", publishA);
  };
  /** Deliver what went over the relay (it always works). */
  const runRelay = async () => {
    for (const m of relay.splice(0)) m.to.paths.fromRelay(m.from.key.publicKey, m.data);
    await flush();
  };
  return {
    net,
    a,
    b,
    relay,
    introduce,
    runRelay,
    advance: (ms: number) => (now += ms),
  };
}

const formatKey = (k: Uint8Array) => Buffer.from(k).toString("hex");
const wg = (n: number) => Uint8Array.of(4, 0, 0, 0, n, n, n, n);

describe("UDP paths", () => {
  it("opens a path between two nodes without NAT at the first ping", async () => {
    const { a, b, introduce, runRelay } = setup(false);
    introduce();
    expect(a.paths.send(b.key.publicKey, wg(1))).toBe(false); // nothing proven yet
    a.paths.wantDirect(b.key.publicKey);
    await flush();
    await runRelay();
    expect(a.paths.usable(b.key.publicKey)).toBe(true);
    expect(a.paths.send(b.key.publicKey, wg(2))).toBe(true);
    await flush();
    expect(b.got).toEqual([{ from: formatKey(a.key.publicKey), data: wg(2) }]);
    expect(a.paths.describe(b.key.publicKey)).toMatchObject({ addr: "192.168.2.20:41641" });
  });

  it("punches through two NATs only with the peer's help over the relay (call me maybe)", async () => {
    const { a, b, introduce, runRelay, relay } = setup(true);
    introduce();
    a.paths.wantDirect(b.key.publicKey);
    await flush();
    // A's pings died at B's NAT, which had never sent to A.
    expect(a.paths.usable(b.key.publicKey)).toBe(false);
    expect(relay).toHaveLength(1);
    // B hears "call me maybe" over the relay and pings A's public endpoint,
    // which opens B's NAT to A and passes A's NAT (A pinged B first).
    await runRelay();
    await flush();
    expect(b.paths.usable(a.key.publicKey)).toBe(true);
    expect(a.paths.usable(b.key.publicKey)).toBe(true);
    expect(a.paths.describe(b.key.publicKey)).toMatchObject({ addr: "203.0.113.2:41641" });
    expect(b.paths.send(a.key.publicKey, wg(7))).toBe(true);
    await flush();
    expect(a.got.map((g) => g.data)).toEqual([wg(7)]);
  });

  it("without the relay's call, two NATs stay closed", async () => {
    const { a, b, introduce, relay } = setup(true);
    introduce();
    a.paths.wantDirect(b.key.publicKey);
    await flush();
    relay.length = 0; // the call is lost
    await flush();
    expect(a.paths.usable(b.key.publicKey)).toBe(false);
    expect(b.paths.usable(a.key.publicKey)).toBe(false);
    expect(a.paths.describe(b.key.publicKey)).toMatchObject({ why: expect.stringMatching(/trying UDP/) });
  });

  it("stops trusting a path whose pongs stop, and takes it back when they return", async () => {
    const { net, a, b, introduce, runRelay, advance } = setup(true);
    introduce();
    a.paths.wantDirect(b.key.publicKey);
    await flush();
    await runRelay();
    expect(a.paths.usable(b.key.publicKey)).toBe(true);
    net.blocked = true;
    for (let t = 0; t < TRUST_MS; t += 1000) {
      advance(1000);
      a.paths.send(b.key.publicKey, wg(1)); // traffic keeps heartbeats going
      a.paths.tick();
      await flush();
    }
    expect(a.paths.usable(b.key.publicKey)).toBe(false);
    expect(a.paths.describe(b.key.publicKey)).toMatchObject({ why: expect.stringMatching(/stalled/) });
    net.blocked = false;
    advance(2000);
    a.paths.tick();
    await flush();
    expect(a.paths.usable(b.key.publicKey)).toBe(true);
  });

  it("refuses WireGuard from unproven addresses and disco it cannot open, counting both", async () => {
    const { net, a, b, introduce } = setup(false);
    introduce();
    const stranger = net.socket({ address: "192.0.2.66", port: 5000 }, null);
    stranger.send(wg(9), { address: "192.168.1.10", port: 41641 });
    // A pong "from b" sealed with the wrong key (a stranger's).
    const mallory = generateKeyPair();
    const forged = sealDisco(
      { type: "pong", txid: new Uint8Array(12), src: { address: "192.0.2.66", port: 5000 } },
      boxSharedKey(mallory.privateKey, a.key.publicKey),
      b.key.publicKey,
    );
    stranger.send(forged, { address: "192.168.1.10", port: 41641 });
    await flush();
    expect(a.got).toEqual([]);
    expect(a.paths.drops).toMatchObject({ udp_unknown_source: 1, disco_forged: 1 });
    expect(a.paths.usable(b.key.publicKey)).toBe(false);
  });
});

describe("disco messages", () => {
  it("hands WireGuard from unproven addresses to the engine when it takes them (plain WireGuard peers)", async () => {
    const net = new Net();
    const key = generateKeyPair();
    const unproven: { data: Uint8Array; from: string }[] = [];
    const paths = new UdpPaths({
      socket: net.socket({ address: "192.168.1.10", port: 41641 }, null),
      privateKey: key.privateKey,
      publicKey: key.publicKey,
      sendRelay: () => undefined,
      onDatagram: () => undefined,
      onUnprovenDatagram: (data, from) => unproven.push({ data, from: formatUdpAddr(from) }),
      onEndpoints: () => undefined,
      onChange: () => undefined,
      log: () => undefined,
    });
    const peer = net.socket({ address: "192.0.2.66", port: 5000 }, null);
    const initiation = new Uint8Array(148);
    initiation[0] = 1;
    peer.send(initiation, { address: "192.168.1.10", port: 41641 });
    peer.send(Uint8Array.of(9, 9, 9), { address: "192.168.1.10", port: 41641 });
    await flush();
    expect(unproven).toEqual([{ data: initiation, from: "192.0.2.66:5000" }]);
    // What is not WireGuard is still not the engine's.
    expect(paths.drops).toEqual({ udp_unknown: 1 });
  });

  it("round-trip sealed, and only for the pair that sealed them", () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    const shared = boxSharedKey(a.privateKey, b.publicKey);
    const back = boxSharedKey(b.privateKey, a.publicKey);
    const msgs: DiscoMessage[] = [
      { type: "ping", txid: new Uint8Array(12).fill(1) },
      { type: "pong", txid: new Uint8Array(12).fill(2), src: { address: "203.0.113.9", port: 41641 } },
      { type: "pong", txid: new Uint8Array(12).fill(3), src: { address: "2001:db8::1", port: 1 } },
      {
        type: "call-me-maybe",
        endpoints: [
          { address: "198.51.100.1", port: 41641 },
          { address: "fd00::2", port: 65535 },
        ],
      },
    ];
    for (const m of msgs) {
      const sealed = sealDisco(m, shared, a.publicKey);
      expect(openDisco(sealed, back)).toEqual(m);
      expect(openDisco(sealed, boxSharedKey(generateKeyPair().privateKey, a.publicKey))).toBeNull();
      const tampered = sealed.slice();
      tampered[tampered.length - 1]! ^= 1;
      expect(openDisco(tampered, back)).toBeNull();
    }
  });

  it("parses endpoints as the control protocol writes them", () => {
    expect(parseUdpAddr("198.51.100.1:41641")).toEqual({ address: "198.51.100.1", port: 41641 });
    expect(parseUdpAddr("[2001:db8::1]:443")).toEqual({ address: "2001:db8::1", port: 443 });
    for (const bad of [
      "198.51.100.1",
      "198.51.100.1:0",
      "198.51.100.1:70000",
      "host:1",
      "[::1]",
      "1.2.3.999:1",
    ]) {
      expect(parseUdpAddr(bad)).toBeNull();
    }
  });
});
