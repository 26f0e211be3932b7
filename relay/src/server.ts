import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Logger } from "@trellis/log";
import { encodeKey } from "@trellis/proto";
import type { KeyPair } from "@trellis/proto/keyfile";
import {
  FRAME_HEADER_LEN,
  FrameError,
  FrameReader,
  FrameType,
  KEY_LEN,
  MAX_INFO_LEN,
  MAX_PACKET_SIZE,
  MAX_FRAME_SIZE,
  NONCE_LEN,
  PROTOCOL_VERSION,
  PeerGoneReason,
  PeerPresentFlags,
  encodeFrame,
  serverKeyFrame,
  openBox,
  sealBox,
} from "@trellis/client/derp";
import { handshakeKey, HandshakeSlots, LoginReplays, NONCE_TAG_LEN } from "./admission";
import { RelayMetrics } from "./metrics";
import { addr16, parseSocketAddr } from "@trellis/proto/ip";

/**
 * A byte-stream connection to one client, whatever carries it (a WebSocket or
 * an upgraded HTTP connection). `write` is given whole frames, often many at
 * once (what handling one read produced for this client), and calls
 * `done` once the bytes have left for the socket, which is how the relay
 * measures what is in flight.
 */
export interface RelayConn {
  write(data: Uint8Array, done: () => void): void;
  close(reason: string): void;
  /** Remote address as seen by the relay, for PeerPresent and logs. */
  remote: { ip: string; port: number };
}

/** What the transport feeds back to the relay for one connection. */
export interface ConnHandle {
  data(chunk: Uint8Array): void;
  closed(): void;
}

/**
 * Decides which node keys may use the relay (verify-clients): one answer per
 * key, in order. Asked with one key when a client logs in, and with every
 * connected key (in batches) when the relay is told to revalidate.
 */
export type ClientVerifier = (nodeKeys: Uint8Array[]) => Promise<boolean[]>;

/** Most keys in one question to the verifier. */
export const VERIFY_BATCH = 1000;

export interface RelayLimits {
  /** Refuse connections beyond this many (handshaking ones included). */
  maxConnections: number;
  /**
   * Refuse a client address more connections still in the handshake than
   * this (IPv6: per /64; 0: no bound), so one address cannot hold the
   * connection slots with logins it never finishes.
   */
  maxHandshakesPerIp: number;
  /** How long the nonce of an accepted login is remembered, so a replay of its ClientInfo frame is refused. */
  loginReplayWindowMs: number;
  /** Login nonces remembered per client key (its most recent logins), and in all. */
  loginReplaysPerKey: number;
  loginReplaysMax: number;
  /** Frames a client may have queued before the oldest is dropped. */
  sendQueueDepth: number;
  /** Bytes handed to a client's socket and not yet written before the relay queues instead. */
  maxInFlightBytes: number;
  /** Per-client token bucket for packets it sends, bytes per second (0: unlimited). */
  rateBytesPerSec: number;
  rateBurstBytes: number;
  /** Close connections that have not finished the handshake by then. */
  handshakeTimeoutMs: number;
  /** Server keepalive/ping interval. */
  keepAliveMs: number;
  /** Close a client that acks pings but has sent nothing for this long. */
  idleTimeoutMs: number;
}

export const DEFAULT_LIMITS: RelayLimits = {
  maxConnections: 10_000,
  maxHandshakesPerIp: 32,
  loginReplayWindowMs: 24 * 3600_000,
  loginReplaysPerKey: 256,
  // ~100 bytes a pair (~200 when each is another key's): 10–20 MB at most.
  loginReplaysMax: 100_000,
  sendQueueDepth: 32,
  maxInFlightBytes: 256 * 1024,
  // Advertised in ServerInfo, where Tailscale's client enforces it itself,
  // dropping what exceeds it before sending: so it sits above what one relay
  // process carries in all (up to ~420 MB/s of 1,200-byte packets on a
  // 2-core machine, ~270 MB/s in one flow), never below one fast flow.
  rateBytesPerSec: 1024 * 1024 * 1024,
  rateBurstBytes: 64 * 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  keepAliveMs: 60_000,
  idleTimeoutMs: 150_000,
};

