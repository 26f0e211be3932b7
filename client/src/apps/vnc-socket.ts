// A TCP byte stream through the tailnet, dressed as the "raw channel" noVNC
// 1.7's RFB accepts in place of a WebSocket URL: `new RFB(target, vncChannel(duplex))`.
//
// The contract, from @novnc/novnc/core/websock.js (attach) and core/rfb.js (_connect):
// - attach() checks that the names send, close, binaryType, onerror, onmessage,
//   onopen, protocol and readyState are own keys of the object or own names of
//   its *immediate* prototype: so this is one flat class, no base class.
// - readyState may be a WebSocket number or an RTCDataChannel string; this
//   uses the strings ("connecting" | "open" | "closing" | "closed").
// - If readyState is already "open" when RFB attaches, RFB starts its
//   handshake at once and never waits for onopen; if "connecting", it waits
//   for onopen. A dialled stream is open; a dial still in progress (a promise)
//   is connecting, and onopen fires when it resolves.
// - It sets binaryType = "arraybuffer" and reads `new Uint8Array(event.data)`
//   in onmessage: data is an ArrayBuffer holding exactly the received bytes.
// - send() gets a Uint8Array *view of noVNC's reusable send buffer*, which it
//   overwrites right after the call: the bytes are copied before queueing.
// - onclose gets an event whose code/reason RFB prints; after RFB.disconnect()
//   calls close(), RFB waits (3 s) for onclose to call the session disconnected.
// - RFB's server speaks first ("RFB 003.008\n"): reading starts only once
//   onmessage is set, so no byte arrives before anyone listens.
// Browser-safe: web streams only.

/** The same shape as ./duplex.ts Duplex. */
export interface ByteDuplex {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
}

export type VncChannelState = "connecting" | "open" | "closing" | "closed";

export interface VncMessageEvent {
  type: "message";
  data: ArrayBuffer;
}
export interface VncOpenEvent {
  type: "open";
}
export interface VncErrorEvent {
  type: "error";
  error: unknown;
  message: string;
}
export interface VncCloseEvent {
  type: "close";
  /** 1000 after close() or the far end closing; 1006 after an error (as a WebSocket reports them). */
  code: number;
  reason: string;
  wasClean: boolean;
}

export class VncChannelError extends Error {
  override name = "VncChannelError";
}

/** How long close() lets queued bytes drain before it aborts the stream. */
const CLOSE_FLUSH_MS = 2000;

/** Exceptions in a handler are reported and do not end the connection, as with DOM event listeners. */
function report(err: unknown): void {
  const r = (globalThis as { reportError?: (e: unknown) => void }).reportError;
  if (r) r(err);
  else console.error("vnc channel handler threw", err);
}

/** Exactly the bytes of `chunk` as an ArrayBuffer, copying only when the chunk is a view into a larger buffer. */
function exactBuffer(chunk: Uint8Array): ArrayBuffer {
  if (
    chunk.buffer instanceof ArrayBuffer &&
    chunk.byteOffset === 0 &&
    chunk.byteLength === chunk.buffer.byteLength
  )
    return chunk.buffer;
  return chunk.slice().buffer;
}

export class VncChannel {
  // Own keys, as attach() looks for them.
  onopen: ((ev: VncOpenEvent) => void) | null = null;
  onclose: ((ev: VncCloseEvent) => void) | null = null;
  onerror: ((ev: VncErrorEvent) => void) | null = null;
  /** No WebSocket subprotocol: a raw TCP stream. */
  readonly protocol = "";

  #state: VncChannelState;
  #onmessage: ((ev: VncMessageEvent) => void) | null = null;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #pumping = false;
  #ended = false;
  #buffered = 0;

  constructor(duplex: ByteDuplex | Promise<ByteDuplex>) {
    if ("then" in duplex) {
      this.#state = "connecting";
      void duplex.then(
        (d) => {
          if (this.#state !== "connecting") {
            // close() came first: hang the stream up right away.
            void d.readable.cancel().catch(() => {});
            void d.writable.abort().catch(() => {});
            return;
          }
          this.#attach(d);
          this.#state = "open";
          this.#fire(this.onopen, { type: "open" });
          this.#pump();
        },
        (err: unknown) => this.#end(err, "connect failed"),
      );
    } else {
      this.#state = "open";
      this.#attach(duplex);
    }
  }

