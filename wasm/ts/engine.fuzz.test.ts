// Bad input to the filter and the userspace stack, as tables of generated
// cases (fast-check): a peer sends, through a real WireGuard session, any IP
// packet its host hands it (the TUN seam): IPv4 and IPv6 with correct
// checksums (so they reach the stack, not only the checksum check), lying
// lengths, options, every TCP flag combination to a listening port, UDP,
// ICMP, and raw bytes; and datagrams that are not WireGuard at all. The
// receiving engine never throws, counts what it drops by reason, and still
// carries a TCP echo afterwards.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fuzzRuns, recordCases } from "@trellis/proto/fuzz";
import { WireGuardEngine, type EngineOutput } from "./node";

const ALLOW_ALL = JSON.stringify([
  { SrcIPs: ["*"], DstPorts: [{ IP: "*", Ports: { First: 0, Last: 65535 } }] },
]);
const A4 = [100, 64, 0, 1];
const B4 = [100, 64, 0, 2];
const A6 = [0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6 = [0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/** A host-side sender (no stack: its host hands it packets) and a receiver with the stack, listening on 7. */
function pair() {
  const a = new WireGuardEngine(crypto.getRandomValues(new Uint8Array(32)), { stack: false });
  const b = new WireGuardEngine(crypto.getRandomValues(new Uint8Array(32)), { stack: true });
  a.upsertPeer({
    publicKey: b.publicKey,
    allowedIps: ["100.64.0.2/32", "fd7a:115c:a1e0::2/128"],
    endpoint: 1,
  });
  b.upsertPeer({
    publicKey: a.publicKey,
    allowedIps: ["100.64.0.1/32", "fd7a:115c:a1e0::1/128"],
    endpoint: 1,
  });
  a.setAddresses(["100.64.0.1", "fd7a:115c:a1e0::1"]);
  b.setAddresses(["100.64.0.2", "fd7a:115c:a1e0::2"]);
  a.setFilter(ALLOW_ALL);
  b.setFilter(ALLOW_ALL);
  b.tcpListen(7);
  /** Carry datagrams both ways until quiet; returns what each side put out besides datagrams. */
  const settle = (fromA: EngineOutput[], fromB: EngineOutput[] = []) => {
    const seen = { a: [] as EngineOutput[], b: [] as EngineOutput[] };
    const keep = (o: EngineOutput) => {
      const c = { ...o } as Record<string, unknown>;
      for (const k of ["data", "from", "to"])
        if (c[k] instanceof Uint8Array) c[k] = (c[k] as Uint8Array).slice();
      return c as unknown as EngineOutput;
    };
    for (let i = 0; i < 1000; i++) {
      const toB = fromA
        .filter((o) => o.kind === "datagram")
        .map((o) => ({ data: (o as { data: Uint8Array }).data.slice(), endpoint: 1 }));
      const toA = fromB
        .filter((o) => o.kind === "datagram")
        .map((o) => ({ data: (o as { data: Uint8Array }).data.slice(), endpoint: 1 }));
      seen.a.push(...fromA.filter((o) => o.kind !== "datagram").map(keep));
      seen.b.push(...fromB.filter((o) => o.kind !== "datagram").map(keep));
      if (toA.length + toB.length === 0) return seen;
      fromA = toA.length ? a.receive(toA) : [];
      fromB = toB.length ? b.receive(toB) : [];
    }
    throw new Error("never quiet");
  };
  return { a, b, settle };
}

function sum16(bytes: Uint8Array, start = 0): number {
  let s = start;
  for (let i = 0; i + 1 < bytes.length; i += 2) s += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2) s += bytes[bytes.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const fold = (s: number) => ~s & 0xffff;

/** An IPv4 packet from A to B with valid header and transport checksums (unless told to lie about the length). */
function ipv4(proto: number, transport: Uint8Array, lie: number, dst: number[] = B4): Uint8Array {
  const p = new Uint8Array(20 + transport.length);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, Math.max(0, Math.min(0xffff, p.length + lie)));
  p[8] = 64;
  p[9] = proto;
  p.set(A4, 12);
  p.set(dst, 16);
  p.set(transport, 20);
  const ckOff = proto === 6 ? 16 : proto === 17 ? 6 : proto === 1 ? 2 : -1;
  if (ckOff >= 0 && transport.length >= ckOff + 2) {
    p[20 + ckOff] = p[21 + ckOff] = 0;
    const pseudo =
      proto === 1
        ? 0
        : sum16(Uint8Array.from([...A4, ...dst, 0, proto, transport.length >> 8, transport.length & 0xff]));
    dv.setUint16(20 + ckOff, fold(sum16(p.subarray(20), pseudo)));
  }
  dv.setUint16(10, fold(sum16(p.subarray(0, 20))));
  return p;
}

/** An IPv6 packet from A to B with a valid TCP/UDP/ICMPv6 checksum. */
function ipv6(next: number, transport: Uint8Array, lie: number, dst: number[] = B6): Uint8Array {
  const p = new Uint8Array(40 + transport.length);
  const dv = new DataView(p.buffer);
  p[0] = 0x60;
  dv.setUint16(4, Math.max(0, Math.min(0xffff, transport.length + lie)));
  p[6] = next;
  p[7] = 64;
  p.set(A6, 8);
  p.set(dst, 24);
  p.set(transport, 40);
  const ckOff = next === 6 ? 16 : next === 17 ? 6 : next === 58 ? 2 : -1;
  if (ckOff >= 0 && transport.length >= ckOff + 2) {
    p[40 + ckOff] = p[41 + ckOff] = 0;
    const len = transport.length;
    const pseudo = sum16(Uint8Array.from([...A6, ...dst, 0, 0, len >> 8, len & 0xff, 0, 0, 0, next]));
    dv.setUint16(40 + ckOff, fold(sum16(p.subarray(40), pseudo)));
  }
  return p;
}

/** A TCP segment to port 7 (or any) with any flags, options and payload. */
const tcp = fc
  .record({
    sport: fc.integer({ min: 1, max: 65535 }),
    dport: fc.oneof(fc.constant(7), fc.integer({ min: 0, max: 65535 })),
    seq: fc.nat({ max: 0xffffffff }),
    ack: fc.nat({ max: 0xffffffff }),
    flags: fc.integer({ min: 0, max: 0xff }),
    window: fc.integer({ min: 0, max: 65535 }),
    options: fc.uint8Array({ maxLength: 40 }),
    payload: fc.uint8Array({ maxLength: 120 }),
    offsetLie: fc.integer({ min: -5, max: 5 }),
  })
  .map((t) => {
    const optLen = t.options.length - (t.options.length % 4);
    const seg = new Uint8Array(20 + optLen + t.payload.length);
    const dv = new DataView(seg.buffer);
    dv.setUint16(0, t.sport);
    dv.setUint16(2, t.dport);
    dv.setUint32(4, t.seq);
    dv.setUint32(8, t.ack);
    seg[12] = (Math.max(0, Math.min(15, 5 + optLen / 4 + t.offsetLie)) << 4) & 0xf0;
    seg[13] = t.flags;
    dv.setUint16(14, t.window);
    seg.set(t.options.subarray(0, optLen), 20);
    seg.set(t.payload, 20 + optLen);
    return seg;
  });
/** Packets to B's own addresses, or (`routed`) to addresses on the routes it serves. */
const packetsTo = (v4: number[], v6: number[]) =>
  fc.oneof(
    fc
      .tuple(tcp, fc.integer({ min: -30, max: 30 }))
      .map(([t, lie]) => ipv4(6, t, lie % 3 === 0 ? lie : 0, v4)),
    fc
      .tuple(tcp, fc.integer({ min: -30, max: 30 }))
      .map(([t, lie]) => ipv6(6, t, lie % 3 === 0 ? lie : 0, v6)),
    fc
      .tuple(fc.constantFrom(1, 17, 58, 0, 2, 41, 255), fc.uint8Array({ maxLength: 100 }))
      .map(([p, t]) => (p === 58 ? ipv6(p, t, 0, v6) : ipv4(p, t, 0, v4))),
    fc.uint8Array({ minLength: 1, maxLength: 200 }),
  );
const packet = packetsTo(B4, B6);
const LAN4 = [10, 9, 0, 5];
const LAN6 = [0xfd, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];

describe("the filter and the userspace stack on bad input", () => {
  it("any packet a peer's host sends, through a real session: no throw, drops counted, the stack still serves", () => {
    const runs = fuzzRuns(300);
    const { a, b, settle } = pair();
    let answered = 0;
    fc.assert(
      fc.property(fc.array(packet, { minLength: 1, maxLength: 8 }), (packets) => {
        answered += settle(a.send(packets)).a.filter((o) => o.kind === "packet").length;
        settle(a.poll());
      }),
      { numRuns: runs },
    );
    recordCases("bad input", "IP packets into the filter and the stack (WASM engine)", runs);
    // The cases reached the stack: it answered some (SYN-ACKs, resets, echo replies).
    expect(answered).toBeGreaterThan(0);
    // Still a working node: an echo request through the same session is answered by b's stack.
    const echo = Uint8Array.from([8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4]);
    const out = settle(a.send([ipv4(1, echo, 0)]));
    const replies = out.a.filter(
      (o) =>
        o.kind === "packet" &&
        o.data[9] === 1 &&
        o.data[20] === 0 &&
        o.data[24] === 0x12 &&
        o.data[25] === 0x34,
    );
    expect(replies).toHaveLength(1);
    const stats = b.stats();
    expect(stats.peers[0]!.rx_bytes).toBeGreaterThan(0);
    expect(Object.values(stats.drops).every((n) => Number.isInteger(n) && n >= 0)).toBe(true);
  });

  it("datagrams that are not WireGuard: dropped and counted, never thrown", () => {
    const runs = fuzzRuns(500);
    const { b } = pair();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (d) => {
        for (const o of b.receive([{ data: d, endpoint: 1 }])) expect(o.kind).not.toBe("tcp-accepted");
      }),
      { numRuns: runs },
    );
    recordCases("bad input", "datagrams into WireGuard (WASM engine)", runs);
    const total = Object.values(b.stats().drops).reduce((n, x) => n + x, 0);
    expect(total).toBeGreaterThan(0);
  });

  it("any packet to a route served in userspace, answered or refused at random: no throw, and routing still works", () => {
    const runs = fuzzRuns(300);
    const { a, b, settle } = pair();
    a.upsertPeer({
      publicKey: b.publicKey,
      allowedIps: ["100.64.0.2/32", "fd7a:115c:a1e0::2/128", "10.9.0.0/24", "fd00:9::/64"],
      endpoint: 1,
    });
    b.setRoutes(["10.9.0.0/24", "fd00:9::/64"]);
    let forwarded = 0;
    /** Play the host: dial results, UDP and echo answers, each yes or no by `coin`. */
    const host = (outs: EngineOutput[], coin: () => boolean) => {
      for (const o of outs) {
        if (o.kind === "forward-tcp") {
          forwarded++;
          b.tcpDialResult(o.id, coin());
        } else if (o.kind === "forward-udp") {
          forwarded++;
          if (coin()) b.udpForwardReply(o.to, o.toPort, o.from, o.fromPort, o.data);
        } else if (o.kind === "forward-ping") {
          forwarded++;
          if (coin()) b.pingForwardReply(o.to, o.from, o.ident, o.seq, o.data);
        }
      }
    };
    fc.assert(
      fc.property(
        fc.array(packetsTo(LAN4, LAN6), { minLength: 1, maxLength: 8 }),
        fc.infiniteStream(fc.boolean()),
        (packets, coins) => {
          const it = coins[Symbol.iterator]();
          const coin = () => it.next().value as boolean;
          host(settle(a.send(packets)).b, coin);
          host(settle(a.poll()).b, coin);
          settle(a.poll());
        },
      ),
      { numRuns: runs },
    );
    recordCases("bad input", "IP packets to routes served in userspace (WASM engine)", runs);
    expect(forwarded).toBeGreaterThan(0);
    // Still routing: a SYN to the route gets a dial, and once it succeeds, a SYN-ACK from the route address.
    const syn = new Uint8Array(20);
    const dv = new DataView(syn.buffer);
    dv.setUint16(0, 40_001);
    dv.setUint16(2, 80);
    dv.setUint32(4, 1000);
    syn[12] = 5 << 4;
    syn[13] = 0x02;
    dv.setUint16(14, 65535);
    const asked = settle(a.send([ipv4(6, syn, 0, LAN4)])).b.find((o) => o.kind === "forward-tcp");
    expect(asked).toMatchObject({ toPort: 80, fromPort: 40_001 });
    expect(b.tcpDialResult((asked as { id: number }).id, true)).toBeGreaterThan(0);
    const synAck = settle([], b.poll()).a.find(
      (o) => o.kind === "packet" && o.data[9] === 6 && o.data[33] === 0x12 && o.data[15] === 5,
    );
    expect(synAck).toBeDefined();
  });
});
