import { x25519 } from "@noble/curves/ed25519.js";
import { openBox, sealBox } from "./box";
import {
  FRAME_HEADER_LEN,
  FrameError,
  FrameReader,
  FrameType,
  KEY_LEN,
  MAGIC,
  MAX_INFO_LEN,
  MAX_FRAME_SIZE,
  PROTOCOL_VERSION,
  encodeFrame,
  type Frame,
} from "./frame";

// A DERP client for browsers and Node alike: it needs only a WebSocket (the
// browser's, or the `ws` package's, passed in as a factory). No Node built-ins.

/** The part of the WebSocket API the client uses; browsers' and `ws`'s both fit. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type SocketFactory = (url: string, protocols: string[]) => WebSocketLike;

export interface DerpClientOptions {
  /** ws:// or wss:// URL of the relay's `/derp` endpoint. */
  url: string;
  /** This node's private key; it never leaves the client (only a box sealed with it does). */
  privateKey: Uint8Array;
  /**
   * Mesh key (64 hex digits) when this client is a relay joining a mesh. It
   * is sealed only to a pinned `serverKey`: a mesh key without one is refused.
   */
  meshKey?: string;
  /**
   * The relay's server key (32 bytes), pinned: a relay presenting another
   * key is refused before anything is sealed to it.
   */
  serverKey?: Uint8Array;
  socketFactory?: SocketFactory;
  /** Give up on the handshake after this long. */
  timeoutMs?: number;
  /** Bytes the socket may buffer before `send` starts dropping packets. */
  maxBufferedBytes?: number;
}

export interface DerpHandlers {
  /** A packet from `src` (its node key). */
  packet?(src: Uint8Array, packet: Uint8Array): void;
  /** The relay no longer has a path to `key` (reason: a PeerGoneReason). */
  peerGone?(key: Uint8Array, reason: number): void;
  /** Mesh only: `key` is connected to the relay, from `endpoint`. */
  peerPresent?(key: Uint8Array, endpoint: { ip: Uint8Array; port: number } | null, flags: number): void;
  /** Server health message; empty means healthy again. */
  health?(message: string): void;
  restarting?(reconnectInMs: number, tryForMs: number): void;
  close?(reason: string): void;
}

export class DerpClientError extends Error {
  override readonly name = "DerpClientError";
}

const OPEN = 1;

function toBytes(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new DerpClientError("relay sent a non-binary message");
}

/** Equal length and bytes (keys are public: no constant-time need). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function defaultFactory(url: string, protocols: string[]): WebSocketLike {
  const WS = (globalThis as { WebSocket?: new (u: string, p: string[]) => WebSocketLike }).WebSocket;
  if (!WS) throw new DerpClientError("no WebSocket implementation: pass socketFactory");
  return new WS(url, protocols);
}

/** One authenticated connection to a relay. */
/** Largest WebSocket message the client writes (unless one frame is larger). */
const BATCH_BYTES = 32 * 1024;

export class DerpClient {
  readonly publicKey: Uint8Array;
  private handlers: DerpHandlers = {};
  private closedReason: string | null = null;
  private pings = new Map<string, (rtt: number) => void>();
  /** Frames of this turn, written together as one WebSocket message (see `frame`). */
  private out: Uint8Array | null = null;
  private outLen = 0;
  private flushQueued = false;

  private constructor(
    private readonly ws: WebSocketLike,
    private readonly reader: FrameReader,
    readonly serverKey: Uint8Array,
    readonly serverInfo: Record<string, unknown>,
    publicKey: Uint8Array,
    private readonly maxBuffered: number,
  ) {
    this.publicKey = publicKey;
  }

