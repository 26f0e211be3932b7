// An HTTP/1.1 client over byte streams: the service worker carries a page's
// requests to an app in the tailnet over TCP connections of the browser's node
// (web streams, see engine/sockets.ts). fetch() cannot be pointed at those
// streams, so this speaks HTTP/1.1 itself: keep-alive with an idle pool,
// Content-Length, chunked and close-delimited bodies, interim responses, and
// Upgrade (WebSocket). Bodies stream both ways with back-pressure; nothing
// collects a whole body. Browser-safe.

/** A bidirectional byte stream: one TCP connection. */
import type { Duplex } from "./duplex";

export type { Duplex };
/** Open a new connection to the app. */
export type Dial = () => Promise<Duplex>;

export interface HttpRequest {
  method: string;
  /** Path and query (origin-form), e.g. `/a/b?c=d`. */
  target: string;
  /** The Host header's value, e.g. `server:8080`. */
  host: string;
  /** Sent as given, in order; Host, Content-Length and Transfer-Encoding are this client's (see below). */
  headers: [string, string][];
  /** Bytes go with Content-Length, a stream chunked. */
  body?: Uint8Array | ReadableStream<Uint8Array> | null;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  /** Raw, in order, duplicates kept (Set-Cookie!); names as the server spelled them. */
  headers: [string, string][];
  /** null when the response has no body by definition (HEAD, 1xx, 204, 304). */
  body: ReadableStream<Uint8Array> | null;
}

export type HttpErrorCode = "malformed" | "too_large" | "closed" | "timeout" | "aborted";

