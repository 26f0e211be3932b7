// WebSocket (RFC 6455) over a connection of the browser's node: the page of a
// tailnet app cannot open a real WebSocket to the app, so the service worker's
// page script swaps window.WebSocket for TailnetWebSocket, which does the
// handshake through http.ts and frames messages itself. No extensions
// (permessage-deflate is never offered), no TLS: the dial decides where the
// bytes go, and the tailnet encrypts them. Browser-safe.
import { HttpClient, HttpError, type Dial, type Duplex, type HttpResponse } from "./http";

export type WebSocketErrorCode = "handshake" | "protocol" | "too_large" | "closed" | "aborted";

export class WebSocketError extends Error {
  override readonly name = "WebSocketError";
  constructor(
    message: string,
    /**
     * `handshake`: the server refused or answered wrongly; `protocol`: a frame
     * broke RFC 6455 (or text was not UTF-8); `too_large`: a message over the
     * bound; `closed`: the connection ended without a close handshake;
     * `aborted`: this side gave up (signal, close timeout).
     */
    readonly code: WebSocketErrorCode,
    options?: { cause?: unknown; response?: HttpResponse },
  ) {
    super(message, options);
    this.response = options?.response ?? null;
  }
  /** The server's answer when the handshake was refused (status, headers). */
  readonly response: HttpResponse | null;
}

/** Default bound on one message, fragments together (browsers have none; a tab's memory is the limit). */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Default bound on bytes sent but not yet taken by the connection; past it the connection fails. */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
/** How long a close handshake may take before the connection is dropped. */
const CLOSE_TIMEOUT_MS = 5000;
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export interface WebSocketConnectOptions {
  dial: Dial;
  /** The Host header, e.g. `server:8080`. */
  host: string;
  /** Path and query. */
  target: string;
  protocols?: string[];
  /** More handshake headers (Origin, Cookie, ...). */
  headers?: [string, string][];
  maxMessageBytes?: number;
  maxBufferedBytes?: number;
  signal?: AbortSignal;
  /** Bound on the handshake's response (default: http.ts's). */
  timeoutMs?: number;
}

export interface WebSocketClose {
  /** The server's close code; 1005 when its close frame had none, 1006 when there was no close handshake. */
  code: number;
  reason: string;
  wasClean: boolean;
  /** Why the connection failed, when it did. */
  error?: WebSocketError;
}

export interface WebSocketHandlers {
  message: (data: string | Uint8Array) => void;
  close: (close: WebSocketClose) => void;
  /** Each pong, with its payload (keep-alive checks). */
  pong?: (payload: Uint8Array) => void;
}

/** Close codes an endpoint may send (RFC 6455 section 7.4, plus the registry's 1012-1014 and 3000-4999). */
function sendableCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/**
 * Open a WebSocket: dial, handshake (Sec-WebSocket-Accept checked), and
 * resolve with a session that reads nothing until `start`, so no message is
 * lost between the two. Rejects with WebSocketError.
 */
