// Batched direct-path messages: what one side packs, the other unpacks whole
// and in order; a lone datagram travels unchanged; damaged messages are
// refused rather than misread.
import { describe, expect, it } from "vitest";
import { BATCH, BATCH_BYTES, DatagramBatch, splitBatch } from "./batch";

const datagram = (n: number, fill: number) => new Uint8Array(n).fill(fill);

function unpack(message: Uint8Array): Uint8Array[] | null {
  const got: Uint8Array[] = [];
  return splitBatch(message, (d) => got.push(d.slice())) ? got : null;
}

describe("datagram batches", () => {
  it("packs a turn's datagrams into messages of at most BATCH_BYTES and unpacks them in order", () => {
    const sent = Array.from({ length: 40 }, (_, i) => datagram(1312 - (i % 7) * 100, i + 1));
    const b = new DatagramBatch();
    const messages: Uint8Array[] = [];
    for (const d of sent) {
      if (!b.fits(d)) messages.push(b.take()!.message);
      b.push(d);
    }
    messages.push(b.take()!.message);
    expect(messages.length).toBeLessThan(sent.length / 4);
    for (const m of messages) expect(m.length).toBeLessThanOrEqual(BATCH_BYTES);
    expect(messages.flatMap((m) => unpack(m)!)).toEqual(sent);
    expect(b.take()).toBeNull();
  });

  it("sends a lone datagram as it is, so a WireGuard message stays a WireGuard message", () => {
    const b = new DatagramBatch();
    const d = Uint8Array.of(4, 0, 0, 0, 9, 9);
    b.push(d);
    const t = b.take()!;
    expect(t.message).toBe(d);
    expect(t.datagrams).toEqual([d]);
  });

  it("takes a datagram larger than the limit on its own", () => {
    const b = new DatagramBatch(100);
    expect(b.fits(datagram(500, 1))).toBe(true);
    b.push(datagram(500, 1));
    expect(b.fits(datagram(10, 2))).toBe(false);
  });

  it("refuses damaged messages: truncated, zero-length entries, trailing bytes, empty, wrong marker", () => {
    const b = new DatagramBatch();
    b.push(datagram(10, 1));
    b.push(datagram(20, 2));
    const good = b.take()!.message;
    expect(unpack(good)).toHaveLength(2);
    expect(unpack(good.subarray(0, good.length - 1))).toBeNull();
    expect(unpack(Uint8Array.of(BATCH, 0, 0))).toBeNull();
    expect(unpack(Uint8Array.of(...good, 7))).toBeNull();
    expect(unpack(Uint8Array.of(BATCH))).toBeNull();
    expect(unpack(Uint8Array.of(1, 0, 1, 5))).toBeNull();
  });

  it("refuses to batch what its length field cannot say", () => {
    expect(() => new DatagramBatch().push(new Uint8Array(70_000))).toThrow(RangeError);
    expect(() => new DatagramBatch().push(new Uint8Array(0))).toThrow(RangeError);
  });
});