export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(
    message: string,
    /**
     * `malformed`: the server (or the request given) broke HTTP/1.1 syntax;
     * `too_large`: a head or chunk line over its bound; `closed`: the
     * connection failed or ended early; `timeout`: no response head in time;
     * `aborted`: the caller's signal (or a failing request body).
     */
    readonly code: HttpErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface HttpClientOptions {
  /** Idle keep-alive connections kept (default 6, as browsers open per host). */
  maxIdle?: number;
  /** Bound on a response head (status line and headers), and on chunked trailers (default 64 KiB). */
  maxHeaderBytes?: number;
  /** From the request's start (dial included) to its final response head (default 60 s). */
  headersTimeoutMs?: number;
  /** An idle connection is closed after this long (default 30 s); servers drop theirs sooner or later anyway. */
  idleTimeoutMs?: number;
}

export interface UpgradeResult {
  response: HttpResponse;
  /** The upgraded connection, or null when the server answered something other than 101. */
  duplex: Duplex | null;
}

const DEFAULT_MAX_IDLE = 6;
const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;
const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** A chunk-size line is a hex number and maybe extensions; nothing legitimate comes near this. */
const MAX_CHUNK_LINE = 4096;
/** 2^52: a chunk larger than this is not a chunk, and the number would lose precision. */
const MAX_CHUNK_HEX_DIGITS = 13;
/** A request body of bytes up to this size goes out in the same write as the head (one segment, not two). */
const COALESCE_BODY_BYTES = 16 * 1024;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Header values may hold any byte but NUL, CR and LF (obs-text included: Headers are ByteStrings). */
const BAD_VALUE = /[\0\r\n]/;
/** Origin-, absolute- or asterisk-form: visible ASCII only. */
const TARGET = /^[\x21-\x7e]+$/;
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** Methods whose requests have a body by definition: without one they say Content-Length: 0. */
const EXPECTS_BODY = new Set(["POST", "PUT", "PATCH"]);
/** Framing is this client's to decide: a caller's value could desynchronise the connection. */
const OWN_HEADERS = new Set(["host", "content-length", "transfer-encoding"]);

/** Thrown inside an attempt when a reused connection turned out dead before any response byte. */
class StaleConnection extends Error {
  constructor(readonly error: HttpError) {
    super(error.message);
  }
}

/**
 * One connection: reads can be pushed back (what follows a head or a body
 * belongs to the next reader), and destroying it records why, so that every
 * later read or write fails with that reason instead of a generic one.
 */
class Connection {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private leftover: Uint8Array | null = null;
  /** A read started while idle (to notice the server closing); the next reader takes it over. */
  private pending: Promise<ReadableStreamReadResult<Uint8Array>> | null = null;
  /** Why this side gave up on the connection (abort, timeout, protocol error). */
  error: HttpError | null = null;
  /** The peer ended or reset the connection. */
  peerGone = false;
  idle = false;
  idleTimer: ReturnType<typeof setTimeout> | null = null;
  /** Exchanges started on this connection. */
  uses = 0;

  constructor(duplex: Duplex) {
    this.reader = duplex.readable.getReader();
    this.writer = duplex.writable.getWriter();
  }

  get destroyed(): boolean {
    return this.error !== null || this.peerGone;
  }

  get hasLeftover(): boolean {
    return this.leftover !== null;
  }

  /** The next bytes, or null at the end of the stream. */
  async read(): Promise<Uint8Array | null> {
    for (;;) {
      if (this.error) throw this.error;
      if (this.leftover) {
        const l = this.leftover;
        this.leftover = null;
        return l;
      }
      const p = this.pending ?? this.reader.read();
      this.pending = null;
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await p;
      } catch (e) {
        if (this.error) throw this.error;
        this.peerGone = true;
        throw new HttpError(`the connection failed: ${errorText(e)}`, "closed", { cause: e });
      }
      // Cancelling the reader (destroy) ends a pending read as if the stream ended.
      if (this.error) throw this.error;
      if (r.done) {
        this.peerGone = true;
        return null;
      }
      if (r.value.byteLength > 0) return r.value;
    }
  }

  unread(bytes: Uint8Array): void {
    if (bytes.byteLength > 0) this.leftover = bytes;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.error) throw this.error;
    try {
      await this.writer.write(bytes);
    } catch (e) {
      if (this.error) throw this.error;
      this.peerGone = true;
      throw new HttpError(`writing to the connection failed: ${errorText(e)}`, "closed", { cause: e });
    }
  }

  /** Watch an idle connection: if the server closes it (or sends anything), call `gone`. */
  watch(gone: () => void): void {
    const p = this.reader.read();
    this.pending = p;
    p.then(
      (r) => {
        if (!this.idle) return; // a request took the connection over, and the read with it
        if (!r.done && r.value.byteLength > 0) this.leftover = r.value; // unsolicited bytes: unusable
        this.pending = null;
        this.peerGone = true;
        gone();
      },
      () => {
        if (!this.idle) return; // the request that took the connection over sees this error
        this.pending = null;
        this.peerGone = true;
        gone();
      },
    );
  }

  /** Upgrade: the connection as streams again, with what was read past the head first. */
  detach(): Duplex {
    const readable = new ReadableStream<Uint8Array>(
      {
        pull: async (c) => {
          try {
            const bytes = await this.read();
            if (bytes) c.enqueue(bytes);
            else c.close();
          } catch (e) {
            c.error(e);
          }
        },
        cancel: (reason) => this.reader.cancel(reason),
      },
      { highWaterMark: 0 },
    );
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.writer.close(),
      abort: (reason) => this.writer.abort(reason),
    });
    return { readable, writable };
  }

  destroy(error: HttpError): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.idle = false;
    if (this.error) return;
    this.error = error;
    // Both calls fail when the stream already failed; that failure was (or will
    // be) reported by whoever was using the connection, and this one is over.
    this.reader.cancel(error).catch(() => undefined);
    this.writer.abort(error).catch(() => undefined);
  }
}

/** Per request: the caller's signal and the head deadline, aimed at whatever connection is current. */
class Guard {
  failure: HttpError | null = null;
  private target: ((e: HttpError) => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly failed: Promise<never>;
  private rejectFailed!: (e: HttpError) => void;
  private readonly onAbort = () =>
    this.fail(new HttpError("the request was aborted", "aborted", { cause: this.signal?.reason }));

  constructor(
    private readonly signal: AbortSignal | undefined,
    timeoutMs: number,
  ) {
    this.failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
    // Only races below observe this promise; a failure nobody races is still reported through `failure`.
    this.failed.catch(() => undefined);
    if (signal?.aborted) this.onAbort();
    else signal?.addEventListener("abort", this.onAbort, { once: true });
    if (!this.failure) {
      this.timer = setTimeout(
        () => this.fail(new HttpError(`no response head within ${timeoutMs} ms`, "timeout")),
        timeoutMs,
      );
    }
  }

  fail(e: HttpError): void {
    if (this.failure) return;
    this.failure = e;
    this.stopTimer();
    this.rejectFailed(e);
    this.target?.(e);
  }

  /** Where a failure goes from now on (the connection, later the response body). */
  aim(target: ((e: HttpError) => void) | null): void {
    this.target = target;
    if (this.failure) target?.(this.failure);
  }

  race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.failed]);
  }

  stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  dispose(): void {
    this.stopTimer();
    this.target = null;
    this.signal?.removeEventListener("abort", this.onAbort);
  }
}

