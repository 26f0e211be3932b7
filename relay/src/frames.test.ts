import { describe, expect, it } from "vitest";
import { FrameError, FrameType, encodeFrame } from "@trellis/client/derp";
import { FrameParser } from "./frames";

/** A deterministic pseudo-random sequence, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("the relay's frame parser", () => {
  it("yields every frame whole and in order however the stream is cut", () => {
    for (let seed = 1; seed <= 50; seed++) {
      const rand = rng(seed);
      const frames = Array.from({ length: 40 }, (_, i) => {
        const size = rand() < 0.1 ? Math.floor(rand() * 65_000) : Math.floor(rand() * 1300);
        return { type: 1 + (i % 20), payload: new Uint8Array(size).map(() => Math.floor(rand() * 256)) };
      });
      const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.payload)));
      const parser = new FrameParser(1 << 20);
      const got: { type: number; payload: string }[] = [];
      for (let off = 0; off < stream.length;) {
        const n = 1 + Math.floor(rand() * (rand() < 0.5 ? 7 : 20_000));
        // Each chunk is a fresh buffer, later overwritten, as socket reads may be reused.
        const chunk = Buffer.from(stream.subarray(off, off + n));
        parser.push(chunk, (type, payload) =>
          got.push({ type, payload: Buffer.from(payload).toString("hex") }),
        );
        chunk.fill(0xee);
        off += n;
      }
      expect(parser.buffered).toBe(0);
      expect(got).toEqual(
        frames.map((f) => ({ type: f.type, payload: Buffer.from(f.payload).toString("hex") })),
      );
    }
  });

  it("refuses a frame over the limit, whether its header arrives whole or split", () => {
    const big = encodeFrame(FrameType.SendPacket, new Uint8Array(2000));
    expect(() => new FrameParser(1000).push(big, () => {})).toThrow(FrameError);
    const p = new FrameParser(1000);
    p.push(big.subarray(0, 3), () => {});
    expect(() => p.push(big.subarray(3, 10), () => {})).toThrow(FrameError);
    // Raised to allow it (the handshake's info frames), the same frame passes.
    const ok = new FrameParser(1000);
    ok.setMaxPayload(4000);
    const seen: number[] = [];
    ok.push(big, (_t, payload) => seen.push(payload.length));
    expect(seen).toEqual([2000]);
  });
});
