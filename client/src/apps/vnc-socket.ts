// A TCP stream through the tailnet as the "channel" noVNC's RFB accepts in
// place of a WebSocket (core/websock.js: send, close, binaryType, protocol,
// readyState and the on* handlers; a channel that is already "open" when
// attached is used at once, as an RTCDataChannel would be). RFB is spoken
// straight to the VNC server: no websockify in between. Browser-safe.
import type { Duplex } from "./duplex";

type State = "open" | "closing" | "closed";

export class VncChannel {
  binaryType = "arraybuffer";
  readonly protocol = "";
  onopen: ((e: unknown) => void) | null = null;
  onerror: ((e: { message: string }) => void) | null = null;
  onclose: ((e: { code: number; reason: string; wasClean: boolean }) => void) | null = null;
  private handler: ((e: { data: ArrayBuffer }) => void) | null = null;
  private state: State = "open";
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private pumping = false;

  constructor(duplex: Duplex) {
    this.writer = duplex.writable.getWriter();
    this.reader = duplex.readable.getReader();
  }

  get readyState(): State {
    return this.state;
  }

  // Reading starts when noVNC installs its handler: nothing may arrive before it listens.
  get onmessage(): ((e: { data: ArrayBuffer }) => void) | null {
    return this.handler;
  }
  set onmessage(fn: ((e: { data: ArrayBuffer }) => void) | null) {
    this.handler = fn;
    if (fn && !this.pumping) {
      this.pumping = true;
      void this.pump();
    }
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const r = await this.reader.read();
        if (r.done) break;
        const v = r.value;
        const data =
          v.byteOffset === 0 && v.byteLength === v.buffer.byteLength
            ? (v.buffer as ArrayBuffer)
            : (v.slice().buffer as ArrayBuffer);
        this.handler?.({ data });
      }
      this.finish(true, "the server closed the connection");
    } catch (e) {
      if (this.state === "closed") return;
      this.onerror?.({ message: e instanceof Error ? e.message : String(e) });
      this.finish(false, e instanceof Error ? e.message : String(e));
    }
  }

  send(data: ArrayBuffer | ArrayBufferView): void {
    if (this.state !== "open") return;
    // noVNC reuses its send buffer: the stream gets a copy.
    const bytes =
      data instanceof ArrayBuffer
        ? new Uint8Array(data.slice(0))
        : new Uint8Array(
            data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer,
          );
    this.writer.write(bytes).catch((e: unknown) => {
      this.onerror?.({ message: e instanceof Error ? e.message : String(e) });
      this.finish(false, "the connection failed");
    });
  }

  close(): void {
    if (this.state !== "open") return;
    this.state = "closing";
    void this.writer.close().catch(() => undefined);
    void this.reader.cancel().catch(() => undefined);
    this.finish(true, "closed");
  }

  private finish(clean: boolean, reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.onclose?.({ code: clean ? 1000 : 1006, reason, wasClean: clean });
  }
}

export function vncChannel(duplex: Duplex): VncChannel {
  return new VncChannel(duplex);
}