interface ParsedHead {
  version: 0 | 1;
  status: number;
  statusText: string;
  headers: [string, string][];
}

type Framing =
  { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" } | { kind: "close" };

export class HttpClient {
  private readonly idle: Connection[] = [];
  private closed = false;
  private readonly maxIdle: number;
  private readonly maxHeaderBytes: number;
  private readonly headersTimeoutMs: number;
  private readonly idleTimeoutMs: number;

  constructor(
    private readonly dial: Dial,
    opts: HttpClientOptions = {},
  ) {
    this.maxIdle = opts.maxIdle ?? DEFAULT_MAX_IDLE;
    this.maxHeaderBytes = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.headersTimeoutMs = opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  /** Idle connections in the pool (for tests and status). */
  get idleConnections(): number {
    return this.idle.length;
  }

  /**
   * Send a request and resolve with the response head; the body streams after.
   * The connection goes back to the pool once the body has been read to its
   * end. Redirects are returned, not followed. Rejects with HttpError.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const { response } = await this.exchange(req, false);
    return response;
  }

  /**
   * Send an Upgrade request (the caller gives Connection and Upgrade headers)
   * on a connection of its own. On 101 the connection is the caller's, with the
   * bytes the server sent after its head first in `duplex.readable`.
   */
  upgrade(req: HttpRequest): Promise<UpgradeResult> {
    return this.exchange(req, true);
  }

  /** Close idle connections; later requests fail. Requests in flight finish, and their connections close. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy(new HttpError("the client was closed", "closed"));
  }

  private async exchange(req: HttpRequest, upgrade: boolean): Promise<UpgradeResult> {
    if (this.closed) throw new HttpError("the client is closed", "closed");
    const method = req.method.toUpperCase();
    const head = encodeHead(method, req);
    const guard = new Guard(req.signal, this.headersTimeoutMs);
    const body = req.body ?? null;
    try {
      const pooled = upgrade ? null : this.takeIdle();
      try {
        return await this.attempt(pooled ?? (await this.connect(guard)), method, head, body, upgrade, guard);
      } catch (e) {
        // A kept-alive connection the server closed meanwhile looks alive until
        // used; a request that cannot have been processed (no response byte)
        // is sent again once, when sending it twice is harmless.
        const retry =
          e instanceof StaleConnection && IDEMPOTENT.has(method) && !(body instanceof ReadableStream);
        if (!retry) throw e instanceof StaleConnection ? e.error : e;
      }
      return await this.attempt(await this.connect(guard), method, head, body, upgrade, guard);
    } catch (e) {
      guard.dispose();
      if (body instanceof ReadableStream && !body.locked) {
        // The body was never read; the caller gets the request's error, and the
        // body's producer learns nobody will read it.
        body.cancel(e).catch(() => undefined);
      }
      if (e instanceof StaleConnection) throw e.error;
      throw e;
    }
  }

  private takeIdle(): Connection | null {
    for (;;) {
      const c = this.idle.pop();
      if (!c) return null;
      c.idle = false;
      if (c.idleTimer) clearTimeout(c.idleTimer);
      c.idleTimer = null;
      if (!c.destroyed && !c.hasLeftover) return c;
      c.destroy(new HttpError("the connection closed while idle", "closed"));
    }
  }

  private async connect(guard: Guard): Promise<Connection> {
    if (guard.failure) throw guard.failure;
    const dialing = this.dial();
    let duplex: Duplex;
    try {
      duplex = await guard.race(dialing);
    } catch (e) {
      if (guard.failure) {
        // The dial may still succeed; nobody wants that connection then.
        dialing.then(
          (d) => new Connection(d).destroy(guard.failure!),
          () => undefined, // its failure is moot: the request already failed with the guard's reason
        );
        throw guard.failure;
      }
      throw new HttpError(`could not connect: ${errorText(e)}`, "closed", { cause: e });
    }
    return new Connection(duplex);
  }

  private async attempt(
    conn: Connection,
    method: string,
    head: Uint8Array,
    body: Uint8Array | ReadableStream<Uint8Array> | null,
    upgrade: boolean,
    guard: Guard,
  ): Promise<UpgradeResult> {
    try {
      return await this.exchangeOn(conn, method, head, body, upgrade, guard);
    } catch (e) {
      // Whatever failed, this connection is in an unknown state: it goes.
      const err = e instanceof StaleConnection ? e.error : e;
      conn.destroy(
        err instanceof HttpError
          ? err
          : new HttpError(`the request failed: ${errorText(err)}`, "closed", { cause: err }),
      );
      throw e;
    }
  }

  private async exchangeOn(
    conn: Connection,
    method: string,
    head: Uint8Array,
    body: Uint8Array | ReadableStream<Uint8Array> | null,
    upgrade: boolean,
    guard: Guard,
  ): Promise<UpgradeResult> {
    const reused = conn.uses > 0;
    conn.uses++;
    guard.aim((e) => conn.destroy(e));
    const stale = (e: unknown): unknown =>
      reused && e instanceof HttpError && e.code === "closed" && conn.error === null
        ? new StaleConnection(e)
        : e;

    // The head, and a small body with it; a larger body streams while the response is read
    // (a server may answer before it has read everything, 413 say).
    let sending: Promise<void>;
    try {
      if (body instanceof Uint8Array && body.byteLength <= COALESCE_BODY_BYTES) {
        const both = new Uint8Array(head.byteLength + body.byteLength);
        both.set(head);
        both.set(body, head.byteLength);
        await conn.write(both);
        sending = Promise.resolve();
      } else {
        await conn.write(head);
        sending = body === null ? Promise.resolve() : sendBody(conn, body);
      }
    } catch (e) {
      throw stale(e);
    }
    let bodySent = false;
    const sent = sending.then(
      () => {
        bodySent = true;
      },
      (e: unknown) => {
        // A failed body write means a failed connection: the response read sees
        // the same end. A failed body source is the caller's: it ends the request.
        if (e instanceof HttpError && e.code === "aborted") guard.fail(e);
      },
    );

    let parsed: ParsedHead;
    let gotBytes = false;
    try {
      for (;;) {
        parsed = await readHead(conn, this.maxHeaderBytes, () => (gotBytes = true));
        if (parsed.status >= 200 || (parsed.status === 101 && upgrade)) break;
        if (parsed.status === 101)
          throw new HttpError("101 Switching Protocols without an Upgrade request", "malformed");
        // 100 Continue, 102, 103 Early Hints: interim, the real response follows.
      }
    } catch (e) {
      if (e instanceof HttpError && e.code !== "closed") conn.destroy(e);
      throw gotBytes ? e : stale(e);
    }
    guard.stopTimer();
    const response: HttpResponse = {
      status: parsed.status,
      statusText: parsed.statusText,
      headers: parsed.headers,
      body: null,
    };

    if (upgrade && parsed.status === 101) {
      guard.dispose();
      return { response, duplex: conn.detach() };
    }

    let framing: Framing;
    try {
      framing = responseFraming(method, parsed);
    } catch (e) {
      if (e instanceof HttpError) conn.destroy(e);
      throw e;
    }
    const keepAlive = !upgrade && persistent(parsed) && framing.kind !== "close";
    const finish = (complete: boolean) => {
      guard.dispose();
      if (!complete) return; // the body's failure destroyed the connection
      // Reusable only when both messages ended where their framing says.
      if (keepAlive && bodySent && !conn.hasLeftover) this.release(conn);
      else if (keepAlive && !bodySent) {
        // The server answered before the request body was all sent: the
        // connection is reusable once the rest went out (a body that does not end
        // holds it, and is the caller's to cancel).
        void sent.then(() =>
          bodySent && !conn.hasLeftover
            ? this.release(conn)
            : conn.destroy(new HttpError("the request body did not complete", "closed")),
        );
      } else conn.destroy(new HttpError("the connection is not reusable", "closed"));
    };

    if (framing.kind === "none" || (framing.kind === "length" && framing.length === 0)) {
      response.body = framing.kind === "none" ? null : emptyBody();
      finish(true);
      return { response, duplex: null };
    }
    response.body = bodyStream(conn, framing, this.maxHeaderBytes, guard, finish);
    return { response, duplex: null };
  }

  private release(conn: Connection): void {
    if (this.closed || conn.destroyed || this.idle.length >= this.maxIdle) {
      conn.destroy(new HttpError("the connection is not kept", "closed"));
      return;
    }
    conn.idle = true;
    this.idle.push(conn);
    const drop = () => {
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
      conn.destroy(new HttpError("the connection was idle too long or closed by the server", "closed"));
    };
    conn.watch(drop);
    conn.idleTimer = setTimeout(drop, this.idleTimeoutMs);
  }
}

/** The request line and headers, as bytes (Latin-1: header values are ByteStrings). */
function encodeHead(method: string, req: HttpRequest): Uint8Array {
  if (!TOKEN.test(method))
    throw new HttpError(`invalid request method ${JSON.stringify(method)}`, "malformed");
  if (!TARGET.test(req.target))
    throw new HttpError(`invalid request target ${JSON.stringify(req.target)}`, "malformed");
  if (req.host === "" || BAD_VALUE.test(req.host) || /[\s/]/.test(req.host)) {
    throw new HttpError(`invalid host ${JSON.stringify(req.host)}`, "malformed");
  }
  let head = `${method} ${req.target} HTTP/1.1\r\nHost: ${req.host}\r\n`;
  for (const [name, value] of req.headers) {
    if (!TOKEN.test(name))
      throw new HttpError(`invalid request header name ${JSON.stringify(name)}`, "malformed");
    if (BAD_VALUE.test(value)) throw new HttpError(`invalid value for request header ${name}`, "malformed");
    if (OWN_HEADERS.has(name.toLowerCase())) continue;
    head += `${name}: ${value}\r\n`;
  }
  const body = req.body ?? null;
  if (body instanceof ReadableStream) head += "Transfer-Encoding: chunked\r\n";
  else if (body !== null) head += `Content-Length: ${body.byteLength}\r\n`;
  else if (EXPECTS_BODY.has(method)) head += "Content-Length: 0\r\n";
  head += "\r\n";
  const bytes = new Uint8Array(head.length);
  for (let i = 0; i < head.length; i++) {
    const c = head.charCodeAt(i);
    if (c > 0xff) throw new HttpError("request header values must be Latin-1 (a ByteString)", "malformed");
    bytes[i] = c;
  }
  return bytes;
}

const CRLF = new Uint8Array([13, 10]);
const LAST_CHUNK = new Uint8Array([48, 13, 10, 13, 10]); // "0\r\n\r\n"

async function sendBody(conn: Connection, body: Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
  if (body instanceof Uint8Array) return conn.write(body);
  const reader = body.getReader();
  try {
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        const err = new HttpError(`reading the request body failed: ${errorText(e)}`, "aborted", {
          cause: e,
        });
        conn.destroy(err);
        throw err;
      }
      if (r.done) break;
      if (r.value.byteLength === 0) continue; // an empty chunk would read as the last one
      // Size line, data, CRLF: the data goes out as given, never copied.
      await conn.write(ascii(`${r.value.byteLength.toString(16)}\r\n`));
      await conn.write(r.value);
      await conn.write(CRLF);
    }
    await conn.write(LAST_CHUNK);
  } catch (e) {
    // The connection failed under the body: its producer learns nobody reads on.
    reader.cancel(e).catch(() => undefined);
    throw e;
  }
}

/**
 * Read one response head. Bytes are scanned once for the empty line; only the
 * head is decoded, what follows it is pushed back for the body.
 */
async function readHead(conn: Connection, max: number, onBytes: () => void): Promise<ParsedHead> {
  const parts: Uint8Array[] = [];
  let total = 0;
  let lineBytes = 0;
  for (;;) {
    const chunk = await conn.read();
    if (chunk === null) {
      throw new HttpError(
        total === 0
          ? "the connection closed before a response"
          : "the connection closed inside a response head",
        "closed",
      );
    }
    onBytes();
    let end = -1;
    for (let i = 0; i < chunk.byteLength; i++) {
      const b = chunk[i]!;
      if (b === 10) {
        if (lineBytes === 0) {
          end = i + 1;
          break;
        }
        lineBytes = 0;
      } else if (b !== 13) lineBytes++;
    }
    const used = end < 0 ? chunk : chunk.subarray(0, end);
    total += used.byteLength;
    if (total > max) throw new HttpError(`response head larger than ${max} bytes`, "too_large");
    parts.push(used);
    if (end >= 0) {
      conn.unread(chunk.subarray(end));
      return parseHead(latin1(parts));
    }
  }
}

function parseHead(text: string): ParsedHead {
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  const m = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(lines[0] ?? "");
  if (!m)
    throw new HttpError(
      `malformed status line ${JSON.stringify((lines[0] ?? "").slice(0, 100))}`,
      "malformed",
    );
  const statusText = m[3] ?? "";
  if (BAD_VALUE.test(statusText)) throw new HttpError("malformed reason phrase", "malformed");
  const headers: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === "") break;
    if (line.startsWith(" ") || line.startsWith("\t")) {
      // obs-fold: RFC 9112 lets a user agent replace it with a space.
      const last = headers[headers.length - 1];
      if (!last) throw new HttpError("header continuation without a header", "malformed");
      last[1] = `${last[1]} ${line.trim()}`.trim();
      continue;
    }
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name))
      throw new HttpError(`malformed header line ${JSON.stringify(line.slice(0, 100))}`, "malformed");
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (BAD_VALUE.test(value)) throw new HttpError(`malformed value of header ${name}`, "malformed");
    headers.push([name, value]);
  }
  return { version: m[1] === "0" ? 0 : 1, status: Number(m[2]), statusText, headers };
}