  /** Connect, check the server's key frame, prove our key, read the server info. */
  static connect(opts: DerpClientOptions): Promise<DerpClient> {
    const factory = opts.socketFactory ?? defaultFactory;
    const publicKey = x25519.getPublicKey(opts.privateKey);
    if (opts.meshKey !== undefined && opts.serverKey?.length !== KEY_LEN) {
      // Whoever answers at the URL would otherwise get the mesh key sealed to a key of its choosing.
      return Promise.reject(
        new DerpClientError(`a mesh key is sent only to a pinned relay key (${opts.url})`),
      );
    }
    return new Promise((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = factory(opts.url, ["derp"]);
      } catch (err) {
        reject(err instanceof Error ? err : new DerpClientError(String(err)));
        return;
      }
      ws.binaryType = "arraybuffer";
      const reader = new FrameReader(MAX_INFO_LEN);
      let serverKey: Uint8Array | null = null;
      let settled = false;
      const fail = (msg: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch {
          // already closing
        }
        reject(new DerpClientError(msg));
      };
      const timer = setTimeout(() => fail("relay handshake timed out"), opts.timeoutMs ?? 10_000);
      ws.onerror = () => fail(`cannot connect to relay ${opts.url}`);
      ws.onclose = (ev) =>
        fail(`relay closed the connection during the handshake (${ev.code ?? ""} ${ev.reason ?? ""})`);
      ws.onmessage = (ev) => {
        let frames: Frame[];
        try {
          frames = reader.push(toBytes(ev.data));
        } catch (err) {
          fail(err instanceof FrameError ? err.message : "bad frame from relay");
          return;
        }
        for (const f of frames) {
          if (settled) return;
          if (!serverKey) {
            if (f.type !== FrameType.ServerKey || f.payload.length < MAGIC.length + KEY_LEN) {
              fail("relay did not start with its server key");
              return;
            }
            if (!MAGIC.every((b, i) => f.payload[i] === b)) {
              fail("relay's server-key frame has the wrong magic");
              return;
            }
            serverKey = f.payload.slice(MAGIC.length, MAGIC.length + KEY_LEN);
            if (opts.serverKey && !sameBytes(serverKey, opts.serverKey)) {
              fail(`relay ${opts.url} presented a server key other than the pinned one`);
              return;
            }
            const info = JSON.stringify({
              version: PROTOCOL_VERSION,
              canAckPings: true,
              ...(opts.meshKey ? { meshKey: opts.meshKey } : {}),
            });
            ws.send(
              encodeFrame(
                FrameType.ClientInfo,
                publicKey,
                sealBox(new TextEncoder().encode(info), opts.privateKey, serverKey),
              ),
            );
            continue;
          }
          if (f.type !== FrameType.ServerInfo) {
            fail(`expected server info, got frame type 0x${f.type.toString(16)}`);
            return;
          }
          const opened = openBox(f.payload, opts.privateKey, serverKey);
          if (!opened) {
            fail("relay's server info does not authenticate");
            return;
          }
          let serverInfo: Record<string, unknown> = {};
          try {
            serverInfo = JSON.parse(new TextDecoder().decode(opened)) as Record<string, unknown>;
          } catch {
            // An unreadable info is not fatal: it only carries hints.
          }
          settled = true;
          clearTimeout(timer);
          reader.setMaxPayload(MAX_FRAME_SIZE);
          const client = new DerpClient(
            ws,
            reader,
            serverKey,
            serverInfo,
            publicKey,
            opts.maxBufferedBytes ?? 4 * 1024 * 1024,
          );
          client.attach();
          resolve(client);
          return;
        }
      };
    });
  }

  /** Set the event handlers (replacing earlier ones). */
  on(handlers: DerpHandlers): this {
    this.handlers = handlers;
    return this;
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  private attach(): void {
    this.ws.onmessage = (ev) => {
      try {
        this.reader.read(toBytes(ev.data), this.onFrame);
      } catch (err) {
        // A handler's own failure is not the relay's: it propagates.
        if (!(err instanceof FrameError || err instanceof DerpClientError)) throw err;
        this.shutdown(err.message);
      }
    };
    this.ws.onclose = (ev) =>
      this.shutdown(`relay closed the connection (${ev.code ?? ""} ${ev.reason ?? ""})`.trim());
    this.ws.onerror = () => this.shutdown("relay connection error");
  }

  /**
   * One frame from the relay. A payload that is a view into the message read
   * stays valid (the message is not reused); one put together from several
   * messages is in the reader's reused buffer, so it is copied first.
   */
  private readonly onFrame = (type: number, payload: Uint8Array, carried: boolean): void => {
    const p = carried ? payload.slice() : payload;
    switch (type) {
      case FrameType.RecvPacket:
        if (p.length >= KEY_LEN) this.handlers.packet?.(p.subarray(0, KEY_LEN), p.subarray(KEY_LEN));
        return;
      case FrameType.PeerGone:
        if (p.length >= KEY_LEN) this.handlers.peerGone?.(p.subarray(0, KEY_LEN), p[KEY_LEN] ?? 0);
        return;
      case FrameType.PeerPresent: {
        if (p.length < KEY_LEN) return;
        const endpoint =
          p.length >= KEY_LEN + 18
            ? { ip: p.slice(KEY_LEN, KEY_LEN + 16), port: (p[KEY_LEN + 16]! << 8) | p[KEY_LEN + 17]! }
            : null;
        this.handlers.peerPresent?.(p.subarray(0, KEY_LEN), endpoint, p[KEY_LEN + 18] ?? 0);
        return;
      }
      case FrameType.Ping:
        if (p.length === 8) this.frame(FrameType.Pong, p);
        return;
      case FrameType.Pong: {
        const key = Array.from(p).join(",");
        this.pings.get(key)?.(0);
        return;
      }
      case FrameType.Health:
        this.handlers.health?.(new TextDecoder().decode(p));
        return;
      case FrameType.Restarting:
        if (p.length >= 8) {
          const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
          this.handlers.restarting?.(dv.getUint32(0, false), dv.getUint32(4, false));
        }
        return;
      default:
        return;
    }
  };

  /**
   * Queue a frame. Frames queued in one turn of the event loop leave as one
   * WebSocket message of at most BATCH_BYTES: DERP over WebSocket is a byte
   * stream (Trellis's relay and Tailscale's derper both read it so), and a
   * message per packet costs a browser an IPC to its network process each.
   * 32 KiB keeps every message within what Go WebSocket readers accept.
   */
  private frame(type: number, ...parts: Uint8Array[]): boolean {
    if (this.closedReason !== null || this.ws.readyState !== OPEN) return false;
    let len = 0;
    for (const p of parts) len += p.length;
    const size = FRAME_HEADER_LEN + len;
    if (this.outLen + size > BATCH_BYTES) this.flush();
    if (size > BATCH_BYTES) {
      this.ws.send(encodeFrame(type, ...parts));
      return true;
    }
    this.out ??= new Uint8Array(BATCH_BYTES);
    const out = this.out;
    let off = this.outLen;
    out[off] = type;
    out[off + 1] = len >>> 24;
    out[off + 2] = (len >>> 16) & 0xff;
    out[off + 3] = (len >>> 8) & 0xff;
    out[off + 4] = len & 0xff;
    off += FRAME_HEADER_LEN;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    this.outLen = off;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
    return true;
  }

  /** Write the frames queued so far. */
  private flush(): void {
    this.flushQueued = false;
    if (this.outLen === 0 || !this.out) return;
    const message = this.out.subarray(0, this.outLen);
    // The socket may hold on to what it is given: the next frames go into a new buffer.
    this.out = null;
    this.outLen = 0;
    if (this.closedReason === null && this.ws.readyState === OPEN) this.ws.send(message);
  }

  /**
   * Send a packet to `dst`. Returns false (and drops it) when the connection
   * is closed or the socket is backed up: packets are datagrams, and WireGuard
   * recovers from loss, so buffering without bound would only add latency.
   */
  send(dst: Uint8Array, packet: Uint8Array): boolean {
    if (dst.length !== KEY_LEN) throw new DerpClientError("destination must be a 32-byte key");
    if (this.ws.bufferedAmount + this.outLen > this.maxBuffered) return false;
    return this.frame(FrameType.SendPacket, dst, packet);
  }

  /** Mesh only: hand a packet from `src` to `dst` on the relay this client is connected to. */
  forward(src: Uint8Array, dst: Uint8Array, packet: Uint8Array): boolean {
    if (this.ws.bufferedAmount + this.outLen > this.maxBuffered) return false;
    return this.frame(FrameType.ForwardPacket, src, dst, packet);
  }

  /** Mesh only: subscribe to the relay's clients coming and going. */
  watchConnections(): void {
    this.frame(FrameType.WatchConns);
  }

  /** Tell the relay whether it is this node's home relay. */
  notePreferred(preferred: boolean): void {
    this.frame(FrameType.NotePreferred, new Uint8Array([preferred ? 1 : 0]));
  }

  /** Round-trip a ping through the relay; resolves to the time taken in ms. */
  ping(timeoutMs = 5000): Promise<number> {
    const data = new Uint8Array(8);
    globalThis.crypto.getRandomValues(data);
    const key = Array.from(data).join(",");
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(key);
        reject(new DerpClientError("ping timed out"));
      }, timeoutMs);
      this.pings.set(key, () => {
        clearTimeout(timer);
        this.pings.delete(key);
        resolve(performance.now() - started);
      });
      if (!this.frame(FrameType.Ping, data)) {
        clearTimeout(timer);
        this.pings.delete(key);
        reject(new DerpClientError("connection closed"));
      }
    });
  }

  private shutdown(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.out = null;
    this.outLen = 0;
    this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
    try {
      this.ws.close();
    } catch {
      // already closed
    }
    this.handlers.close?.(reason);
  }

  close(): void {
    this.shutdown("closed by client");
  }
}

