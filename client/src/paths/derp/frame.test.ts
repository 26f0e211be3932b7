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