export async function connectWebSocket(opts: WebSocketConnectOptions): Promise<WebSocketSession> {
  const protocols = opts.protocols ?? [];
  for (const p of protocols) {
    if (!TOKEN.test(p)) throw new WebSocketError(`invalid subprotocol ${JSON.stringify(p)}`, "handshake");
  }
  if (new Set(protocols).size !== protocols.length)
    throw new WebSocketError("duplicate subprotocols", "handshake");
  const keyBytes = crypto.getRandomValues(new Uint8Array(16));
  const key = base64(keyBytes);
  const own = new Set([
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
  ]);
  const headers: [string, string][] = [
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", key],
    ["Sec-WebSocket-Version", "13"],
    ...(protocols.length > 0 ? [["Sec-WebSocket-Protocol", protocols.join(", ")] as [string, string]] : []),
    ...(opts.headers ?? []).filter(([n]) => !own.has(n.toLowerCase())),
  ];
  const client = new HttpClient(
    opts.dial,
    opts.timeoutMs !== undefined ? { headersTimeoutMs: opts.timeoutMs } : {},
  );
  let result;
  try {
    result = await client.upgrade({
      method: "GET",
      target: opts.target,
      host: opts.host,
      headers,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (e) {
    const code = e instanceof HttpError && e.code === "aborted" ? "aborted" : "handshake";
    throw new WebSocketError(
      `WebSocket handshake failed: ${e instanceof Error ? e.message : String(e)}`,
      code,
      { cause: e },
    );
  } finally {
    client.close();
  }
  const { response, duplex } = result;
  const fail = (why: string): never => {
    // The server's side of a failed handshake is of no use: drop it unread.
    if (duplex) void abortDuplex(duplex, why);
    else response.body?.cancel().catch(() => undefined); // nobody reads it; a failure to cancel changes nothing
    throw new WebSocketError(`WebSocket handshake failed: ${why}`, "handshake", { response });
  };
  if (response.status !== 101 || !duplex)
    return fail(`the server answered ${response.status} ${response.statusText}`.trim());
  const header = (name: string) =>
    response.headers
      .filter(([n]) => n.toLowerCase() === name)
      .map(([, v]) => v)
      .join(", ");
  if (header("upgrade").toLowerCase() !== "websocket") return fail("no Upgrade: websocket in the answer");
  if (
    !header("connection")
      .toLowerCase()
      .split(/\s*,\s*/)
      .includes("upgrade")
  )
    return fail("no Connection: Upgrade in the answer");
  const expected = base64(
    new Uint8Array(await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID))),
  );
  if (header("sec-websocket-accept") !== expected) return fail("wrong Sec-WebSocket-Accept");
  const protocol = header("sec-websocket-protocol");
  if (protocol !== "" && !protocols.includes(protocol))
    return fail(`the server chose subprotocol ${JSON.stringify(protocol)}, which was not offered`);
  const extensions = header("sec-websocket-extensions");
  if (extensions !== "")
    return fail(`the server chose extensions ${JSON.stringify(extensions)}, none were offered`);
  return new WebSocketSession(
    duplex,
    protocol,
    opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES,
  );
}

async function abortDuplex(d: Duplex, why: string): Promise<void> {
  // Either side may have failed already; the connection is being dropped regardless.
  await Promise.allSettled([d.readable.cancel(why), d.writable.abort(why)]);
}

/** Bytes as they arrive, taken in frame-sized pieces: a view when one chunk holds them, one copy when they span chunks. */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  private offset = 0;
  length = 0;

  push(b: Uint8Array): void {
    if (b.byteLength === 0) return;
    this.chunks.push(b);
    this.length += b.byteLength;
  }

  take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (n === 0) return new Uint8Array(0);
    if (first && first.byteLength - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.advance(n);
      return out;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0]!;
      const k = Math.min(n - o, c.byteLength - this.offset);
      out.set(c.subarray(this.offset, this.offset + k), o);
      o += k;
      this.advance(k);
    }
    return out;
  }

  private advance(n: number): void {
    this.length -= n;
    this.offset += n;
    if (this.offset === this.chunks[0]!.byteLength) {
      this.chunks.shift();
      this.offset = 0;
    }
  }
}

const Op = { Continuation: 0, Text: 1, Binary: 2, Close: 8, Ping: 9, Pong: 10 } as const;
type Op = (typeof Op)[keyof typeof Op];

/** An open WebSocket connection: the protocol without the browser API around it. */
export class WebSocketSession {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly queue = new ByteQueue();
  private handlers: WebSocketHandlers | null = null;
  private buffered = 0;
  private closeSent = false;
  private closeReceived: { code: number; reason: string } | null = null;
  private finished = false;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  private pendingClose: WebSocketClose | null = null;
  private writerClosed: Promise<void> | null = null;

  constructor(
    duplex: Duplex,
    readonly protocol: string,
    private readonly maxMessageBytes: number,
    private readonly maxBufferedBytes: number,
  ) {
    this.reader = duplex.readable.getReader();
    this.writer = duplex.writable.getWriter();
  }

  /** No extensions are ever negotiated. */
  readonly extensions = "";

  /** Bytes of messages sent but not yet taken by the connection. */
  get bufferedAmount(): number {
    return this.buffered;
  }

  /** Whether a close frame went out or the connection ended: sends are dropped from then on. */
  get closing(): boolean {
    return this.closeSent || this.finished;
  }

