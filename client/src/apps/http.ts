// HTTP/1.1 over a tailnet TCP stream, for the browser's request panel now
// and the web-app service worker next: one request per connection or
// keep-alive reuse, bodies by Content-Length, chunked or until close, no
// body for HEAD/204/304, interim 1xx answers skipped. Heads are bounded;
// bodies stream (nothing buffers a whole response). Browser-safe.
import type { Duplex } from "./duplex";

export type HttpErrorCode = "malformed" | "too_large" | "closed" | "timeout" | "aborted";

export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(
    message: string,
    readonly code: HttpErrorCode,
  ) {
    super(message);
  }
}

export interface HttpRequest {
  method: string;
  /** Path and query, e.g. `/api/items?x=1`. */
  target: string;
  /** The Host header (`machine:port`). */
  host: string;
  headers?: [string, string][];
  body?: Uint8Array | null;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  /** In order, duplicates kept (Set-Cookie). */
  headers: [string, string][];
  /** null when the answer has no body (HEAD, 204, 304). */
  body: ReadableStream<Uint8Array> | null;
}

export type Dial = () => Promise<Duplex>;

const MAX_HEAD = 64 * 1024;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const enc = new TextEncoder();
const dec = new TextDecoder("latin1");

/** Bytes read from a connection, with what was read past the last answer kept for the next. */
class Reader {
  private buf = new Uint8Array(0);
  private done = false;

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.reader.read();
    if (r.done) {
      this.done = true;
      return false;
    }
    const next = new Uint8Array(this.buf.length + r.value.length);
    next.set(this.buf);
    next.set(r.value, this.buf.length);
    this.buf = next;
    return true;
  }

  /** Everything up to and including CRLF CRLF (a head), bounded. */
  async head(): Promise<string | null> {
    let from = 0;
    for (;;) {
      for (let i = Math.max(0, from - 3); i + 3 < this.buf.length; i++) {
        if (
          this.buf[i] === 13 &&
          this.buf[i + 1] === 10 &&
          this.buf[i + 2] === 13 &&
          this.buf[i + 3] === 10
        ) {
          const text = dec.decode(this.buf.subarray(0, i));
          this.buf = this.buf.subarray(i + 4);
          return text;
        }
      }
      from = this.buf.length;
      if (this.buf.length > MAX_HEAD)
        throw new HttpError(`the response head is over ${MAX_HEAD} bytes`, "too_large");
      if (!(await this.fill())) {
        if (this.buf.length === 0) return null;
        throw new HttpError("the connection closed in the middle of a response head", "closed");
      }
    }
  }

  /** One line (for chunk sizes), bounded. */
  async line(): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf(10);
      if (i >= 0) {
        const text = dec.decode(this.buf.subarray(0, i)).replace(/\r$/, "");
        this.buf = this.buf.subarray(i + 1);
        return text;
      }
      if (this.buf.length > 4096) throw new HttpError("a chunk-size line is too long", "malformed");
      if (!(await this.fill())) throw new HttpError("the connection closed inside a chunked body", "closed");
    }
  }

  /** Up to `max` bytes (at least one), or null at the end of the stream. */
  async some(max: number): Promise<Uint8Array | null> {
    if (this.buf.length === 0 && !(await this.fill())) return null;
    const n = Math.min(max, this.buf.length);
    const out = this.buf.slice(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  cancel(): void {
    this.done = true;
    void this.reader.cancel().catch(() => undefined);
  }
}

interface Conn {
  reader: Reader;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Whether the connection may carry another request. */
  reusable: boolean;
}

function parseHead(text: string): { status: number; statusText: string; headers: [string, string][] } {
  const lines = text.split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? "");
  if (!m)
    throw new HttpError(
      `not an HTTP/1.x status line: ${JSON.stringify((lines[0] ?? "").slice(0, 80))}`,
      "malformed",
    );
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    if (colon <= 0 || !TOKEN.test(name))
      throw new HttpError(`a malformed header line: ${JSON.stringify(line.slice(0, 80))}`, "malformed");
    headers.push([name.toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return { status: Number(m[1]), statusText: m[2] ?? "", headers };
}

const get = (headers: [string, string][], name: string) => headers.find(([n]) => n === name)?.[1];

/** An HTTP/1.1 client for one origin (`host`), keeping idle connections for reuse. */
export class HttpClient {
  private readonly idle: Conn[] = [];

  constructor(
    private readonly dial: Dial,
    private readonly opts: { maxIdle?: number } = {},
  ) {}

  async request(req: HttpRequest): Promise<HttpResponse> {
    if (!TOKEN.test(req.method)) throw new HttpError(`not an HTTP method: ${req.method}`, "malformed");
    if (!req.target.startsWith("/") || /[\s]/.test(req.target))
      throw new HttpError(`a request target must be a path without spaces: ${req.target}`, "malformed");
    const idempotent = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"].includes(req.method);
    const reused = this.idle.pop();
    try {
      return await this.exchange(reused ?? (await this.open()), req);
    } catch (e) {
      // A kept connection the server has since closed: once more on a fresh one, when that is safe.
      if (reused && idempotent && e instanceof HttpError && e.code === "closed")
        return this.exchange(await this.open(), req);
      throw e;
    }
  }

  private async open(): Promise<Conn> {
    const d = await this.dial();
    return { reader: new Reader(d.readable.getReader()), writer: d.writable.getWriter(), reusable: true };
  }

  private async exchange(conn: Conn, req: HttpRequest): Promise<HttpResponse> {
    const headers = (req.headers ?? []).filter(
      ([n]) => !["host", "content-length", "transfer-encoding", "connection"].includes(n.toLowerCase()),
    );
    for (const [n, v] of headers)
      if (!TOKEN.test(n) || /[\r\n]/.test(v))
        throw new HttpError(`a malformed request header: ${n}`, "malformed");
    const body = req.body ?? null;
    const head =
      `${req.method} ${req.target} HTTP/1.1\r\nHost: ${req.host}\r\n` +
      headers.map(([n, v]) => `${n}: ${v}\r\n`).join("") +
      (body || !["GET", "HEAD", "DELETE", "OPTIONS"].includes(req.method)
        ? `Content-Length: ${body?.length ?? 0}\r\n`
        : "") +
      "\r\n";
    const onAbort = () => {
      conn.reusable = false;
      conn.reader.cancel();
      void conn.writer.abort().catch(() => undefined);
    };
    if (req.signal?.aborted) throw new HttpError("the request was cancelled", "aborted");
    req.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await conn.writer.write(enc.encode(head));
      if (body?.length) await conn.writer.write(body);
    } catch {
      throw new HttpError("the connection closed before the request was sent", "closed");
    }
    let parsed;
    for (;;) {
      const text = await conn.reader.head().catch((e: unknown) => {
        throw req.signal?.aborted ? new HttpError("the request was cancelled", "aborted") : e;
      });
      if (text === null) throw new HttpError("the server closed the connection without answering", "closed");
      parsed = parseHead(text);
      // 101 is an upgrade (not for this client); other 1xx are interim: the answer follows.
      if (parsed.status >= 200 || parsed.status === 101) break;
    }
    const { status, statusText } = parsed;
    const h = parsed.headers;
    if ((get(h, "connection") ?? "").toLowerCase().includes("close")) conn.reusable = false;
    const noBody = req.method === "HEAD" || status === 204 || status === 304 || status === 101;
    const te = get(h, "transfer-encoding")?.toLowerCase();
    const cl = get(h, "content-length");
    let length: number | null = null;
    if (!noBody && !te && cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) throw new HttpError(`a malformed Content-Length: ${cl}`, "malformed");
      length = Number(cl);
    }
    const release = () => {
      req.signal?.removeEventListener("abort", onAbort);
      if (conn.reusable && this.idle.length < (this.opts.maxIdle ?? 6)) this.idle.push(conn);
      else this.discard(conn);
    };
    if (noBody || length === 0) {
      release();
      return {
        status,
        statusText,
        headers: h,
        body: noBody ? null : new ReadableStream({ start: (c) => c.close() }),
      };
    }
    const chunked = te !== undefined && te.split(",").pop()!.trim() === "chunked";
    if (te !== undefined && !chunked)
      throw new HttpError(`an unsupported Transfer-Encoding: ${te}`, "malformed");
    if (!chunked && length === null) conn.reusable = false;
    let left = length ?? Infinity;
    let chunkLeft = 0;
    let finished = false;
    const stream = new ReadableStream<Uint8Array>({
      pull: async (ctl) => {
        try {
          if (chunked) {
            if (chunkLeft === 0) {
              const line = await conn.reader.line();
              const size = /^([0-9a-fA-F]{1,8})(?:;.*)?$/.exec(line.trim());
              if (!size)
                throw new HttpError(
                  `a malformed chunk size: ${JSON.stringify(line.slice(0, 40))}`,
                  "malformed",
                );
              chunkLeft = parseInt(size[1]!, 16);
              if (chunkLeft === 0) {
                // Trailers (ignored) until an empty line.
                while ((await conn.reader.line()) !== "");
                finished = true;
                ctl.close();
                release();
                return;
              }
            }
            const part = await conn.reader.some(chunkLeft);
            if (!part) throw new HttpError("the connection closed inside a chunk", "closed");
            chunkLeft -= part.length;
            if (chunkLeft === 0 && (await conn.reader.line()) !== "")
              throw new HttpError("a chunk is longer than its size", "malformed");
            ctl.enqueue(part);
            return;
          }
          const part = await conn.reader.some(Math.min(left, 256 * 1024));
          if (!part) {
            if (length !== null)
              throw new HttpError(`the connection closed ${left} bytes before the body's end`, "closed");
            finished = true;
            ctl.close();
            this.discard(conn);
            return;
          }
          left -= part.length;
          ctl.enqueue(part);
          if (left === 0) {
            finished = true;
            ctl.close();
            release();
          }
        } catch (e) {
          conn.reusable = false;
          this.discard(conn);
          ctl.error(e);
        }
      },
      cancel: () => {
        if (!finished) {
          conn.reusable = false;
          this.discard(conn);
        }
      },
    });
    return { status, statusText, headers: h, body: stream };
  }

  private discard(conn: Conn): void {
    conn.reusable = false;
    conn.reader.cancel();
    void conn.writer.close().catch(() => undefined);
  }

  /** Close the kept connections. */
  close(): void {
    for (const c of this.idle.splice(0)) this.discard(c);
  }
}
