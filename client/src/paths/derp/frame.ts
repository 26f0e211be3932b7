// DERP framing, as described in Tailscale's derp package: every frame is a
// one-byte type, a four-byte big-endian payload length, then the payload. The
// transport (WebSocket messages or a raw upgraded TCP stream) is a byte stream:
// frames may be split across reads or several may arrive in one.

/** Length of a frame header: type (1) + big-endian length (4). */
export const FRAME_HEADER_LEN = 5;
/** "DERP🔑": the magic that opens the server-key frame. */
export const MAGIC = new Uint8Array([0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91]);
export const KEY_LEN = 32;
export const NONCE_LEN = 24;
/** Largest packet a client may relay (the packet bytes, not counting keys). */
export const MAX_PACKET_SIZE = 64 << 10;
/** Largest frame payload accepted: a forwarded packet carries two keys besides the packet. */
export const MAX_FRAME_SIZE = MAX_PACKET_SIZE + 2 * KEY_LEN;
/** Largest client-info or server-info payload. */
export const MAX_INFO_LEN = 1 << 20;
/** Protocol version spoken: received packets carry the sender's key first. */
export const PROTOCOL_VERSION = 2;

export const FrameType = {
  ServerKey: 0x01,
  ClientInfo: 0x02,
  ServerInfo: 0x03,
  SendPacket: 0x04,
  RecvPacket: 0x05,
  KeepAlive: 0x06,
  NotePreferred: 0x07,
  PeerGone: 0x08,
  PeerPresent: 0x09,
  ForwardPacket: 0x0a,
  WatchConns: 0x10,
  ClosePeer: 0x11,
  Ping: 0x12,
  Pong: 0x13,
  Health: 0x14,
  Restarting: 0x15,
} as const;

/** Why the server no longer has a path to a peer (payload byte of PeerGone). */
export const PeerGoneReason = {
  Disconnected: 0x00,
  NotHere: 0x01,
} as const;

/** Bits of the optional flags byte of PeerPresent. */
export const PeerPresentFlags = {
  IsRegular: 1 << 0,
  IsMeshPeer: 1 << 1,
  IsProber: 1 << 2,
  NotIdeal: 1 << 3,
} as const;

export class FrameError extends Error {
  override readonly name = "FrameError";
}

/** Encode one frame. */
export function encodeFrame(type: number, ...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  if (len > MAX_FRAME_SIZE && type !== FrameType.ClientInfo && type !== FrameType.ServerInfo) {
    throw new RangeError(`DERP frame payload of ${len} bytes exceeds ${MAX_FRAME_SIZE}`);
  }
  const out = new Uint8Array(FRAME_HEADER_LEN + len);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, len, false);
  let off = FRAME_HEADER_LEN;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** The first frame a server sends: the magic followed by its public key. */
export function serverKeyFrame(serverPublicKey: Uint8Array): Uint8Array {
  if (serverPublicKey.length !== KEY_LEN) throw new RangeError("server key must be 32 bytes");
  return encodeFrame(FrameType.ServerKey, MAGIC, serverPublicKey);
}

export interface Frame {
  type: number;
  payload: Uint8Array;
}

/** Decode exactly one frame from a buffer holding nothing else. */
export function decodeFrame(buf: Uint8Array): Frame {
  const reader = new FrameReader(MAX_INFO_LEN);
  const frames = reader.push(buf);
  if (frames.length !== 1 || reader.buffered !== 0) {
    throw new FrameError(
      frames.length === 0 ? "truncated DERP frame" : "trailing bytes after the DERP frame",
    );
  }
  return frames[0]!;
}

/**
 * Called for each frame read: `payload` is a view into the chunk just read or,
 * when `carried`, into the reader's own buffer (a frame put together from
 * several chunks), which the reader reuses after the call returns.
 */
export type FrameSink = (type: number, payload: Uint8Array, carried: boolean) => void;

/**
 * Reassembles frames from a byte stream. A header announcing more than
 * `maxPayload` bytes is an error at once, so a peer cannot make the reader
 * buffer more than one maximal frame. `read` allocates nothing per frame (the
 * relay reads tens of thousands a second); `push` returns frames that outlive
 * the call.
 */
export class FrameReader {
  /** Bytes of an incomplete frame carried over to the next chunk. */
  private buf = new Uint8Array(0);
  private len = 0;

  constructor(private maxPayload = MAX_FRAME_SIZE) {}

  /** Allow larger frames (the handshake's info frames) or restore the data limit. */
  setMaxPayload(n: number): void {
    this.maxPayload = n;
  }

  /** Bytes held that do not yet form a whole frame. */
  get buffered(): number {
    return this.len;
  }

  /**
   * Feed bytes; `sink` is called for every frame they complete, in order.
   * Throws FrameError (after delivering the frames before it) for a frame
   * announcing more than the limit.
   */
  read(chunk: Uint8Array, sink: FrameSink): void {
    let off = 0;
    if (this.len > 0) {
      // Complete the carried-over frame first, taking only what it lacks.
      if (this.len < FRAME_HEADER_LEN) {
        off = Math.min(FRAME_HEADER_LEN - this.len, chunk.length);
        this.append(chunk.subarray(0, off));
        if (this.len < FRAME_HEADER_LEN) return;
      }
      const rest = this.missing();
      const take = Math.min(rest, chunk.length - off);
      this.append(chunk.subarray(off, off + take));
      off += take;
      if (take < rest) return;
      const frame = this.buf.subarray(0, this.len);
      this.len = 0;
      sink(frame[0]!, frame.subarray(FRAME_HEADER_LEN), true);
    }
    while (chunk.length - off >= FRAME_HEADER_LEN) {
      const len = this.check(chunk, off);
      const start = off + FRAME_HEADER_LEN;
      if (chunk.length - start < len) break;
      sink(chunk[off]!, chunk.subarray(start, start + len), false);
      off = start + len;
    }
    if (off < chunk.length) this.append(chunk.subarray(off));
    if (this.len >= FRAME_HEADER_LEN) this.missing();
  }

  /**
   * Feed bytes; returns every frame they complete, in order. A frame that
   * lies wholly in `chunk` is a view into it (no copy per packet): the caller
   * hands over `chunk` and must not write to it again. Frames put together
   * from several chunks are copies.
   */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    this.read(chunk, (type, payload, carried) =>
      frames.push({ type, payload: carried ? payload.slice() : payload }),
    );
    return frames;
  }

  /** The payload length in the header at `off`, checked against the limit. */
  private check(b: Uint8Array, off: number): number {
    const len = ((b[off + 1]! << 24) | (b[off + 2]! << 16) | (b[off + 3]! << 8) | b[off + 4]!) >>> 0;
    if (len > this.maxPayload) {
      throw new FrameError(`DERP frame of ${len} bytes exceeds the limit of ${this.maxPayload}`);
    }
    return len;
  }

  /** Bytes the carried-over frame (its header whole) still lacks. */
  private missing(): number {
    return FRAME_HEADER_LEN + this.check(this.buf, 0) - this.len;
  }

  private append(bytes: Uint8Array): void {
    if (this.buf.length < this.len + bytes.length) {
      const grown = new Uint8Array(Math.max(this.len + bytes.length, this.buf.length * 2, 4096));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }
}