export interface RelayLinkOptions extends DerpClientOptions {
  /** First retry delay; doubles per failure up to `maxBackoffMs`, with jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called for each (re)connection, e.g. to re-announce state. */
  onConnect?(client: DerpClient): void;
}

/** Packets a link holds while it connects: at most this many, for at most this long. */
const PENDING_MAX = 64;
const PENDING_MS = 2000;
/** A connection up this long was a success: the next failure's backoff starts from the minimum. */
const STABLE_MS = 10_000;

/**
 * A relay connection that stays up: it reconnects with exponential backoff
 * and jitter after any failure, and follows the relay's restarting hint.
 * While it connects, `send` holds a few packets for a short while (a node's
 * first WireGuard handshake would otherwise be lost and wait out its 5 s
 * retry); beyond that it drops them (returns false) rather than queueing.
 */
export class RelayLink {
  private client: DerpClient | null = null;
  private pending: { dst: Uint8Array; packet: Uint8Array; at: number }[] = [];
  private stopped = false;
  private failures = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private nextDelay: number | null = null;
  /** Number of successful connections so far. */
  connects = 0;

  constructor(
    private readonly opts: RelayLinkOptions,
    private readonly handlers: DerpHandlers = {},
  ) {
    this.dial();
  }

  get connected(): boolean {
    return this.client !== null && !this.client.closed;
  }