  get readyState(): VncChannelState {
    return this.#state;
  }

  /** Always "arraybuffer": noVNC sets it so, and nothing else is produced. */
  get binaryType(): "arraybuffer" {
    return "arraybuffer";
  }
  set binaryType(v: string) {
    if (v !== "arraybuffer") throw new VncChannelError(`binaryType ${v} is not supported, only arraybuffer`);
  }

  get onmessage(): ((ev: VncMessageEvent) => void) | null {
    return this.#onmessage;
  }
  set onmessage(h: ((ev: VncMessageEvent) => void) | null) {
    this.#onmessage = h;
    this.#pump();
  }

  /** Bytes handed to send() and not yet taken by the stream. */
  get bufferedAmount(): number {
    return this.#buffered;
  }

  send(data: ArrayBuffer | ArrayBufferView): void {
    if (this.#state === "connecting") throw new VncChannelError("send() before the channel is open");
    // After close, bytes are dropped, as WebSocket.send drops them.
    if (this.#state !== "open" || !this.#writer) return;
    const copy =
      data instanceof ArrayBuffer
        ? new Uint8Array(data.slice(0))
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    if (copy.byteLength === 0) return;
    this.#buffered += copy.byteLength;
    this.#writer.write(copy).then(
      () => (this.#buffered -= copy.byteLength),
      (err: unknown) => this.#end(err, "write failed"),
    );
  }

  close(): void {
    if (this.#state === "closing" || this.#state === "closed") return;
    if (this.#state === "connecting") {
      // The dial's resolution hangs it up; tell the listener now.
      this.#state = "closed";
      this.#ended = true;
      queueMicrotask(() =>
        this.#fire(this.onclose, { type: "close", code: 1000, reason: "", wasClean: true }),
      );
      return;
    }
    void this.#shutdown(null, "");
  }

  #attach(d: ByteDuplex): void {
    this.#reader = d.readable.getReader();
    this.#writer = d.writable.getWriter();
    // A stream that errors is reported by the write or read that meets it;
    // this only keeps the writer's own promise from going unhandled.
    this.#writer.closed.catch(() => {});
  }

  #fire<E>(h: ((ev: E) => void) | null, ev: E): void {
    if (!h) return;
    try {
      h.call(this, ev);
    } catch (err) {
      report(err);
    }
  }

  /** Reads until the stream ends or the channel closes; one loop at most, started once someone listens. */
  #pump(): void {
    if (this.#pumping || this.#state !== "open" || !this.#onmessage || !this.#reader) return;
    this.#pumping = true;
    const reader = this.#reader;
    void (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done || this.#state !== "open") break;
          if (value.byteLength) this.#fire(this.#onmessage, { type: "message", data: exactBuffer(value) });
        }
        if (this.#state === "open") await this.#shutdown(null, ""); // the far end closed
      } catch (err) {
        this.#end(err, "read failed");
      }
    })();
  }

  #end(err: unknown, what: string): void {
    void this.#shutdown(err, what);
  }

  /** Closing, flushing (bounded), closed, then onerror (if err) and onclose: once. */
  async #shutdown(err: unknown, what: string): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#state = "closing";
    void this.#reader?.cancel().catch(() => {});
    const writer = this.#writer;
    if (writer) {
      if (err) await writer.abort(err).catch(() => {});
      else {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const flushed = await Promise.race([
          writer.close().then(
            () => true,
            () => false,
          ),
          new Promise<false>((r) => (timer = setTimeout(() => r(false), CLOSE_FLUSH_MS))),
        ]);
        clearTimeout(timer);
        if (!flushed)
          await writer.abort(new VncChannelError("close: the stream took no more bytes")).catch(() => {});
      }
    }
    this.#state = "closed";
    if (err) {
      const message = `${what}: ${err instanceof Error ? err.message : String(err)}`;
      this.#fire(this.onerror, { type: "error", error: err, message });
    }
    this.#fire(this.onclose, {
      type: "close",
      code: err ? 1006 : 1000,
      reason: err ? what : "",
      wasClean: !err,
    });
  }
}

/** The channel for `new RFB(target, vncChannel(duplex))`: a dialled stream, or a dial in progress. */
export function vncChannel(duplex: ByteDuplex | Promise<ByteDuplex>): VncChannel {
  return new VncChannel(duplex);
}
