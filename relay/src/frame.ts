// DERP framing, as in Tailscale's derp package: every frame is a one-byte type,
// a four-byte big-endian payload length, then the payload.

/** Length of a frame header: type (1) + big-endian length (4). */
export const FRAME_HEADER_LEN = 5;
/** "DERP🔑": the magic that opens the server-key frame. */
export const MAGIC = new Uint8Array([0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91]);
export const KEY_LEN = 32;
/** Largest payload the relay accepts; WireGuard packets are far smaller. */
export const MAX_FRAME_SIZE = 1 << 16;
/** Protocol version the relay speaks. */
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

/** Encode one frame. */
export function encodeFrame(type: number, payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_FRAME_SIZE) {
    throw new RangeError(`DERP frame payload of ${payload.length} bytes exceeds ${MAX_FRAME_SIZE}`);
  }
  const out = new Uint8Array(FRAME_HEADER_LEN + payload.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, payload.length, false);
  out.set(payload, FRAME_HEADER_LEN);
  return out;
}

/** The first frame a server sends: the magic followed by its public key. */
export function serverKeyFrame(serverPublicKey: Uint8Array): Uint8Array {
  if (serverPublicKey.length !== KEY_LEN) throw new RangeError("server key must be 32 bytes");
  const payload = new Uint8Array(MAGIC.length + KEY_LEN);
  payload.set(MAGIC, 0);
  payload.set(serverPublicKey, MAGIC.length);
  return encodeFrame(FrameType.ServerKey, payload);
}

export interface Frame {
  type: number;
  payload: Uint8Array;
}

export class FrameError extends Error {
  override readonly name = "FrameError";
}

/** Decode exactly one frame from a buffer (one WebSocket message carries one frame). */
export function decodeFrame(buf: Uint8Array): Frame {
  if (buf.length < FRAME_HEADER_LEN) throw new FrameError("truncated DERP frame header");
  const len = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(1, false);
  if (len > MAX_FRAME_SIZE) throw new FrameError(`DERP frame of ${len} bytes exceeds the limit`);
  if (buf.length !== FRAME_HEADER_LEN + len) {
    throw new FrameError(
      `DERP frame length ${len} does not match the ${buf.length - FRAME_HEADER_LEN} bytes received`,
    );
  }
  return { type: buf[0]!, payload: buf.subarray(FRAME_HEADER_LEN) };
}