  /** Begin reading; every message and the close go to `handlers`. */
  start(handlers: WebSocketHandlers): void {
    if (this.handlers) throw new Error("WebSocketSession.start called twice");
    this.handlers = handlers;
    if (this.pendingClose) return this.deliverClose(this.pendingClose);
    void this.readLoop();
  }

  /** Send a message: a string as text, bytes as binary. Dropped once closing (as browsers do). */
  send(data: string | Uint8Array): void {
    if (this.closing) return;
    const payload = typeof data === "string" ? new TextEncoder().encode(data) : data;
    if (this.buffered + payload.byteLength > this.maxBufferedBytes) {
      this.fail(
        new WebSocketError(`more than ${this.maxBufferedBytes} bytes waiting to be sent`, "too_large"),
        1008,
      );
      return;
    }
    this.writeFrame(typeof data === "string" ? Op.Text : Op.Binary, payload, payload.byteLength);
  }

  ping(payload: Uint8Array = new Uint8Array(0)): void {
    if (payload.byteLength > 125) throw new RangeError("a ping payload is at most 125 bytes");
    if (!this.closing) this.writeFrame(Op.Ping, payload, 0);
  }

  /**
   * Start the close handshake; the close handler runs when the server has
   * answered and closed the connection (or after a timeout, not clean).
   */
  close(code?: number, reason = ""): void {
    if (code !== undefined && !sendableCode(code)) throw new RangeError(`close code ${code} cannot be sent`);
    const reasonBytes = new TextEncoder().encode(reason);
    if (reasonBytes.byteLength > 123) throw new RangeError("a close reason is at most 123 bytes of UTF-8");
    if (this.closing) return;
    this.sendClose(code, reasonBytes);
    this.closeTimer = setTimeout(
      () =>
        this.finish(
          {
            code: 1006,
            reason: "",
            wasClean: false,
            error: new WebSocketError("the server did not finish the close handshake", "aborted"),
          },
          false,
        ),
      CLOSE_TIMEOUT_MS,
    );
  }

  private sendClose(code: number | undefined, reason: Uint8Array): void {
    this.closeSent = true;
    let payload = new Uint8Array(0);
    if (code !== undefined) {
      payload = new Uint8Array(2 + reason.byteLength);
      payload[0] = code >> 8;
      payload[1] = code & 0xff;
      payload.set(reason, 2);
    }
    this.writeFrame(Op.Close, payload, 0);
  }

  /** Frame, mask (client frames must be masked, with a fresh key each) and queue for the connection. */
  private writeFrame(op: Op, payload: Uint8Array, counted: number): void {
    const n = payload.byteLength;
    const lenBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
    const headLen = 2 + lenBytes + 4;
    const frame = new Uint8Array(headLen + n);
    frame[0] = 0x80 | op;
    if (lenBytes === 0) frame[1] = 0x80 | n;
    else if (lenBytes === 2) {
      frame[1] = 0x80 | 126;
      frame[2] = n >> 8;
      frame[3] = n & 0xff;
    } else {
      frame[1] = 0x80 | 127;
      new DataView(frame.buffer).setBigUint64(2, BigInt(n));
    }
    const mask = crypto.getRandomValues(new Uint8Array(4));
    frame.set(mask, 2 + lenBytes);
    for (let i = 0; i < n; i++) frame[headLen + i] = payload[i]! ^ mask[i & 3]!;
    this.buffered += counted;
    this.writer.write(frame).then(
      () => {
        this.buffered -= counted;
      },
      (e: unknown) => {
        this.buffered -= counted;
        this.fail(
          new WebSocketError(`sending failed: ${e instanceof Error ? e.message : String(e)}`, "closed", {
            cause: e,
          }),
          null,
        );
      },
    );
  }

  /** Read until `n` bytes are queued; false at the end of the connection. */
  private async need(n: number): Promise<boolean> {
    while (this.queue.length < n) {
      const r = await this.reader.read();
      if (r.done) return false;
      this.queue.push(r.value);
    }
    return true;
  }