export interface RelayOptions {
  key: KeyPair;
  log: Logger;
  /** Shared secret of the relays of one mesh (hex, 64 digits); mesh peers present it in their client info. */
  meshKey?: string;
  /** Admit only node keys this accepts; unset admits every key that proves possession. */
  verifyClient?: ClientVerifier;
  limits?: Partial<RelayLimits>;
  metrics?: RelayMetrics;
  /** Milliseconds clock of the token buckets (tests freeze it); Date.now by default. */
  clock?: () => number;
}

interface ClientInfo {
  version?: number;
  meshKey?: string;
  canAckPings?: boolean;
  isProber?: boolean;
}

/** One connected, authenticated client. */
class Client {
  readonly hex: string;
  readonly queue: Uint8Array[] = [];
  /** Bytes counted in flight: in `out` (written once the current read is handled) or handed to the socket. */
  inFlight = 0;
  /** Frames gathered while handling the current read, written as one buffer at its end. */
  out: Buffer | null = null;
  outLen = 0;
  /** Size of the last write: the next buffer starts this big, so a busy client rarely grows one. */
  outHint = 0;
  dirty = false;
  lastHeard = Date.now();
  tokens: number;
  tokensAt: number;
  preferred = false;
  watching = false;
  closed = false;
  /** Keys this client has sent to, so they hear PeerGone when it leaves (bounded). */
  readonly sentTo = new Set<string>();
  /** Destinations already told NotHere, so a sender is not flooded (bounded). */
  readonly toldNotHere = new Set<string>();
  pingOutstanding: Uint8Array | null = null;

  constructor(
    readonly key: Uint8Array,
    readonly conn: RelayConn,
    readonly info: ClientInfo,
    readonly isMesh: boolean,
    burst: number,
    now: number,
  ) {
    this.hex = Buffer.from(key).toString("hex");
    this.tokens = burst;
    this.tokensAt = now;
  }
}

/** Where a key lives when it is not connected here: a mesh peer that reported it. */
export interface MeshRoute {
  forward(src: Uint8Array, dst: Uint8Array, packet: Uint8Array): boolean;
}

const SET_BOUND = 4096;
const EMPTY = new Uint8Array(0);
/** Frames a connection may send while its login is still being verified; more are dropped. */
export const HANDSHAKE_HOLD_FRAMES = 64;
/** Smallest buffer a client's gathered frames start in. */
const OUT_MIN = 2 * 1024;

function boundedAdd(set: Set<string>, v: string): void {
  if (set.size >= SET_BOUND && !set.has(v)) {
    const first = set.values().next().value;
    if (first !== undefined) set.delete(first);
  }
  set.add(v);
}

/** A key as the hex string clients are filed under, read in place (no copy: this runs per packet). */
function keyHex(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.length).toString("hex");
}

/** A socket's remote address as DERP's 16 bytes (IPv4 mapped); zeros when it is not an address. */
function ipBytes(ip: string): Uint8Array {
  const a = parseSocketAddr(ip);
  return a ? addr16(a) : new Uint8Array(16);
}

/**
 * The DERP relay: clients prove they hold their node key, then send packets
 * addressed by public key; the relay hands each to the recipient connected
 * here, or to the mesh peer that has it. It never sees inside the packets.
 */
export class RelayServer {
  readonly metrics: RelayMetrics;
  private readonly limits: RelayLimits;
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly key: KeyPair;
  private readonly meshKey: Buffer | null;
  private readonly verify: ClientVerifier | undefined;
  private readonly clients = new Map<string, Client>();
  private readonly watchers = new Set<Client>();
  private readonly meshRoutes = new Map<string, MeshRoute>();
  private connections = 0;
  /** Connections still in the handshake, per client address. */
  private readonly handshakes: HandshakeSlots;
  /** Nonces of recent logins: a ClientInfo frame seen before is a replay. */
  private readonly replays: LoginReplays;
  /** Logins being verified (key and nonce tag): the same frame again meanwhile is a replay too. */
  private readonly verifying = new Set<string>();
  private stopped = false;
  /** Clients with frames gathered and not yet written, and whether a write is scheduled. */
  private readonly dirty: Client[] = [];
  private flushScheduled = false;
  /** Packets and bytes delivered since the last write, added to the counters then. */
  private readonly counted = { local: 0, localBytes: 0, mesh_in: 0, mesh_inBytes: 0 };
  private readonly timer: NodeJS.Timeout;

