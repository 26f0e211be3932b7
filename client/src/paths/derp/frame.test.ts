import { describe, expect, it } from "vitest";
import {
  FrameError,
  FrameReader,
  FrameType,
  MAX_FRAME_SIZE,
  decodeFrame,
  encodeFrame,
  serverKeyFrame,
} from "./frame";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("DERP framing", () => {
  // Vectors written from the protocol description in Tailscale's derp package:
  // type byte, big-endian uint32 length, payload; the server-key frame carries
  // the 8-byte magic "DERP🔑" then the 32-byte key.
  it("encodes the server-key frame", () => {
    const key = new Uint8Array(32).map((_, i) => i);
    expect(hex(serverKeyFrame(key))).toBe(
      "01" +
        "00000028" +
        "44455250f09f9491" +
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    );
  });

  it("encodes a keepalive and a ping", () => {
    expect(hex(encodeFrame(FrameType.KeepAlive, new Uint8Array(0)))).toBe("0600000000");
    expect(hex(encodeFrame(FrameType.Ping, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])))).toBe(
      "12000000080102030405060708",
    );
  });

  it("round-trips through decode", () => {
    const frame = decodeFrame(encodeFrame(FrameType.SendPacket, new Uint8Array([9, 9, 9])));
    expect(frame.type).toBe(FrameType.SendPacket);
    expect([...frame.payload]).toEqual([9, 9, 9]);
  });

  it.each([
    ["a truncated header", new Uint8Array([6, 0, 0])],
    ["a length beyond the bytes received", new Uint8Array([4, 0, 0, 0, 9, 1])],
    ["trailing bytes", new Uint8Array([6, 0, 0, 0, 0, 1])],
    ["a length over the limit", new Uint8Array([4, 0xff, 0xff, 0xff, 0xff])],
  ])("rejects %s", (_, buf) => {
    expect(() => decodeFrame(buf)).toThrow(FrameError);
  });

  it("refuses to encode an oversized payload", () => {
    expect(() => encodeFrame(FrameType.SendPacket, new Uint8Array(MAX_FRAME_SIZE + 1))).toThrow(RangeError);
  });

  it("reassembles frames split across reads, and they survive the reads after them", () => {
    const a = encodeFrame(FrameType.RecvPacket, new Uint8Array(40).fill(1));
    const b = encodeFrame(FrameType.RecvPacket, new Uint8Array(40).fill(2));
    const c = encodeFrame(FrameType.RecvPacket, new Uint8Array(40).fill(3));
    const stream = new Uint8Array([...a, ...b, ...c]);
    const reader = new FrameReader();
    const got = [
      ...reader.push(stream.slice(0, 30)),
      ...reader.push(stream.slice(30, 60)), // completes a (from the reader's buffer)
      ...reader.push(stream.slice(60)), // completes b, holds c whole
    ];
    expect(got.map((f) => f.payload[0])).toEqual([1, 2, 3]);
    // Later reads reuse the reader's buffer; what was returned is unchanged.
    const d = encodeFrame(FrameType.RecvPacket, new Uint8Array(40).fill(9));
    expect(reader.push(d.slice(0, 20))).toEqual([]);
    expect(reader.push(d.slice(20)).map((f) => f.payload[0])).toEqual([9]);
    expect(got.every((f, i) => f.payload.length === 40 && f.payload.every((x) => x === i + 1))).toBe(true);
    expect(reader.buffered).toBe(0);
  });
});

/** A deterministic pseudo-random sequence, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("FrameReader.read (the relay's reader: no allocation per frame)", () => {
  it("yields every frame whole and in order however the stream is cut", () => {
    for (let seed = 1; seed <= 50; seed++) {
      const rand = rng(seed);
      const frames = Array.from({ length: 40 }, (_, i) => {
        const size = rand() < 0.1 ? Math.floor(rand() * 65_000) : Math.floor(rand() * 1300);
        return { type: 1 + (i % 20), payload: new Uint8Array(size).map(() => Math.floor(rand() * 256)) };
      });
      const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.payload)));
      const reader = new FrameReader(1 << 20);
      const got: { type: number; payload: string }[] = [];
      for (let off = 0; off < stream.length;) {
        const n = 1 + Math.floor(rand() * (rand() < 0.5 ? 7 : 20_000));
        // Each chunk is a fresh buffer, later overwritten, as socket reads may be reused.
        const chunk = Buffer.from(stream.subarray(off, off + n));
        reader.read(chunk, (type, payload, carried) => {
          // A payload is a view into the chunk unless it was put together from several.
          expect(payload.buffer === chunk.buffer).toBe(!carried);
          got.push({ type, payload: hex(payload) });
        });
        chunk.fill(0xee);
        off += n;
      }
      expect(reader.buffered).toBe(0);
      expect(got).toEqual(frames.map((f) => ({ type: f.type, payload: hex(f.payload) })));
    }
  });

  it("refuses a frame over the limit, whether its header arrives whole or split", () => {
    const big = encodeFrame(FrameType.SendPacket, new Uint8Array(2000));
    expect(() => new FrameReader(1000).read(big, () => {})).toThrow(FrameError);
    const r = new FrameReader(1000);
    r.read(big.subarray(0, 3), () => {});
    expect(() => r.read(big.subarray(3, 10), () => {})).toThrow(FrameError);
    // Raised to allow it (the handshake's info frames), the same frame passes.
    const ok = new FrameReader(1000);
    ok.setMaxPayload(4000);
    const seen: number[] = [];
    ok.read(big, (_t, payload) => seen.push(payload.length));
    expect(seen).toEqual([2000]);
  });
});