  private async readLoop(): Promise<void> {
    const fragments: Uint8Array[] = [];
    let fragmentBytes = 0;
    let messageOp: number | null = null;
    const protocolError = (why: string) => {
      throw Object.assign(new WebSocketError(why, "protocol"), { closeCode: 1002 });
    };
    try {
      for (;;) {
        if (!(await this.need(2))) break;
        const h = this.queue.take(2);
        const b0 = h[0]!;
        const b1 = h[1]!;
        const fin = (b0 & 0x80) !== 0;
        const op = b0 & 0x0f;
        if (b0 & 0x70) protocolError("a frame has reserved bits set (no extension was negotiated)");
        if (b1 & 0x80) protocolError("the server masked a frame");
        let len = b1 & 0x7f;
        if (len >= 126) {
          const extra = len === 126 ? 2 : 8;
          if (!(await this.need(extra))) break;
          const b = this.queue.take(extra);
          if (extra === 2) len = (b[0]! << 8) | b[1]!;
          else {
            const big = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
            if (big > BigInt(Number.MAX_SAFE_INTEGER)) len = Number.MAX_SAFE_INTEGER;
            else len = Number(big);
          }
        }
        const control = op >= 8;
        if (control) {
          if (op !== Op.Close && op !== Op.Ping && op !== Op.Pong) protocolError(`unknown opcode ${op}`);
          if (!fin) protocolError("a fragmented control frame");
          if (len > 125) protocolError("a control frame over 125 bytes");
        } else {
          if (op !== Op.Continuation && op !== Op.Text && op !== Op.Binary)
            protocolError(`unknown opcode ${op}`);
          if (op === Op.Continuation && messageOp === null)
            protocolError("a continuation frame without a message");
          if (op !== Op.Continuation && messageOp !== null)
            protocolError("a new message inside a fragmented one");
          if (fragmentBytes + len > this.maxMessageBytes) {
            throw Object.assign(
              new WebSocketError(`a message over ${this.maxMessageBytes} bytes`, "too_large"),
              { closeCode: 1009 },
            );
          }
        }
        if (!(await this.need(len))) break;
        const payload = this.queue.take(len);
        if (this.closeReceived) continue; // nothing counts after the server's close frame
        if (op === Op.Ping) {
          if (!this.closing) this.writeFrame(Op.Pong, payload, 0);
        } else if (op === Op.Pong) {
          this.handlers?.pong?.(payload);
        } else if (op === Op.Close) {
          this.onCloseFrame(payload);
        } else {
          if (op !== Op.Continuation) messageOp = op;
          fragments.push(payload);
          fragmentBytes += len;
          if (!fin) continue;
          const whole = joinBytes(fragments, fragmentBytes);
          const kind = messageOp;
          fragments.length = 0;
          fragmentBytes = 0;
          messageOp = null;
          if (this.closeSent) continue; // the page closed: browsers drop what arrives while closing
          if (kind === Op.Text) {
            let text: string;
            try {
              text = new TextDecoder("utf-8", { fatal: true }).decode(whole);
            } catch (e) {
              throw Object.assign(
                new WebSocketError("a text message is not UTF-8", "protocol", { cause: e }),
                { closeCode: 1007 },
              );
            }
            this.handlers?.message(text);
          } else {
            // The queue may hand out views of the connection's chunks; a message is the page's to keep.
            this.handlers?.message(
              whole.byteOffset === 0 && whole.byteLength === whole.buffer.byteLength ? whole : whole.slice(),
            );
          }
        }
      }
      // The connection ended.
      if (this.closeReceived) {
        this.finish({ ...this.closeReceived, wasClean: true });
      } else {
        this.finish({
          code: 1006,
          reason: "",
          wasClean: false,
          error: new WebSocketError("the connection ended without a close handshake", "closed"),
        });
      }
    } catch (e) {
      if (this.finished) return;
      if (e instanceof WebSocketError) {
        this.fail(e, (e as WebSocketError & { closeCode?: number }).closeCode ?? null);
      } else {
        this.fail(
          new WebSocketError(
            `the connection failed: ${e instanceof Error ? e.message : String(e)}`,
            "closed",
            { cause: e },
          ),
          null,
        );
      }
    }
  }