  constructor(opts: RelayOptions) {
    this.key = opts.key;
    this.log = opts.log;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.clock = opts.clock ?? Date.now;
    this.metrics = opts.metrics ?? new RelayMetrics();
    this.verify = opts.verifyClient;
    if (opts.meshKey !== undefined && !/^[0-9a-f]{64}$/.test(opts.meshKey)) {
      throw new Error("mesh key must be 64 lowercase hex digits");
    }
    this.meshKey = opts.meshKey ? Buffer.from(opts.meshKey, "hex") : null;
    this.handshakes = new HandshakeSlots(this.limits.maxHandshakesPerIp);
    this.replays = new LoginReplays({
      windowMs: this.limits.loginReplayWindowMs,
      perKey: this.limits.loginReplaysPerKey,
      max: this.limits.loginReplaysMax,
    });
    this.timer = setInterval(() => this.tick(), Math.min(this.limits.keepAliveMs, 5_000));
    this.timer.unref();
  }

  get publicKey(): Uint8Array {
    return this.key.publicKey;
  }

  /** Number of open connections (handshaking or authenticated). */
  get connectionCount(): number {
    return this.connections;
  }

  /** Whether a key is connected here. */
  has(key: Uint8Array): boolean {
    return this.clients.has(Buffer.from(key).toString("hex"));
  }

  /**
   * Ask the verifier again about every connected node and drop those it now
   * refuses (deleted, expired, rotated away, approval withdrawn): their peers
   * get PeerGone at once. Returns how many were dropped. Overlapping calls
   * share one pass.
   */
  revalidate(): Promise<number> {
    if (!this.verify) return Promise.resolve(0);
    this.revalidation ??= this.recheck().finally(() => (this.revalidation = null));
    return this.revalidation;
  }

  private revalidation: Promise<number> | null = null;

  private async recheck(): Promise<number> {
    const clients = [...this.clients.values()].filter((c) => !c.isMesh);
    let dropped = 0;
    for (let i = 0; i < clients.length; i += VERIFY_BATCH) {
      const batch = clients.slice(i, i + VERIFY_BATCH);
      let allowed: boolean[];
      try {
        allowed = await this.verify!(batch.map((c) => c.key));
      } catch (err) {
        // Unable to ask is not a refusal: who is connected stays until the next check.
        this.log.warn({ err }, "relay could not revalidate its clients");
        continue;
      }
      batch.forEach((c, j) => {
        if (allowed[j] === true || c.closed || this.clients.get(c.hex) !== c) return;
        this.log.info({ key: encodeKey("nodekey", c.key) }, "relay dropped a node no longer admitted");
        this.metrics.connections.inc({ outcome: "revoked" });
        this.send(
          c,
          encodeFrame(FrameType.Health, new TextEncoder().encode("this node is no longer admitted")),
        );
        this.remove(c);
        this.closeConn(c, "no longer admitted");
        dropped++;
      });
    }
    return dropped;
  }

  /** Number of authenticated clients. */
  get clientCount(): number {
    return this.clients.size;
  }

  /** Can another connection be accepted right now? */
  canAccept(): boolean {
    return !this.stopped && this.connections < this.limits.maxConnections;
  }

  /** Connections still in the handshake. */
  get handshakeCount(): number {
    return this.handshakes.size;
  }

  /**
   * Whether a new connection from client address `ip` may start: null, or
   * why not (counted in `trellis_relay_connections_total` by outcome):
   * `refused_full` (the relay is full or stopping) or
   * `refused_handshakes_per_ip` (that address has too many logins under way).
   */
  refusal(ip: string): "refused_full" | "refused_handshakes_per_ip" | null {
    const why = !this.canAccept()
      ? "refused_full"
      : !this.handshakes.hasRoom(handshakeKey(ip))
        ? "refused_handshakes_per_ip"
        : null;
    if (why) this.metrics.connections.inc({ outcome: why });
    return why;
  }

