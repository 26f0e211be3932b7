// The typed face of the WASM WireGuard device, shared by the browser and Node
// entry points (each injects its wasm-bindgen build). Results of a call come
// back as one buffer of records (see wasm/src/bindings.rs); the outputs
// returned here are views into it, not copies.
import { concatBatch } from "./batch";

/** Why the device dropped a packet (counted in `stats().drops`). */
export type DropReason =
  | "truncated"
  | "oversized"
  | "bad_type"
  | "bad_mac1"
  | "cookie_required"
  | "rate_limited"
  | "unknown_key"
  | "unknown_index"
  | "decrypt_failed"
  | "replay"
  | "counter_out_of_window"
  | "stale_timestamp"
  | "handshake_flood"
  | "allowed_ips"
  | "expired_session"
  | "no_route"
  | "bad_packet"
  | "no_endpoint"
  | "staged_dropped"
  | "unexpected_response";

/** What the host must do after a call. */
export type WgOutput =
  | { kind: "datagram"; endpoint: number; data: Uint8Array }
  | { kind: "packet"; peer: number; data: Uint8Array }
  | { kind: "drop"; reason: DropReason };

export interface PeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  /** CIDRs whose inner addresses belong to this peer (cryptokey routing). */
  allowedIps: string[];
  /** Endpoint handle: the host's name for where to send (an address, a data channel, a relay path). */
  endpoint?: number;
  /** Seconds; 0 or absent for none. */
  persistentKeepalive?: number;
}

export interface PeerStats {
  id: number;
  public_key: string;
  endpoint: number | null;
  rx_bytes: number;
  tx_bytes: number;
  handshakes: number;
  last_handshake_ms: number;
  has_session: boolean;
}

export interface DeviceStats {
  drops: Record<DropReason, number>;
  peers: PeerStats[];
}

/** The wasm-bindgen class, as either build exposes it. */
export interface WgDeviceBinding {
  public_key(): Uint8Array;
  upsert_peer(pub: Uint8Array, psk: Uint8Array, allowed: string, endpoint: number, keepalive: number): number;
  remove_peer(pub: Uint8Array): boolean;
  set_endpoint(pub: Uint8Array, endpoint: number): boolean;
  set_under_load(on: boolean): void;
  send(packet: Uint8Array, now: number): Uint8Array;
  send_batch(packets: Uint8Array, lens: Uint32Array, now: number): Uint8Array;
  receive(datagram: Uint8Array, endpoint: number, now: number): Uint8Array;
  receive_batch(datagrams: Uint8Array, lens: Uint32Array, endpoints: Uint32Array, now: number): Uint8Array;
  tick(now: number): Uint8Array;
  stats_json(): string;
  free(): void;
}

export interface WgDeviceClass {
  new (privateKey: Uint8Array, seed: Uint8Array): WgDeviceBinding;
  drop_reason_name(code: number): string;
}

function decode(buf: Uint8Array, reasons: (code: number) => DropReason): WgOutput[] {
  const out: WgOutput[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + 9 <= buf.length) {
    const kind = buf[off]!;
    const id = dv.getUint32(off + 1, true);
    const len = dv.getUint32(off + 5, true);
    const data = buf.subarray(off + 9, off + 9 + len);
    off += 9 + len;
    if (kind === 1) out.push({ kind: "datagram", endpoint: id, data });
    else if (kind === 2) out.push({ kind: "packet", peer: id, data });
    else out.push({ kind: "drop", reason: reasons(id) });
  }
  return out;
}

/**
 * A WireGuard device: give it IP packets to `send` and datagrams to
 * `receive`, call `tick` a few times a second, and carry out the outputs.
 * Time is the host's wall clock in milliseconds (`Date.now()` by default).
 */
export class WireGuardDevice {
  private readonly dev: WgDeviceBinding;
  private readonly reasonCache = new Map<number, DropReason>();

  constructor(
    private readonly Binding: WgDeviceClass,
    privateKey: Uint8Array,
    seed: Uint8Array = globalThis.crypto.getRandomValues(new Uint8Array(32)),
  ) {
    this.dev = new Binding(privateKey, seed);
  }

  private reason = (code: number): DropReason => {
    let r = this.reasonCache.get(code);
    if (!r) {
      r = this.Binding.drop_reason_name(code) as DropReason;
      this.reasonCache.set(code, r);
    }
    return r;
  };

  get publicKey(): Uint8Array {
    return this.dev.public_key();
  }

  /** Add or update a peer; returns its id (the `peer` of packet outputs). */
  upsertPeer(cfg: PeerConfig): number {
    return this.dev.upsert_peer(
      cfg.publicKey,
      cfg.presharedKey ?? new Uint8Array(0),
      cfg.allowedIps.join(","),
      cfg.endpoint ?? -1,
      cfg.persistentKeepalive ?? 0,
    );
  }

  removePeer(publicKey: Uint8Array): boolean {
    return this.dev.remove_peer(publicKey);
  }

  setEndpoint(publicKey: Uint8Array, endpoint: number): boolean {
    return this.dev.set_endpoint(publicKey, endpoint);
  }

  /** Answer every handshake with a cookie reply unless it carries a valid mac2. */
  setUnderLoad(on: boolean): void {
    this.dev.set_under_load(on);
  }

  send(packet: Uint8Array, now = Date.now()): WgOutput[] {
    return decode(this.dev.send(packet, now), this.reason);
  }

  /** Many packets in one crossing into WASM. */
  sendBatch(packets: Uint8Array[], now = Date.now()): WgOutput[] {
    const { buf, lens } = concatBatch(packets);
    return decode(this.dev.send_batch(buf, lens, now), this.reason);
  }

  receive(datagram: Uint8Array, endpoint: number, now = Date.now()): WgOutput[] {
    return decode(this.dev.receive(datagram, endpoint, now), this.reason);
  }

  /** Many datagrams in one crossing into WASM. */
  receiveBatch(items: { data: Uint8Array; endpoint: number }[], now = Date.now()): WgOutput[] {
    const { buf, lens } = concatBatch(items.map((i) => i.data));
    const endpoints = Uint32Array.from(items, (i) => i.endpoint);
    return decode(this.dev.receive_batch(buf, lens, endpoints, now), this.reason);
  }

  tick(now = Date.now()): WgOutput[] {
    return decode(this.dev.tick(now), this.reason);
  }

  stats(): DeviceStats {
    return JSON.parse(this.dev.stats_json()) as DeviceStats;
  }

  /** Release the WASM memory (and erase keys). */
  close(): void {
    this.dev.free();
  }
}
