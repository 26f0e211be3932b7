// The typed face of the WASM node engine (wasm/src/engine): the WireGuard
// device, the packet filter and the userspace TCP/IP stack in one module,
// shared by the browser and Node entry points (each injects its build).
// Every call returns what the host must do as one buffer of records
// (wasm/src/bindings.rs); the outputs here are views into it, not copies.
import type { DropReason, PeerConfig } from "./device";
import { concatBatch } from "./batch";

/** Why a packet was dropped after decryption (the engine's reasons; the device's are DropReason). */
export type EngineDropReason =
  "filter_no_rule" | "filter_malformed" | "not_local" | "stack_queue_full" | "forward_refused";

/** An address as the engine's socket API takes it: 4 or 16 network-order bytes. */
export type AddrBytes = Uint8Array;

export type EngineOutput =
  /** Send these bytes to this endpoint handle. */
  | { kind: "datagram"; endpoint: number; data: Uint8Array }
  /** An admitted IP packet for the host (an engine without a stack). */
  | { kind: "packet"; peer: number; data: Uint8Array }
  | { kind: "drop"; reason: DropReason | EngineDropReason }
  /** A connection this node opened is established. */
  | { kind: "tcp-connected"; handle: number }
  /** A listener accepted `handle` from `from:port`. */
  | { kind: "tcp-accepted"; handle: number; listener: number; from: AddrBytes; port: number }
  | { kind: "tcp-data"; handle: number; data: Uint8Array }
  /** The peer finished sending. */
  | { kind: "tcp-eof"; handle: number }
  /** Closed and released; `reset`: by reset, refusal or timeout rather than by both sides closing. */
  | { kind: "tcp-closed"; handle: number; reset: boolean }
  | { kind: "udp"; handle: number; from: AddrBytes; port: number; data: Uint8Array }
  | { kind: "ping-reply"; ident: number; from: AddrBytes; seq: number }
  /**
   * Userspace subnet routing (`setRoutes`): a client opened TCP to a route
   * address. Dial `to:toPort`, then answer with `tcpDialResult(id, ok)`.
   */
  | { kind: "forward-tcp"; id: number; from: AddrBytes; fromPort: number; to: AddrBytes; toPort: number }
  /** A UDP datagram to a route address; answers go back with `udpForwardReply`. */
  | {
      kind: "forward-udp";
      from: AddrBytes;
      fromPort: number;
      to: AddrBytes;
      toPort: number;
      data: Uint8Array;
    }
  /** An ICMP echo request to a route address; a reply goes back with `pingForwardReply`. */
  | { kind: "forward-ping"; from: AddrBytes; to: AddrBytes; ident: number; seq: number; data: Uint8Array };

export interface EngineStats {
  drops: Record<DropReason | EngineDropReason, number>;
  peers: {
    id: number;
    public_key: string;
    endpoint: number | null;
    rx_bytes: number;
    tx_bytes: number;
    handshakes: number;
    last_handshake_ms: number;
    has_session: boolean;
  }[];
  /** Flows this node opened that the filter tracks (their answers pass). */
  flows: number;
  sockets: number;
}

/** The wasm-bindgen class, as either build exposes it. */
export interface WgEngineBinding {
  public_key(): Uint8Array;
  upsert_peer(pub: Uint8Array, psk: Uint8Array, allowed: string, endpoint: number, keepalive: number): number;
  remove_peer(pub: Uint8Array): boolean;
  set_filter(json: string): void;
  set_addresses(addrs: string): void;
  receive_batch(datagrams: Uint8Array, lens: Uint32Array, endpoints: Uint32Array, now: number): Uint8Array;
  send_batch(packets: Uint8Array, lens: Uint32Array, now: number): Uint8Array;
  poll(now: number): Uint8Array;
  next_poll(now: number): number;
  tcp_connect(addr: Uint8Array, port: number): number;
  tcp_listen(port: number): number;
  tcp_send(handle: number, data: Uint8Array): number;
  tcp_pause(handle: number, paused: boolean): void;
  tcp_close(handle: number): void;
  tcp_abort(handle: number): void;
  udp_bind(port: number): number;
  udp_send(handle: number, addr: Uint8Array, port: number, data: Uint8Array): void;
  udp_close(handle: number): void;
  ping(addr: Uint8Array, seq: number, payload: Uint8Array): number;
  set_routes(prefixes: string): void;
  tcp_dial_result(id: number, ok: boolean, now: number): number;
  udp_forward_reply(
    from: Uint8Array,
    fromPort: number,
    to: Uint8Array,
    toPort: number,
    data: Uint8Array,
  ): void;
  ping_forward_reply(from: Uint8Array, to: Uint8Array, ident: number, seq: number, data: Uint8Array): void;
  stats_json(): string;
  free(): void;
}