  /**
   * Start the protocol on a new connection: send the server key, then expect
   * the client's sealed info. The transport feeds bytes to the returned handle.
   * `ip` is the client address its handshake counts under (the connection's
   * remote address by default).
   */
  accept(conn: RelayConn, opts: { skipServerKey?: boolean; ip?: string } = {}): ConnHandle {
    this.connections++;
    const slot = handshakeKey(opts.ip ?? conn.remote.ip);
    this.handshakes.take(slot);
    this.metrics.handshakes.set(this.handshakes.size);
    let handshaking = true;
    const handshakeOver = () => {
      if (!handshaking) return;
      handshaking = false;
      this.handshakes.give(slot);
      this.metrics.handshakes.set(this.handshakes.size);
    };
    const parser = new FrameReader(MAX_INFO_LEN);
    let client: Client | null = null;
    /** Before the client info arrives: "info"; while it is verified: frames held (copies), in order. */
    let phase: "info" | "verifying" | "open" = "info";
    const held: { type: number; payload: Uint8Array }[] = [];
    let done = false;
    const finish = (reason: string) => {
      if (done) return;
      done = true;
      clearTimeout(handshakeTimer);
      handshakeOver();
      this.connections--;
      if (client) this.remove(client);
      conn.close(reason);
    };
    const handshakeTimer = setTimeout(() => {
      if (phase !== "open") {
        this.metrics.connections.inc({ outcome: "handshake_timeout" });
        finish("handshake timeout");
      }
    }, this.limits.handshakeTimeoutMs);
    handshakeTimer.unref();

    if (!opts.skipServerKey) conn.write(serverKeyFrame(this.key.publicKey), () => {});

    const login = async (info: Uint8Array): Promise<void> => {
      const c = await this.handshake(conn, info);
      if (done) return;
      if (!c) {
        finish("handshake refused");
        return;
      }
      client = c;
      phase = "open";
      parser.setMaxPayload(MAX_FRAME_SIZE);
      clearTimeout(handshakeTimer);
      handshakeOver();
      // What arrived while the login was verified, in order.
      for (const f of held.splice(0)) {
        if (done) return;
        this.onClientFrame(c, f.type, f.payload);
      }
    };

    // Frames from one connection are handled strictly in order and, once
    // logged in, synchronously as they are parsed: a payload is a view into
    // the bytes read and lives only as long as that call.
    const onFrame = (type: number, payload: Uint8Array): void => {
      if (done) return;
      if (phase === "open") {
        this.onClientFrame(client!, type, payload);
        return;
      }
      if (phase === "verifying") {
        if (held.length >= HANDSHAKE_HOLD_FRAMES) {
          this.metrics.drop("queue_full");
          return;
        }
        held.push({ type, payload: payload.slice() });
        return;
      }
      phase = "verifying";
      // The only frame allowed to be large: its limit drops back once it is read.
      parser.setMaxPayload(MAX_FRAME_SIZE);
      login(type === FrameType.ClientInfo ? payload.slice() : new Uint8Array(0)).catch((err: unknown) => {
        this.log.warn({ err }, "relay connection failed");
        finish(err instanceof Error ? err.message : "error");
      });
    };
    return {
      data: (chunk) => {
        if (done) return;
        if (client) client.lastHeard = Date.now();
        try {
          parser.read(chunk, onFrame);
          this.flushPending();
        } catch (err) {
          if (err instanceof FrameError) {
            this.metrics.connections.inc({ outcome: "bad_frame" });
            finish(err.message);
            return;
          }
          this.log.warn({ err }, "relay connection failed");
          finish(err instanceof Error ? err.message : "error");
        }
      },
      closed: () => finish("closed by peer"),
    };
  }

  /** Check a client's info frame (`info` is its payload; empty when the first frame was another). */
  private async handshake(conn: RelayConn, info0: Uint8Array): Promise<Client | null> {
    if (info0.length < KEY_LEN + NONCE_LEN + 16) {
      this.metrics.connections.inc({ outcome: "bad_client_info" });
      return null;
    }
    const key = info0.slice(0, KEY_LEN);
    const opened = openBox(info0.subarray(KEY_LEN), this.key.privateKey, key);
    if (!opened) {
      // Only the holder of the private key can seal to the server this way.
      this.metrics.connections.inc({ outcome: "bad_proof" });
      return null;
    }
    // The box's nonce is random per login: one seen before is this frame
    // replayed (DERP has no server challenge; see admission.ts). It is
    // refused before it could replace the connection that logged in with it.
    const keyId = Buffer.from(key).toString("latin1");
    const tag = Buffer.from(info0.buffer, info0.byteOffset + KEY_LEN, NONCE_TAG_LEN).toString("latin1");
    const pending = keyId + tag;
    if (this.verifying.has(pending) || this.replays.seen(keyId, tag, Date.now())) {
      this.metrics.connections.inc({ outcome: "replayed_client_info" });
      this.log.warn(
        { key: encodeKey("nodekey", key), remote: conn.remote.ip },
        "relay refused a replayed login (a ClientInfo frame it has accepted before)",
      );
      return null;
    }
    this.verifying.add(pending);
    try {
      return await this.login(conn, key, opened, () => this.replays.remember(keyId, tag, Date.now()));
    } finally {
      this.verifying.delete(pending);
    }
  }

