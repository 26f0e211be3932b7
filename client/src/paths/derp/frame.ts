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
 * Reassembles frames from a byte stream. A header announcing more than
 * `maxPayload` bytes is an error at once, so a peer cannot make the reader
 * buffer more than one maximal frame.
 */
export class FrameReader {
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
   * Feed bytes; returns every frame they complete, in order. A frame that
   * lies wholly in `chunk` is a view into it (no copy per packet): the caller
   * hands over `chunk` and must not write to it again. Frames put together
   * from several chunks are copies.
   */
  push(chunk: Uint8Array): Frame[] {
    let data: Uint8Array;
    const inChunk = this.len === 0;
    if (inChunk) {
      data = chunk;
    } else {
      if (this.buf.length < this.len + chunk.length) {
        const grown = new Uint8Array(Math.max(this.len + chunk.length, this.buf.length * 2));
        grown.set(this.buf.subarray(0, this.len));
        this.buf = grown;
      }
      this.buf.set(chunk, this.len);
      data = this.buf.subarray(0, this.len + chunk.length);
    }
    const frames: Frame[] = [];
    let off = 0;
    while (data.length - off >= FRAME_HEADER_LEN) {
      const type = data[off]!;
      const len =
        ((data[off + 1]! << 24) | (data[off + 2]! << 16) | (data[off + 3]! << 8) | data[off + 4]!) >>> 0;
      if (len > this.maxPayload) {
        throw new FrameError(`DERP frame of ${len} bytes exceeds the limit of ${this.maxPayload}`);
      }
      if (data.length - off - FRAME_HEADER_LEN < len) break;
      const start = off + FRAME_HEADER_LEN;
      // The reader's own buffer is reused: payloads from it are copied.
      frames.push({
        type,
        payload: inChunk ? data.subarray(start, start + len) : data.slice(start, start + len),
      });
      off = start + len;
    }
    const rest = data.length - off;
    if (rest > 0) {
      if (this.buf.length < rest) this.buf = new Uint8Array(Math.max(rest, 4096));
      this.buf.set(data.subarray(off), 0);
    }
    this.len = rest;
    return frames;
  }
}