export interface WgEngineClass {
  new (privateKey: Uint8Array, seed: Uint8Array, stack: boolean, now: number): WgEngineBinding;
}

const KIND_DATAGRAM = 1;
const KIND_PACKET = 2;
const KIND_DROP = 3;
const KIND_TCP = 4;
const KIND_UDP = 5;
const KIND_PING = 6;
const KIND_FORWARD = 7;

function decode(buf: Uint8Array, reason: (code: number) => DropReason | EngineDropReason): EngineOutput[] {
  const out: EngineOutput[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + 9 <= buf.length) {
    const kind = buf[off]!;
    const id = dv.getUint32(off + 1, true);
    const len = dv.getUint32(off + 5, true);
    const body = buf.subarray(off + 9, off + 9 + len);
    const at = off + 9;
    off += 9 + len;
    switch (kind) {
      case KIND_DATAGRAM:
        out.push({ kind: "datagram", endpoint: id, data: body });
        break;
      case KIND_PACKET:
        out.push({ kind: "packet", peer: id, data: body });
        break;
      case KIND_DROP:
        out.push({ kind: "drop", reason: reason(id) });
        break;
      case KIND_TCP:
        switch (body[0]) {
          case 1:
            out.push({ kind: "tcp-connected", handle: id });
            break;
          case 2:
            out.push({ kind: "tcp-data", handle: id, data: body.subarray(1) });
            break;
          case 3:
            out.push({ kind: "tcp-eof", handle: id });
            break;
          case 4:
            out.push({ kind: "tcp-closed", handle: id, reset: body[1] === 1 });
            break;
          case 5:
            out.push({
              kind: "tcp-accepted",
              handle: id,
              listener: dv.getUint32(at + 1, true),
              port: dv.getUint16(at + 5),
              from: body.subarray(7),
            });
            break;
        }
        break;
      case KIND_UDP: {
        const n = body[0]!;
        out.push({
          kind: "udp",
          handle: id,
          from: body.subarray(1, 1 + n),
          port: dv.getUint16(at + 1 + n),
          data: body.subarray(3 + n),
        });
        break;
      }
      case KIND_PING: {
        const n = body[0]!;
        out.push({
          kind: "ping-reply",
          ident: id,
          from: body.subarray(1, 1 + n),
          seq: dv.getUint16(at + 1 + n),
        });
        break;
      }
      case KIND_FORWARD: {
        const n = body[1]!;
        const from = body.subarray(2, 2 + n);
        const to = body.subarray(2 + n, 2 + 2 * n);
        const a = dv.getUint16(at + 2 + 2 * n);
        const b = dv.getUint16(at + 4 + 2 * n);
        const data = body.subarray(6 + 2 * n);
        if (body[0] === 1) out.push({ kind: "forward-tcp", id, from, fromPort: a, to, toPort: b });
        else if (body[0] === 2) out.push({ kind: "forward-udp", from, fromPort: a, to, toPort: b, data });
        else if (body[0] === 3) out.push({ kind: "forward-ping", from, to, ident: a, seq: b, data });
        break;
      }
    }
  }
  return out;
}

/**
 * The node engine: give it datagrams from paths (`receive`), socket calls,
 * and `poll` it when `nextPoll` says; carry out what comes back. Time is the
 * host's wall clock in milliseconds.
 */
export class WireGuardEngine {
  private readonly e: WgEngineBinding;

  /**
   * `Binding`: the class of a build (made here for this key), or an engine
   * already made elsewhere with the same calls (the gateway's native data
   * plane, gateway/dataplane), which then ignores `privateKey` and `opts`.
   */
  constructor(
    Binding: WgEngineClass | WgEngineBinding,
    private readonly reasonOf: (code: number) => string,
    privateKey: Uint8Array,
    opts: { stack: boolean; seed?: Uint8Array; now?: number },
  ) {
    this.e =
      typeof Binding === "function"
        ? new Binding(
            privateKey,
            opts.seed ?? globalThis.crypto.getRandomValues(new Uint8Array(32)),
            opts.stack,
            opts.now ?? Date.now(),
          )
        : Binding;
  }