  /**
   * The rest of a login whose ClientInfo opened and is no replay. Only a
   * login the verifier admits is remembered (admission.ts), so keys it
   * refuses take no memory.
   */
  private async login(
    conn: RelayConn,
    key: Uint8Array,
    opened: Uint8Array,
    remember: () => void,
  ): Promise<Client | null> {
    let info: ClientInfo;
    try {
      const parsed = JSON.parse(new TextDecoder().decode(opened)) as unknown;
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error();
      info = parsed as ClientInfo;
    } catch {
      this.metrics.connections.inc({ outcome: "bad_client_info" });
      return null;
    }
    const isMesh = this.checkMeshKey(info.meshKey);
    if (info.meshKey !== undefined && info.meshKey !== "" && !isMesh) {
      this.metrics.connections.inc({ outcome: "bad_mesh_key" });
      return null;
    }
    if (!isMesh && this.verify && (await this.verify([key]))[0] !== true) {
      this.metrics.connections.inc({ outcome: "unknown_key" });
      this.log.info({ key: encodeKey("nodekey", key) }, "relay refused an unknown node key");
      return null;
    }
    if (this.stopped) return null;
    remember();
    const client = new Client(key, conn, info, isMesh, this.limits.rateBurstBytes, this.clock());
    const serverInfo = JSON.stringify({
      version: PROTOCOL_VERSION,
      tokenBucketBytesPerSecond: this.limits.rateBytesPerSec,
      tokenBucketBytesBurst: this.limits.rateBurstBytes,
    });
    conn.write(
      encodeFrame(
        FrameType.ServerInfo,
        sealBox(new TextEncoder().encode(serverInfo), this.key.privateKey, key),
      ),
      () => {},
    );
    this.add(client);
    this.metrics.connections.inc({ outcome: "accepted" });
    return client;
  }

  private checkMeshKey(given: unknown): boolean {
    if (!this.meshKey || typeof given !== "string" || !/^[0-9a-f]{64}$/.test(given)) return false;
    return timingSafeEqual(this.meshKey, Buffer.from(given, "hex"));
  }

  private add(client: Client): void {
    const old = this.clients.get(client.hex);
    if (old) {
      // The newest connection for a key wins; the old one learns why it lost.
      this.send(
        old,
        encodeFrame(FrameType.Health, new TextEncoder().encode("replaced by a newer connection")),
      );
      old.closed = true;
      this.clients.delete(old.hex);
      this.watchers.delete(old);
      this.closeConn(old, "replaced by a newer connection");
    }
    this.clients.set(client.hex, client);
    this.updateClientGauge();
    if (!client.isMesh) this.notifyWatchers(client, true);
  }

  private remove(client: Client): void {
    if (client.closed) return;
    client.closed = true;
    this.watchers.delete(client);
    if (this.clients.get(client.hex) !== client) return;
    this.clients.delete(client.hex);
    this.metrics.queued.dec(client.queue.length);
    client.queue.length = 0;
    this.updateClientGauge();
    if (client.isMesh) return;
    this.notifyWatchers(client, false);
    const gone = encodeFrame(FrameType.PeerGone, client.key, new Uint8Array([PeerGoneReason.Disconnected]));
    for (const hex of client.sentTo) {
      const peer = this.clients.get(hex);
      if (peer) this.send(peer, gone);
    }
  }

  private updateClientGauge(): void {
    let mesh = 0;
    for (const c of this.clients.values()) if (c.isMesh) mesh++;
    this.metrics.clients.set({ kind: "node" }, this.clients.size - mesh);
    this.metrics.clients.set({ kind: "mesh" }, mesh);
  }