/** Every value of a header, comma lists split, lower-cased. */
function tokens(headers: [string, string][], name: string): string[] {
  const out: string[] = [];
  for (const [n, v] of headers) {
    if (n.toLowerCase() !== name) continue;
    for (const t of v.split(",")) {
      const s = t.trim().toLowerCase();
      if (s) out.push(s);
    }
  }
  return out;
}

/** How the response body is delimited (RFC 9112 section 6.3). */
function responseFraming(method: string, head: ParsedHead): Framing {
  if (method === "HEAD" || head.status < 200 || head.status === 204 || head.status === 304)
    return { kind: "none" };
  const te = tokens(head.headers, "transfer-encoding");
  if (te.length > 0) return te[te.length - 1] === "chunked" ? { kind: "chunked" } : { kind: "close" };
  const cl = tokens(head.headers, "content-length");
  if (cl.length === 0) return { kind: "close" };
  if (!cl.every((v) => v === cl[0]) || !/^\d{1,15}$/.test(cl[0]!)) {
    throw new HttpError(`malformed Content-Length ${JSON.stringify(cl.join(", "))}`, "malformed");
  }
  return { kind: "length", length: Number(cl[0]) };
}

/** Whether the connection may carry another request after this response. */
function persistent(head: ParsedHead): boolean {
  const conn = tokens(head.headers, "connection");
  if (conn.includes("close")) return false;
  // Transfer-Encoding with Content-Length is how request smuggling starts: never reuse.
  const hasTe = tokens(head.headers, "transfer-encoding").length > 0;
  if (hasTe && tokens(head.headers, "content-length").length > 0) return false;
  return head.version === 1 || conn.includes("keep-alive");
}