  private readonly reasons = new Map<number, DropReason | EngineDropReason>();
  private reason = (code: number): DropReason | EngineDropReason => {
    let r = this.reasons.get(code);
    if (!r) {
      r = this.reasonOf(code) as DropReason | EngineDropReason;
      this.reasons.set(code, r);
    }
    return r;
  };

  get publicKey(): Uint8Array {
    return this.e.public_key();
  }

  upsertPeer(cfg: PeerConfig): number {
    return this.e.upsert_peer(
      cfg.publicKey,
      cfg.presharedKey ?? new Uint8Array(0),
      cfg.allowedIps.join(","),
      cfg.endpoint ?? -1,
      cfg.persistentKeepalive ?? 0,
    );
  }

  removePeer(publicKey: Uint8Array): boolean {
    return this.e.remove_peer(publicKey);
  }

  /** The packet filter: this node's `FilterRule`s from the netmap, as JSON text. */
  setFilter(rulesJson: string): void {
    this.e.set_filter(rulesJson);
  }

  /** This node's own addresses (CIDR or bare). */
  setAddresses(addrs: readonly string[]): void {
    this.e.set_addresses(addrs.join(","));
  }

  /** Datagrams from paths, in one crossing. */
  receive(items: readonly { data: Uint8Array; endpoint: number }[], now = Date.now()): EngineOutput[] {
    const { buf, lens } = concatBatch(items.map((i) => i.data));
    return decode(
      this.e.receive_batch(
        buf,
        lens,
        Uint32Array.from(items, (i) => i.endpoint),
        now,
      ),
      this.reason,
    );
  }

  /** IP packets from the host (a TUN device), in one crossing. */
  send(packets: readonly Uint8Array[], now = Date.now()): EngineOutput[] {
    const { buf, lens } = concatBatch(packets);
    return decode(this.e.send_batch(buf, lens, now), this.reason);
  }

  poll(now = Date.now()): EngineOutput[] {
    return decode(this.e.poll(now), this.reason);
  }

  nextPoll(now = Date.now()): number {
    return this.e.next_poll(now);
  }

  tcpConnect(addr: AddrBytes, port: number): number {
    return this.e.tcp_connect(addr, port);
  }

  tcpListen(port: number): number {
    return this.e.tcp_listen(port);
  }

  /** Queue bytes; returns how many fit (the rest: try again after a poll). */
  tcpSend(handle: number, data: Uint8Array): number {
    return this.e.tcp_send(handle, data);
  }

  tcpPause(handle: number, paused: boolean): void {
    this.e.tcp_pause(handle, paused);
  }

  tcpClose(handle: number): void {
    this.e.tcp_close(handle);
  }

  tcpAbort(handle: number): void {
    this.e.tcp_abort(handle);
  }

  udpBind(port = 0): number {
    return this.e.udp_bind(port);
  }

  udpSend(handle: number, addr: AddrBytes, port: number, data: Uint8Array): void {
    this.e.udp_send(handle, addr, port, data);
  }

  udpClose(handle: number): void {
    this.e.udp_close(handle);
  }

  /** Send an ICMP echo request; returns the identifier its reply carries. */
  ping(addr: AddrBytes, seq: number, payload: Uint8Array = new Uint8Array(0)): number {
    return this.e.ping(addr, seq, payload);
  }

  /** Subnet routes to serve through the userspace stack (CIDR prefixes; empty: none). */
  setRoutes(prefixes: readonly string[]): void {
    this.e.set_routes(prefixes.join(","));
  }

  /**
   * The answer to a `forward-tcp` output: the connection's handle when `ok`
   * (it reports `tcp-connected` or `tcp-closed` like one from `tcpConnect`),
   * or 0 (the client was sent a reset). Poll after.
   */
  tcpDialResult(id: number, ok: boolean, now = Date.now()): number {
    return this.e.tcp_dial_result(id, ok, now);
  }

  /** A target's answer to a `forward-udp` output (from the route address to the client). Poll after. */
  udpForwardReply(from: AddrBytes, fromPort: number, to: AddrBytes, toPort: number, data: Uint8Array): void {
    this.e.udp_forward_reply(from, fromPort, to, toPort, data);
  }

  /** A target answered a `forward-ping` output. Poll after. */
  pingForwardReply(from: AddrBytes, to: AddrBytes, ident: number, seq: number, data: Uint8Array): void {
    this.e.ping_forward_reply(from, to, ident, seq, data);
  }

  stats(): EngineStats {
    return JSON.parse(this.e.stats_json()) as EngineStats;
  }

  /** Release the WASM memory (and erase keys). */
  close(): void {
    this.e.free();
  }
}
