// The engine's JS face on the Node build: two engines back to back, their
// datagrams carried in memory, a TCP echo and a ping through WireGuard, the
// packet filter and the userspace stack (the Rust tests cover the same path
// natively; this proves the record encoding both ways).
import { describe, expect, it } from "vitest";
import { WireGuardEngine, type EngineOutput } from "./node";

const ALLOW_ALL = JSON.stringify([
  { SrcIPs: ["*"], DstPorts: [{ IP: "*", Ports: { First: 0, Last: 65535 } }] },
]);
const v4 = (s: string) => Uint8Array.from(s.split(".").map(Number));

function pair() {
  const a = new WireGuardEngine(crypto.getRandomValues(new Uint8Array(32)), { stack: true });
  const b = new WireGuardEngine(crypto.getRandomValues(new Uint8Array(32)), { stack: true });
  a.upsertPeer({ publicKey: b.publicKey, allowedIps: ["100.64.0.2/32", "10.9.0.0/16"], endpoint: 1 });
  b.upsertPeer({ publicKey: a.publicKey, allowedIps: ["100.64.0.1/32"], endpoint: 1 });
  a.setAddresses(["100.64.0.1"]);
  b.setAddresses(["100.64.0.2"]);
  a.setFilter(ALLOW_ALL);
  b.setFilter(ALLOW_ALL);
  const events = { a: [] as EngineOutput[], b: [] as EngineOutput[] };
  /** Carry datagrams until both sides are quiet; keep every other output. */
  const settle = (fromA: EngineOutput[], fromB: EngineOutput[]) => {
    for (let i = 0; i < 10_000; i++) {
      const toB = fromA
        .filter((o) => o.kind === "datagram")
        .map((o) => ({ data: (o as { data: Uint8Array }).data.slice(), endpoint: 1 }));
      const toA = fromB
        .filter((o) => o.kind === "datagram")
        .map((o) => ({ data: (o as { data: Uint8Array }).data.slice(), endpoint: 1 }));
      events.a.push(...fromA.filter((o) => o.kind !== "datagram").map(copy));
      events.b.push(...fromB.filter((o) => o.kind !== "datagram").map(copy));
      if (toA.length + toB.length === 0) return;
      fromA = toA.length ? a.receive(toA) : [];
      fromB = toB.length ? b.receive(toB) : [];
    }
    throw new Error("never quiet");
  };
  const poll = () => settle(a.poll(), b.poll());
  return { a, b, events, settle, poll };
}

/** Outputs are views into a buffer the next call reuses: copy what is kept. */
function copy(o: EngineOutput): EngineOutput {
  const c = { ...o } as Record<string, unknown>;
  for (const k of ["data", "from", "to"]) if (c[k] instanceof Uint8Array) c[k] = (c[k] as Uint8Array).slice();
  return c as unknown as EngineOutput;
}

describe("WireGuardEngine", () => {
  it("carries a TCP echo and a ping through WireGuard, the filter and the stack", () => {
    const { a, b, events, poll } = pair();
    const listener = b.tcpListen(7);
    const conn = a.tcpConnect(v4("100.64.0.2"), 7);
    poll();
    expect(events.a).toContainEqual({ kind: "tcp-connected", handle: conn });
    const accepted = events.b.find((o) => o.kind === "tcp-accepted");
    expect(accepted).toMatchObject({ listener, from: v4("100.64.0.1") });
    const server = (accepted as { handle: number }).handle;
    expect(a.tcpSend(conn, new TextEncoder().encode("hello"))).toBe(5);
    poll();
    const got = events.b.filter((o) => o.kind === "tcp-data" && o.handle === server);
    expect(new TextDecoder().decode((got[0] as { data: Uint8Array }).data)).toBe("hello");
    const ident = a.ping(v4("100.64.0.2"), 9, new Uint8Array([1, 2, 3]));
    poll();
    expect(events.a).toContainEqual({ kind: "ping-reply", ident, from: v4("100.64.0.2"), seq: 9 });
    expect(a.stats()).toMatchObject({ flows: 1, sockets: 1 });
    a.tcpAbort(conn);
    poll();
    expect(events.b).toContainEqual({ kind: "tcp-closed", handle: server, reset: true });
  });

  it("accepts connections opened at once, their SYNs arriving in one batch (none refused)", () => {
    // A page fetching its script and its data over two new connections: the SYNs
    // reach the listening node in the same receive.
    const { a, b, events, poll } = pair();
    const listener = b.tcpListen(80);
    const conns = [0, 1, 2].map(() => a.tcpConnect(v4("100.64.0.2"), 80));
    poll();
    for (const handle of conns) expect(events.a).toContainEqual({ kind: "tcp-connected", handle });
    expect(events.a.filter((o) => o.kind === "tcp-closed")).toEqual([]);
    expect(events.b.filter((o) => o.kind === "tcp-accepted" && o.listener === listener)).toHaveLength(3);
  });

  it("drops and counts what the filter refuses", () => {
    const { a, b, events, poll } = pair();
    b.setFilter("[]");
    b.tcpListen(22);
    a.tcpConnect(v4("100.64.0.2"), 22);
    poll();
    expect(events.b).toContainEqual({ kind: "drop", reason: "filter_no_rule" });
    expect(b.stats().drops.filter_no_rule).toBe(1);
    expect(() => b.setFilter("{not json")).toThrow(/packet filter/);
  });

  it("serves a route: flows to its addresses come out as forward records, the host's answers go back", () => {
    const { a, b, events, poll } = pair();
    b.setRoutes(["10.9.0.0/24"]);
    const lan = v4("10.9.0.5");
    const conn = a.tcpConnect(lan, 80);
    const sock = a.udpBind(0);
    a.udpSend(sock, lan, 53, new TextEncoder().encode("query"));
    const ident = a.ping(lan, 4, new Uint8Array([9]));
    poll();
    const dial = events.b.find((o) => o.kind === "forward-tcp");
    expect(dial).toMatchObject({ from: v4("100.64.0.1"), to: lan, toPort: 80 });
    const udp = events.b.find((o) => o.kind === "forward-udp");
    expect(udp).toMatchObject({ from: v4("100.64.0.1"), to: lan, toPort: 53 });
    expect(new TextDecoder().decode((udp as { data: Uint8Array }).data)).toBe("query");
    const ping = events.b.find((o) => o.kind === "forward-ping");
    expect(ping).toMatchObject({ from: v4("100.64.0.1"), to: lan, ident, seq: 4, data: new Uint8Array([9]) });

    const handle = b.tcpDialResult((dial as { id: number }).id, true);
    expect(handle).toBeGreaterThan(0);
    const u = udp as { fromPort: number; toPort: number };
    b.udpForwardReply(lan, u.toPort, v4("100.64.0.1"), u.fromPort, new TextEncoder().encode("answer"));
    b.pingForwardReply(lan, v4("100.64.0.1"), ident, 4, new Uint8Array([9]));
    poll();
    expect(events.a).toContainEqual({ kind: "tcp-connected", handle: conn });
    expect(events.b).toContainEqual({ kind: "tcp-connected", handle });
    expect(events.a).toContainEqual({ kind: "ping-reply", ident, from: lan, seq: 4 });
    const answer = events.a.find((o) => o.kind === "udp");
    expect(answer).toMatchObject({ handle: sock, from: lan, port: 53 });
    expect(new TextDecoder().decode((answer as { data: Uint8Array }).data)).toBe("answer");
    // Addresses off the routes are nobody's.
    a.tcpConnect(v4("10.9.1.5"), 80);
    poll();
    expect(b.stats().drops.not_local).toBeGreaterThan(0);
  });
});