function emptyBody(): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({ start: (c) => c.close() });
}

/**
 * The response body as a stream, read from the connection only as the reader
 * asks (back-pressure reaches the server). `finish(true)` once it ended where its
 * framing says; a failure or cancel destroys the connection.
 */
function bodyStream(
  conn: Connection,
  framing: Framing,
  maxTrailerBytes: number,
  guard: Guard,
  finish: (complete: boolean) => void,
): ReadableStream<Uint8Array> {
  let remaining = framing.kind === "length" ? framing.length : 0;
  const chunked = framing.kind === "chunked" ? new ChunkedDecoder(conn, maxTrailerBytes) : null;
  let done = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const fail = (e: HttpError) => {
    if (done) return;
    done = true;
    conn.destroy(e);
    finish(false);
    try {
      controller.error(e);
    } catch {
      // the stream was cancelled first: its reader already moved on
    }
  };
  return new ReadableStream<Uint8Array>(
    {
      start: (c) => {
        controller = c;
        // From here an abort errors the body (the head timeout was stopped).
        guard.aim(fail);
      },
      pull: async (c) => {
        if (done) return;
        try {
          if (chunked) {
            const piece = await chunked.next();
            if (piece) return c.enqueue(piece);
          } else {
            const bytes = await conn.read();
            if (bytes === null) {
              if (framing.kind === "close") {
                done = true;
                c.close();
                return finish(false); // the connection ended with the body: nothing to keep
              }
              throw new HttpError(
                `the connection closed with ${remaining} body bytes still to come`,
                "closed",
              );
            }
            if (framing.kind === "close") return c.enqueue(bytes);
            const take = Math.min(remaining, bytes.byteLength);
            conn.unread(bytes.subarray(take));
            remaining -= take;
            c.enqueue(take === bytes.byteLength ? bytes : bytes.subarray(0, take));
            if (remaining > 0) return;
          }
          done = true;
          c.close();
          finish(true);
        } catch (e) {
          fail(
            e instanceof HttpError
              ? e
              : new HttpError(`reading the body failed: ${errorText(e)}`, "closed", { cause: e }),
          );
        }
      },
      cancel: () => {
        if (done) return;
        done = true;
        // The rest of the body is still on its way; the connection cannot carry another request.
        conn.destroy(new HttpError("the response body was cancelled", "aborted"));
        finish(false);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Chunked transfer coding, decoded as bytes arrive: data is passed on as views, trailers are read and dropped. */
class ChunkedDecoder {
  private state: "size" | "data" | "data-cr" | "data-lf" | "trailers" | "done" = "size";
  private line = "";
  private remaining = 0;
  private trailerLine = 0;
  private trailerBytes = 0;

  constructor(
    private readonly conn: Connection,
    private readonly maxTrailerBytes: number,
  ) {}

  /** The next piece of data, or null after the last chunk and its trailers. */
  async next(): Promise<Uint8Array | null> {
    while (this.state !== "done") {
      const chunk = await this.conn.read();
      if (chunk === null) throw new HttpError("the connection closed inside a chunked body", "closed");
      let i = 0;
      while (i < chunk.byteLength) {
        if (this.state === "data") {
          const n = Math.min(this.remaining, chunk.byteLength - i);
          const piece = chunk.subarray(i, i + n);
          this.remaining -= n;
          if (this.remaining === 0) this.state = "data-cr";
          this.conn.unread(chunk.subarray(i + n));
          return piece;
        }
        const b = chunk[i++]!;
        switch (this.state) {
          case "size":
            if (b === 10) this.sizeLine();
            else if (this.line.length >= MAX_CHUNK_LINE) {
              throw new HttpError(`chunk size line longer than ${MAX_CHUNK_LINE} bytes`, "too_large");
            } else this.line += String.fromCharCode(b);
            break;
          case "data-cr":
            if (b === 13) this.state = "data-lf";
            else if (b === 10) this.state = "size";
            else throw new HttpError("chunk data not followed by CRLF", "malformed");
            break;
          case "data-lf":
            if (b !== 10) throw new HttpError("chunk data not followed by CRLF", "malformed");
            this.state = "size";
            break;
          case "trailers":
            if (++this.trailerBytes > this.maxTrailerBytes) {
              throw new HttpError(`chunked trailers larger than ${this.maxTrailerBytes} bytes`, "too_large");
            }
            if (b === 10) {
              if (this.trailerLine === 0) {
                this.state = "done";
                this.conn.unread(chunk.subarray(i));
                return null;
              }
              this.trailerLine = 0;
            } else if (b !== 13) this.trailerLine++;
            break;
        }
      }
    }
    return null;
  }

  private sizeLine(): void {
    const line = this.line.endsWith("\r") ? this.line.slice(0, -1) : this.line;
    this.line = "";
    const semi = line.indexOf(";"); // chunk extensions: ignored
    const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
    if (!/^[0-9a-fA-F]+$/.test(hex))
      throw new HttpError(`malformed chunk size ${JSON.stringify(hex.slice(0, 40))}`, "malformed");
    const digits = hex.replace(/^0+(?=.)/, "");
    if (digits.length > MAX_CHUNK_HEX_DIGITS)
      throw new HttpError(`chunk size 0x${digits.slice(0, 40)} too large`, "too_large");
    this.remaining = parseInt(digits, 16);
    this.state = this.remaining === 0 ? "trailers" : "data";
  }
}

function latin1(parts: Uint8Array[]): string {
  let s = "";
  for (const p of parts) {
    for (let i = 0; i < p.byteLength; i += 8192) s += String.fromCharCode(...p.subarray(i, i + 8192));
  }
  return s;
}

function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