  private peerPresentFrame(c: Client): Uint8Array {
    const ipport = new Uint8Array(18);
    ipport.set(ipBytes(c.conn.remote.ip));
    ipport[16] = c.conn.remote.port >> 8;
    ipport[17] = c.conn.remote.port & 0xff;
    const flags = c.info.isProber ? PeerPresentFlags.IsProber : PeerPresentFlags.IsRegular;
    return encodeFrame(FrameType.PeerPresent, c.key, ipport, new Uint8Array([flags]));
  }

  private notifyWatchers(c: Client, present: boolean): void {
    if (this.watchers.size === 0) return;
    const frame = present
      ? this.peerPresentFrame(c)
      : encodeFrame(FrameType.PeerGone, c.key, new Uint8Array([PeerGoneReason.Disconnected]));
    for (const w of this.watchers) this.send(w, frame);
  }

  /** One frame from a logged-in client; `p` lives only during this call. */
  private onClientFrame(c: Client, type: number, p: Uint8Array): void {
    switch (type) {
      case FrameType.SendPacket:
        if (p.length < KEY_LEN) return this.protocolError(c, "short send-packet frame");
        this.route(c, p.subarray(0, KEY_LEN), p.subarray(KEY_LEN));
        return;
      case FrameType.ForwardPacket: {
        if (!c.isMesh) return this.protocolError(c, "forward-packet needs the mesh key");
        if (p.length < 2 * KEY_LEN) return this.protocolError(c, "short forward-packet frame");
        // One hop only: a forwarded packet is delivered here or dropped.
        const dst = this.clients.get(keyHex(p.subarray(KEY_LEN, 2 * KEY_LEN)));
        const packet = p.subarray(2 * KEY_LEN);
        if (!dst || dst.isMesh) {
          this.metrics.drop("unknown_dest");
          return;
        }
        this.deliver(dst, p.subarray(0, KEY_LEN), packet, "mesh_in");
        return;
      }
      case FrameType.KeepAlive:
        return;
      case FrameType.NotePreferred:
        c.preferred = p[0] === 1;
        return;
      case FrameType.Ping:
        if (p.length !== 8) return this.protocolError(c, "ping payload must be 8 bytes");
        this.send(c, encodeFrame(FrameType.Pong, p));
        return;
      case FrameType.Pong:
        c.pingOutstanding = null;
        return;
      case FrameType.WatchConns:
        if (!c.isMesh) return this.protocolError(c, "watch-connections needs the mesh key");
        c.watching = true;
        this.watchers.add(c);
        for (const other of this.clients.values()) {
          if (!other.isMesh) this.send(c, this.peerPresentFrame(other));
        }
        return;
      case FrameType.ClosePeer: {
        if (!c.isMesh) return this.protocolError(c, "close-peer needs the mesh key");
        if (p.length !== KEY_LEN) return this.protocolError(c, "close-peer payload must be a key");
        const target = this.clients.get(Buffer.from(p).toString("hex"));
        if (target && !target.isMesh) this.closeConn(target, "closed by mesh peer");
        return;
      }
      default:
        // Unknown frame types are skipped, as the protocol allows for additions.
        return;
    }
  }

  private protocolError(c: Client, reason: string): void {
    this.metrics.connections.inc({ outcome: "protocol_error" });
    this.closeConn(c, reason);
  }

  private takeTokens(c: Client, n: number): boolean {
    if (this.limits.rateBytesPerSec <= 0) return true;
    const now = this.clock();
    c.tokens = Math.min(
      this.limits.rateBurstBytes,
      c.tokens + ((now - c.tokensAt) / 1000) * this.limits.rateBytesPerSec,
    );
    c.tokensAt = now;
    if (c.tokens < n) return false;
    c.tokens -= n;
    return true;
  }

