// The relay's side of DERP framing on the read path. Unlike the node side's
// FrameReader it allocates nothing per frame: each frame's payload is handed
// to a callback as a view into the bytes read, valid only during that call
// (whoever keeps a payload copies it). At tens of thousands of packets a
// second a copy and an object per frame were a measurable share of the relay.
import { FRAME_HEADER_LEN, FrameError } from "@trellis/client/derp";

export type FrameSink = (type: number, payload: Uint8Array) => void;

export class FrameParser {
  /** Bytes of an incomplete frame carried over to the next chunk. */
  private buf: Uint8Array = new Uint8Array(0);
  private len = 0;

  constructor(private maxPayload: number) {}

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
  push(chunk: Uint8Array, sink: FrameSink): void {
    const data = chunk;
    let off = 0;
    if (this.len > 0) {
      // Complete the carried-over frame first, taking only what it lacks.
      const need = this.missing();
      if (need === null) {
        const take = Math.min(FRAME_HEADER_LEN - this.len, chunk.length);
        this.append(chunk.subarray(0, take));
        off = take;
        if (this.len < FRAME_HEADER_LEN) return;
      }
      const rest = this.missing()!;
      const take = Math.min(rest, chunk.length - off);
      this.append(chunk.subarray(off, off + take));
      off += take;
      if (take < rest) return;
      const frame = this.buf.subarray(0, this.len);
      this.len = 0;
      sink(frame[0]!, frame.subarray(FRAME_HEADER_LEN));
    }
    while (data.length - off >= FRAME_HEADER_LEN) {
      const len =
        ((data[off + 1]! << 24) | (data[off + 2]! << 16) | (data[off + 3]! << 8) | data[off + 4]!) >>> 0;
      if (len > this.maxPayload) {
        throw new FrameError(`DERP frame of ${len} bytes exceeds the limit of ${this.maxPayload}`);
      }
      const start = off + FRAME_HEADER_LEN;
      if (data.length - start < len) break;
      sink(data[off]!, data.subarray(start, start + len));
      off = start + len;
    }
    if (off < data.length) this.append(data.subarray(off));
    if (this.len >= FRAME_HEADER_LEN) this.missing();
  }

  /** Bytes the carried-over frame still lacks; null while its header is incomplete. Checks the limit. */
  private missing(): number | null {
    if (this.len < FRAME_HEADER_LEN) return null;
    const b = this.buf;
    const len = ((b[1]! << 24) | (b[2]! << 16) | (b[3]! << 8) | b[4]!) >>> 0;
    if (len > this.maxPayload) {
      throw new FrameError(`DERP frame of ${len} bytes exceeds the limit of ${this.maxPayload}`);
    }
    return FRAME_HEADER_LEN + len - this.len;
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