  private onCloseFrame(payload: Uint8Array): void {
    let code = 1005;
    let reason = "";
    if (payload.byteLength === 1)
      throw Object.assign(new WebSocketError("a close frame of one byte", "protocol"), { closeCode: 1002 });
    if (payload.byteLength >= 2) {
      code = (payload[0]! << 8) | payload[1]!;
      if (!sendableCode(code))
        throw Object.assign(new WebSocketError(`invalid close code ${code}`, "protocol"), {
          closeCode: 1002,
        });
      try {
        reason = new TextDecoder("utf-8", { fatal: true }).decode(payload.subarray(2));
      } catch (e) {
        throw Object.assign(new WebSocketError("a close reason is not UTF-8", "protocol", { cause: e }), {
          closeCode: 1007,
        });
      }
    }
    this.closeReceived = { code, reason };
    // Echo the close (with its code, as RFC 6455 suggests), then end our half:
    // the server closes the connection, and the read loop sees it end.
    if (!this.closeSent) this.sendClose(code === 1005 ? undefined : code, new Uint8Array(0));
    this.closeWriter().catch(() => undefined); // fails only if the connection already failed, which the read loop reports
    this.closeTimer ??= setTimeout(
      () => this.finish({ code, reason, wasClean: true }, false),
      CLOSE_TIMEOUT_MS,
    );
  }

  /** Fail the connection: say why in a close frame when there is a code for it, then drop it. */
  private fail(error: WebSocketError, closeCode: number | null): void {
    if (this.finished) return;
    if (closeCode !== null && !this.closeSent) this.sendClose(closeCode, new Uint8Array(0));
    this.finish({ code: 1006, reason: "", wasClean: false, error });
  }

  private finish(close: WebSocketClose, graceful = true): void {
    if (this.finished) return;
    this.finished = true;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.teardown(graceful);
    if (this.handlers) this.deliverClose(close);
    else this.pendingClose = close;
  }

  /** End our half once queued frames (a close frame) are out, then drop the connection; bounded in time. */
  private closeWriter(): Promise<void> {
    this.writerClosed ??= this.writer.close();
    return this.writerClosed;
  }

  private teardown(graceful: boolean): void {
    const drop = () => {
      // Both fail only when the connection already failed; it is being dropped either way.
      this.reader.cancel().catch(() => undefined);
      this.writer.abort().catch(() => undefined);
    };
    if (!graceful) return drop();
    const timer = setTimeout(drop, CLOSE_TIMEOUT_MS);
    this.closeWriter().then(
      () => {
        clearTimeout(timer);
        this.reader.cancel().catch(() => undefined); // as above
      },
      () => {
        clearTimeout(timer);
        drop();
      },
    );
  }

  private deliverClose(close: WebSocketClose): void {
    this.handlers?.close(close);
  }
}