  private route(src: Client, dstKey: Uint8Array, packet: Uint8Array): void {
    if (packet.length > MAX_PACKET_SIZE) {
      this.metrics.drop("too_large");
      return;
    }
    if (!this.takeTokens(src, packet.length)) {
      this.metrics.drop("rate_limited");
      return;
    }
    const hex = keyHex(dstKey);
    const dst = this.clients.get(hex);
    if (dst && !dst.isMesh) {
      boundedAdd(src.sentTo, hex);
      this.deliver(dst, src.key, packet, "local");
      return;
    }
    const mesh = this.meshRoutes.get(hex);
    if (mesh) {
      if (mesh.forward(src.key, dstKey, packet)) {
        boundedAdd(src.sentTo, hex);
        this.metrics.packets.inc({ path: "mesh_out" });
        this.metrics.bytes.inc({ path: "mesh_out" }, packet.length);
      } else {
        this.metrics.drop("mesh_unreachable");
      }
      return;
    }
    this.metrics.drop("unknown_dest");
    if (!src.toldNotHere.has(hex)) {
      boundedAdd(src.toldNotHere, hex);
      this.send(src, encodeFrame(FrameType.PeerGone, dstKey, new Uint8Array([PeerGoneReason.NotHere])));
    }
  }

  /** Hand `packet` from `srcKey` to a local client as a RecvPacket frame (copied: the caller's bytes are a view). */
  private deliver(dst: Client, srcKey: Uint8Array, packet: Uint8Array, path: "local" | "mesh_in"): void {
    if (dst.closed) {
      this.metrics.drop("gone");
      return;
    }
    const size = FRAME_HEADER_LEN + KEY_LEN + packet.length;
    if (dst.inFlight < this.limits.maxInFlightBytes && dst.queue.length === 0) {
      // The common case: straight into the client's gathered bytes, no frame of its own.
      const out = this.reserve(dst, size);
      const len = KEY_LEN + packet.length;
      let off = dst.outLen;
      out[off] = FrameType.RecvPacket;
      out.writeUInt32BE(len, off + 1);
      off += FRAME_HEADER_LEN;
      out.set(srcKey, off);
      out.set(packet, off + KEY_LEN);
      dst.outLen += size;
      dst.inFlight += size;
    } else {
      this.enqueue(dst, encodeFrame(FrameType.RecvPacket, srcKey, packet));
    }
    if (path === "local") {
      this.counted.local++;
      this.counted.localBytes += packet.length;
    } else {
      this.counted.mesh_in++;
      this.counted.mesh_inBytes += packet.length;
    }
    this.markDirty(dst);
  }

  /**
   * Queue a frame for a client. While little is in flight it joins the
   * frames gathered for the client, written together once the current read
   * is handled (or the turn ends); beyond that it waits in a short queue whose oldest frame is
   * dropped when full, so a slow reader costs bounded memory and never slows
   * anyone else. Returns false if the frame was not accepted.
   */
  private send(c: Client, frame: Uint8Array): boolean {
    if (c.closed) {
      this.metrics.drop("gone");
      return false;
    }
    if (c.inFlight < this.limits.maxInFlightBytes && c.queue.length === 0) {
      this.gather(c, frame);
    } else {
      this.enqueue(c, frame);
    }
    this.markDirty(c);
    return true;
  }

  private enqueue(c: Client, frame: Uint8Array): void {
    if (c.queue.length >= this.limits.sendQueueDepth) {
      c.queue.shift();
      this.metrics.queued.dec();
      this.metrics.drop("queue_full");
    }
    c.queue.push(frame);
    this.metrics.queued.inc();
  }

  /** Room for `size` more bytes in the client's gathered bytes. */
  private reserve(c: Client, size: number): Buffer {
    const need = c.outLen + size;
    if (c.out && c.out.length >= need) return c.out;
    const grown = Buffer.allocUnsafe(Math.max(need, OUT_MIN, c.outHint, (c.out?.length ?? 0) * 2));
    if (c.out && c.outLen) c.out.copy(grown, 0, 0, c.outLen);
    c.out = grown;
    return grown;
  }

  private gather(c: Client, frame: Uint8Array): void {
    this.reserve(c, frame.length).set(frame, c.outLen);
    c.outLen += frame.length;
    c.inFlight += frame.length;
  }

