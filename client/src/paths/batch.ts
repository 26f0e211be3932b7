// Several WireGuard datagrams in one direct-path message. A data channel
// costs a browser about as much per message as per byte at WireGuard's
// packet size (measured on Chromium: 1,100–1,312-byte messages carry a third
// of what 16 KiB ones do), so the datagrams one turn produces for a peer
// leave as one message: a marker byte, then each datagram as a 2-byte
// big-endian length and its bytes. A lone datagram goes as it is (WireGuard
// messages start with 1–4, so the marker cannot be mistaken for one).
// Browser-safe.

/** Marker byte of a batched message. */
export const BATCH = 0xfc;

/**
 * Largest batched message. A message of several SCTP chunks is lost whole
 * when one chunk is (the channel never retransmits), so batches stay small
 * enough that a loss costs TCP inside a few segments, not a window.
 */
export const BATCH_BYTES = 8 * 1024;

/** Datagrams waiting to leave together. */
export class DatagramBatch {
  private items: Uint8Array[] = [];
  private bytes = 1;

  constructor(private readonly limit = BATCH_BYTES) {}

  get size(): number {
    return this.items.length;
  }

  /** Whether `d` still fits in this message (an empty batch takes anything). */
  fits(d: Uint8Array): boolean {
    return this.items.length === 0 || this.bytes + 2 + d.length <= this.limit;
  }

  /** Add a datagram (of at most 65,535 bytes); the caller checked `fits`. */
  push(d: Uint8Array): void {
    if (d.length === 0 || d.length > 0xffff)
      throw new RangeError(`datagram of ${d.length} bytes cannot be batched`);
    this.items.push(d);
    this.bytes += 2 + d.length;
  }

  /** The message to send and the datagrams in it; the batch is empty after. */
  take(): { message: Uint8Array; datagrams: Uint8Array[] } | null {
    const items = this.items;
    if (items.length === 0) return null;
    const bytes = this.bytes;
    this.items = [];
    this.bytes = 1;
    if (items.length === 1) return { message: items[0]!, datagrams: items };
    const message = new Uint8Array(bytes);
    message[0] = BATCH;
    let off = 1;
    for (const p of items) {
      message[off] = p.length >>> 8;
      message[off + 1] = p.length & 0xff;
      message.set(p, off + 2);
      off += 2 + p.length;
    }
    return { message, datagrams: items };
  }
}

/**
 * Hand each datagram of a batched message to `each` (views into `message`).
 * Returns false when the message is malformed; the datagrams before the
 * fault have been handed on, the rest are dropped.
 */
export function splitBatch(message: Uint8Array, each: (d: Uint8Array) => void): boolean {
  if (message[0] !== BATCH) return false;
  let off = 1;
  while (off + 2 <= message.length) {
    const len = (message[off]! << 8) | message[off + 1]!;
    if (len === 0 || off + 2 + len > message.length) return false;
    each(message.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return off === message.length && off > 1;
}