function joinBytes(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

// ---------------------------------------------------------------------------
// The browser API.

/** CloseEvent where the platform has one (browsers, Node 23+), a look-alike elsewhere. */
const CloseEventImpl: typeof CloseEvent =
  typeof CloseEvent === "function"
    ? CloseEvent
    : (class extends Event {
        readonly code: number;
        readonly reason: string;
        readonly wasClean: boolean;
        constructor(type: string, init: CloseEventInit = {}) {
          super(type, init);
          this.code = init.code ?? 0;
          this.reason = init.reason ?? "";
          this.wasClean = init.wasClean ?? false;
        }
      } as unknown as typeof CloseEvent);

export interface TailnetWebSocketOptions {
  /** More handshake headers (Origin, Cookie, ...). */
  headers?: [string, string][];
  maxMessageBytes?: number;
  maxBufferedBytes?: number;
}

type Handler<E extends Event> = ((this: TailnetWebSocket, ev: E) => unknown) | null;

/**
 * window.WebSocket's API over a tailnet connection: page scripts use it in
 * its place. `dial` opens the TCP connection to the URL's machine and port.
 */
export class TailnetWebSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readonly CONNECTING = 0;
  readonly OPEN = 1;
  readonly CLOSING = 2;
  readonly CLOSED = 3;

  readonly url: string;
  private state = 0;
  private session: WebSocketSession | null = null;
  private readonly abort = new AbortController();
  private type: BinaryType = "blob";
  private proto = "";
  /** Sends waiting for a Blob's bytes; later sends queue behind them to keep the order. */
  private sendChain: Promise<void> | null = null;
  private chainBytes = 0;
  /** Bytes sent after closing began: browsers keep counting them in bufferedAmount. */
  private droppedBytes = 0;
  private readonly handlerProps = new Map<string, { fn: unknown; listener: EventListener }>();

  constructor(
    url: string | URL,
    protocols: string | string[] = [],
    dial?: Dial,
    opts: TailnetWebSocketOptions = {},
  ) {
    super();
    if (!dial) throw new TypeError("TailnetWebSocket needs a dial for its connection");
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (e) {
      throw new DOMException(
        `invalid WebSocket URL ${String(url)}: ${e instanceof Error ? e.message : String(e)}`,
        "SyntaxError",
      );
    }
    if (parsed.protocol === "http:") parsed.protocol = "ws:";
    else if (parsed.protocol === "https:") parsed.protocol = "wss:";
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
      throw new DOMException(`a WebSocket URL is ws: or wss:, not ${parsed.protocol}`, "SyntaxError");
    }
    parsed.hash = "";
    this.url = parsed.href;
    const list = typeof protocols === "string" ? [protocols] : [...protocols];
    for (const p of list)
      if (!TOKEN.test(p)) throw new DOMException(`invalid subprotocol ${JSON.stringify(p)}`, "SyntaxError");
    if (new Set(list).size !== list.length) throw new DOMException("duplicate subprotocols", "SyntaxError");

    connectWebSocket({
      dial,
      host: parsed.host,
      target: `${parsed.pathname}${parsed.search}`,
      protocols: list,
      signal: this.abort.signal,
      ...(opts.headers ? { headers: opts.headers } : {}),
      ...(opts.maxMessageBytes !== undefined ? { maxMessageBytes: opts.maxMessageBytes } : {}),
      ...(opts.maxBufferedBytes !== undefined ? { maxBufferedBytes: opts.maxBufferedBytes } : {}),
    }).then(
      (session) => this.opened(session),
      (e: unknown) => {
        // close() while connecting already reported the close.
        if (this.state === TailnetWebSocket.CLOSED) return;
        this.state = TailnetWebSocket.CLOSED;
        this.dispatchEvent(Object.assign(new Event("error"), { error: e }));
        this.dispatchEvent(new CloseEventImpl("close", { code: 1006, reason: "", wasClean: false }));
      },
    );
  }

  get readyState(): number {
    return this.state;
  }
  get protocol(): string {
    return this.proto;
  }
  get extensions(): string {
    return "";
  }
  get bufferedAmount(): number {
    return (this.session?.bufferedAmount ?? 0) + this.chainBytes + this.droppedBytes;
  }
  get binaryType(): BinaryType {
    return this.type;
  }
  set binaryType(t: BinaryType) {
    // Browsers ignore other values (no exception).
    if (t === "blob" || t === "arraybuffer") this.type = t;
  }

  get onopen(): Handler<Event> {
    return this.handler("open");
  }
  set onopen(f: Handler<Event>) {
    this.setHandler("open", f);
  }
  get onmessage(): Handler<MessageEvent> {
    return this.handler("message");
  }
  set onmessage(f: Handler<MessageEvent>) {
    this.setHandler("message", f);
  }
  get onerror(): Handler<Event> {
    return this.handler("error");
  }
  set onerror(f: Handler<Event>) {
    this.setHandler("error", f);
  }
  get onclose(): Handler<CloseEvent> {
    return this.handler("close");
  }
  set onclose(f: Handler<CloseEvent>) {
    this.setHandler("close", f);
  }

  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void {
    if (this.state === TailnetWebSocket.CONNECTING) {
      throw new DOMException("the WebSocket is still connecting", "InvalidStateError");
    }
    const size =
      typeof data === "string"
        ? new TextEncoder().encode(data).byteLength
        : data instanceof Blob
          ? data.size
          : data.byteLength;
    if (this.state !== TailnetWebSocket.OPEN || !this.session) {
      this.droppedBytes += size;
      return;
    }
    const session = this.session;
    if (!(data instanceof Blob) && this.sendChain === null) {
      // Framing copies the bytes (to mask them) before send returns: no copy needed here.
      session.send(typeof data === "string" ? data : bytesOf(data, false));
      return;
    }
    // A Blob's bytes come later; it and every send after it wait their turn.
    const ready: Promise<string | Uint8Array> =
      data instanceof Blob
        ? data.arrayBuffer().then((b) => new Uint8Array(b))
        : Promise.resolve(typeof data === "string" ? data : bytesOf(data, true));
    this.chainBytes += size;
    const chain: Promise<void> = (this.sendChain ?? Promise.resolve())
      .then(() => ready)
      .then(
        (bytes) => {
          this.chainBytes -= size;
          session.send(bytes);
        },
        (e: unknown) => {
          this.chainBytes -= size;
          // A Blob that cannot be read fails the connection, as in browsers.
          this.dispatchEvent(Object.assign(new Event("error"), { error: e }));
          this.close(1011);
        },
      )
      .finally(() => {
        if (this.sendChain === chain) this.sendChain = null;
      });
    this.sendChain = chain;
  }

  close(code?: number, reason?: string): void {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new DOMException(`close code ${code} is neither 1000 nor 3000-4999`, "InvalidAccessError");
    }
    if (reason !== undefined && new TextEncoder().encode(reason).byteLength > 123) {
      throw new DOMException("a close reason is at most 123 bytes of UTF-8", "SyntaxError");
    }
    if (this.state === TailnetWebSocket.CLOSING || this.state === TailnetWebSocket.CLOSED) return;
    if (this.state === TailnetWebSocket.CONNECTING) {
      // As in browsers: the connection fails, with an error and a 1006 close.
      this.state = TailnetWebSocket.CLOSED;
      this.abort.abort(new DOMException("closed before the connection was established", "AbortError"));
      queueMicrotask(() => {
        this.dispatchEvent(new Event("error"));
        this.dispatchEvent(new CloseEventImpl("close", { code: 1006, reason: "", wasClean: false }));
      });
      return;
    }
    this.state = TailnetWebSocket.CLOSING;
    this.session?.close(code ?? (reason ? 1000 : undefined), reason ?? "");
  }

  private opened(session: WebSocketSession): void {
    if (this.state === TailnetWebSocket.CLOSED) {
      // close() while the handshake was finishing.
      session.start({ message: () => undefined, close: () => undefined });
      session.close(1000);
      return;
    }
    this.session = session;
    this.proto = session.protocol;
    this.state = TailnetWebSocket.OPEN;
    const origin = new URL(this.url).origin;
    session.start({
      message: (data) => {
        if (this.state !== TailnetWebSocket.OPEN) return;
        const payload =
          typeof data === "string"
            ? data
            : this.type === "arraybuffer"
              ? (data.buffer as ArrayBuffer) // the session hands out whole, unshared buffers
              : new Blob([data as Uint8Array<ArrayBuffer>]);
        this.dispatchEvent(new MessageEvent("message", { data: payload, origin }));
      },
      close: (c) => {
        this.state = TailnetWebSocket.CLOSED;
        if (c.error) this.dispatchEvent(Object.assign(new Event("error"), { error: c.error }));
        this.dispatchEvent(
          new CloseEventImpl("close", { code: c.code, reason: c.reason, wasClean: c.wasClean }),
        );
      },
    });
    this.dispatchEvent(new Event("open"));
  }

  private handler<E extends Event>(type: string): Handler<E> {
    return (this.handlerProps.get(type)?.fn as Handler<E> | undefined) ?? null;
  }

  /** on<type> = f: one listener per type, replaced in place, as EventTarget attributes behave. */
  private setHandler<E extends Event>(type: string, f: Handler<E>): void {
    const old = this.handlerProps.get(type);
    if (old) this.removeEventListener(type, old.listener);
    this.handlerProps.delete(type);
    if (typeof f !== "function") return;
    const listener = (ev: Event) => void f.call(this, ev as E);
    this.handlerProps.set(type, { fn: f, listener });
    this.addEventListener(type, listener);
  }
}

/** The bytes of an ArrayBuffer or a view; copied when `copy` (the page may reuse its buffer right after send). */
function bytesOf(data: ArrayBufferLike | ArrayBufferView, copy: boolean): Uint8Array {
  const view = ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data);
  return copy ? view.slice() : view;
}