  private markDirty(c: Client): void {
    if (c.dirty) return;
    c.dirty = true;
    this.dirty.push(c);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushPending);
    }
  }

  /**
   * Write what was gathered: each client gets its frames in one write (one
   * syscall, or one WebSocket message per 32 KiB), not one per frame. Runs
   * at the end of handling every read, so the in-flight count sees each
   * write complete before the next read is handled (a read can hold dozens
   * of packets, and one turn of the event loop dozens of reads per socket:
   * gathering a whole turn overran the queues and dropped under overload
   * instead of back-pressuring), and at the end of any turn in which frames
   * were sent outside a read (timers, revalidation).
   */
  private readonly flushPending = (): void => {
    this.flushScheduled = false;
    if (this.dirty.length === 0) return;
    const dirty = this.dirty;
    for (let i = 0; i < dirty.length; i++) {
      const c = dirty[i]!;
      c.dirty = false;
      this.writeOut(c);
    }
    dirty.length = 0;
    const n = this.counted;
    if (n.local) {
      this.metrics.packets.inc({ path: "local" }, n.local);
      this.metrics.bytes.inc({ path: "local" }, n.localBytes);
    }
    if (n.mesh_in) {
      this.metrics.packets.inc({ path: "mesh_in" }, n.mesh_in);
      this.metrics.bytes.inc({ path: "mesh_in" }, n.mesh_inBytes);
    }
    n.local = n.localBytes = n.mesh_in = n.mesh_inBytes = 0;
  };

  /**
   * Write what the client has gathered. A closed client's bytes are dropped,
   * unless `closing`: just before the relay closes a connection itself, so
   * that its last Health or Restarting frame leaves first.
   */
  private writeOut(c: Client, closing = false): void {
    if (c.outLen === 0 || !c.out) return;
    const bytes = c.out.subarray(0, c.outLen);
    // The socket keeps what it is given until written: what comes next starts a new buffer.
    c.out = null;
    c.outHint = Math.min(c.outLen, this.limits.maxInFlightBytes);
    c.outLen = 0;
    if (c.closed && !closing) return;
    const n = bytes.length;
    c.conn.write(bytes, () => {
      c.inFlight -= n;
      this.refill(c);
    });
  }

  /** Room again: move queued frames into the gathered bytes while the in-flight limit allows. */
  private refill(c: Client): void {
    let moved = false;
    while (!c.closed && c.queue.length > 0 && c.inFlight < this.limits.maxInFlightBytes) {
      this.metrics.queued.dec();
      this.gather(c, c.queue.shift()!);
      moved = true;
    }
    if (moved) this.markDirty(c);
  }

  /** Close a client's connection after writing what it has gathered. */
  private closeConn(c: Client, reason: string): void {
    this.writeOut(c, true);
    c.conn.close(reason);
  }

  private tick(): void {
    const now = Date.now();
    let deepest = 0;
    for (const c of this.clients.values()) {
      deepest = Math.max(deepest, c.queue.length);
      if (c.info.canAckPings && now - c.lastHeard > this.limits.idleTimeoutMs) {
        this.metrics.connections.inc({ outcome: "idle_timeout" });
        this.closeConn(c, "idle timeout");
        continue;
      }
      if (now - c.lastHeard >= this.limits.keepAliveMs) {
        if (c.info.canAckPings) {
          c.pingOutstanding = new Uint8Array(randomBytes(8));
          this.send(c, encodeFrame(FrameType.Ping, c.pingOutstanding));
        } else {
          this.send(c, encodeFrame(FrameType.KeepAlive, EMPTY));
        }
      }
    }
    this.metrics.maxQueue.set(deepest);
  }

  /** A mesh peer reports that `key` is connected to it (or no longer is: route null). */
  setMeshRoute(key: Uint8Array, route: MeshRoute | null, ifCurrent?: MeshRoute): void {
    const hex = Buffer.from(key).toString("hex");
    if (route) this.meshRoutes.set(hex, route);
    else if (!ifCurrent || this.meshRoutes.get(hex) === ifCurrent) this.meshRoutes.delete(hex);
  }

  /** Drop every route learned from one mesh peer (its connection broke). */
  clearMeshRoutes(route: MeshRoute): void {
    for (const [hex, r] of this.meshRoutes) if (r === route) this.meshRoutes.delete(hex);
  }

  /**
   * Stop accepting, tell clients to reconnect in `reconnectInMs` (trying for
   * `tryForMs`), and close every connection.
   */
  close(reconnectInMs = 1000, tryForMs = 60_000): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    const restarting = new Uint8Array(8);
    const dv = new DataView(restarting.buffer);
    dv.setUint32(0, reconnectInMs, false);
    dv.setUint32(4, tryForMs, false);
    const frame = encodeFrame(FrameType.Restarting, restarting);
    for (const c of [...this.clients.values()]) {
      this.send(c, frame);
      this.closeConn(c, "relay restarting");
    }
  }
}