  get current(): DerpClient | null {
    return this.connected ? this.client : null;
  }

  private dial(): void {
    if (this.stopped) return;
    DerpClient.connect(this.opts).then(
      (client) => {
        if (this.stopped) {
          client.close();
          return;
        }
        this.connects++;
        this.client = client;
        const upAt = Date.now();
        client.on({
          ...this.handlers,
          restarting: (inMs, tryFor) => {
            this.nextDelay = inMs;
            this.handlers.restarting?.(inMs, tryFor);
          },
          close: (reason) => {
            this.client = null;
            // Only a connection that lasted starts the backoff over: one the relay closes at once
            // (another process with this key, a relay refusing us) must not redial in a tight loop.
            if (Date.now() - upAt >= STABLE_MS) this.failures = 0;
            this.handlers.close?.(reason);
            this.schedule();
          },
        });
        this.opts.onConnect?.(client);
        const now = Date.now();
        for (const p of this.pending.splice(0)) if (now - p.at <= PENDING_MS) client.send(p.dst, p.packet);
      },
      () => this.schedule(),
    );
  }

  private schedule(): void {
    if (this.stopped || this.retryTimer) return;
    const min = this.opts.minBackoffMs ?? 100;
    const max = this.opts.maxBackoffMs ?? 10_000;
    const base = this.nextDelay ?? Math.min(max, min * 2 ** this.failures);
    this.nextDelay = null;
    this.failures++;
    const delay = base / 2 + Math.random() * (base / 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.dial();
    }, delay);
  }

  send(dst: Uint8Array, packet: Uint8Array): boolean {
    if (this.client && !this.client.closed) return this.client.send(dst, packet);
    if (this.stopped) return false;
    const now = Date.now();
    while (this.pending.length > 0 && now - this.pending[0]!.at > PENDING_MS) this.pending.shift();
    if (this.pending.length >= PENDING_MAX) return false;
    this.pending.push({ dst: dst.slice(), packet: packet.slice(), at: now });
    return true;
  }

  close(): void {
    this.stopped = true;
    this.pending = [];
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.client?.close();
    this.client = null;
  }
}
