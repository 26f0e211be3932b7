import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server as NetServer,
  type Socket,
} from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { netDial } from "../testing/net-duplex";
import { HttpClient, HttpError, type Dial, type HttpResponse } from "./http";

const enc = new TextEncoder();
const dec = new TextDecoder();
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server: Server = createServer(handler);
  let sockets = 0;
  server.on("connection", () => sockets++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return { server, port, sockets: () => sockets };
}

/** A raw TCP server: `onRequest` gets each request head (bodies are not read) and its index on the socket. */
async function rawServer(onRequest: (socket: Socket, head: string, index: number) => void) {
  const open = new Set<Socket>();
  let sockets = 0;
  const server: NetServer = createNetServer((socket) => {
    sockets++;
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => undefined); // resets from the client are part of several tests
    let buf = "";
    let index = 0;
    socket.on("data", (b) => {
      buf += b.toString("latin1");
      for (let end = buf.indexOf("\r\n\r\n"); end >= 0; end = buf.indexOf("\r\n\r\n")) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        onRequest(socket, head, index++);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as AddressInfo).port, sockets: () => sockets };
}

/** Every chunk of a body, as read (the DOM lib types ReadableStream without async iteration). */
async function chunks(body: ReadableStream<Uint8Array>): Promise<Uint8Array[]> {
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
  return parts;
}

async function bytes(body: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  if (!body) throw new Error("no body");
  const parts = await chunks(body);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

const text = async (r: HttpResponse) => dec.decode(await bytes(r.body));

function get(client: HttpClient, target: string, extra: Partial<Parameters<HttpClient["request"]>[0]> = {}) {
  return client.request({ method: "GET", target, host: "app", headers: [], ...extra });
}

async function rejection(p: Promise<unknown>): Promise<HttpError> {
  const e = await p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(HttpError);
  return e as HttpError;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A connection that replays canned bytes one byte per chunk and records what was written. */
function byteDial(response: string): Dial & { written: () => string } {
  let written = "";
  const dial = Object.assign(
    async () => {
      const all = enc.encode(response);
      let i = 0;
      return {
        readable: new ReadableStream<Uint8Array>({
          pull(c) {
            if (i < all.length) c.enqueue(all.subarray(i, ++i));
            else c.close();
          },
        }),
        writable: new WritableStream<Uint8Array>({
          write(chunk) {
            written += dec.decode(chunk);
          },
        }),
      };
    },
    { written: () => written },
  );
  return dial;
}

describe("HttpClient", () => {
  it("reads a Content-Length body and keeps raw headers in order with duplicates", async () => {
    const { port } = await httpServer((req, res) => {
      res.setHeader("Set-Cookie", ["a=1; Path=/", "b=2; Path=/"]);
      res.setHeader("X-Path", `${req.method} ${req.url} ${req.headers.host}`);
      res.end("hello world");
    });
    const client = new HttpClient(netDial(port));
    const res = await get(client, "/p?q=1", { host: "server:8080" });
    expect(res.status).toBe(200);
    expect(res.statusText).toBe("OK");
    expect(res.headers.filter(([n]) => n.toLowerCase() === "set-cookie")).toEqual([
      ["Set-Cookie", "a=1; Path=/"],
      ["Set-Cookie", "b=2; Path=/"],
    ]);
    expect(res.headers).toContainEqual(["X-Path", "GET /p?q=1 server:8080"]);
    expect(res.headers).toContainEqual(["Content-Length", "11"]);
    expect(await text(res)).toBe("hello world");
    client.close();
  });

  it("reuses one keep-alive connection for sequential requests, counted at the server", async () => {
    const srv = await httpServer((req, res) => res.end(`you asked ${req.url}`));
    const dial = netDial(srv.port);
    const client = new HttpClient(dial);
    for (let i = 0; i < 4; i++) expect(await text(await get(client, `/${i}`))).toBe(`you asked /${i}`);
    expect(srv.sockets()).toBe(1);
    expect(dial.dials).toBe(1);
    expect(client.idleConnections).toBe(1);
    client.close();
    expect(client.idleConnections).toBe(0);
  });

  it("does not reuse a connection whose body was not read, or that said Connection: close", async () => {
    const srv = await httpServer((req, res) => {
      if (req.url === "/close") res.setHeader("Connection", "close");
      res.end("x".repeat(100));
    });
    const client = new HttpClient(netDial(srv.port));
    const unread = await get(client, "/a");
    expect(unread.status).toBe(200);
    // The first body is still unread, so its connection is busy: a second one opens.
    expect(await text(await get(client, "/b"))).toBe("x".repeat(100));
    expect(srv.sockets()).toBe(2);
    await unread.body!.cancel();
    expect(client.idleConnections).toBe(1);
    expect(await text(await get(client, "/close"))).toHaveLength(100);
    expect(client.idleConnections).toBe(0);
    expect(await text(await get(client, "/c"))).toHaveLength(100);
    expect(srv.sockets()).toBe(3);
    client.close();
  });

  it("decodes a chunked body, ignores its trailers, and reuses the connection after it", async () => {
    const srv = await httpServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/plain", Trailer: "X-Sum" });
      res.write("first ");
      setTimeout(() => {
        res.write("second ");
        res.addTrailers({ "X-Sum": "abc" });
        res.end("third");
      }, 10);
    });
    const client = new HttpClient(netDial(srv.port));
    const res = await get(client, "/");
    expect(res.headers).toContainEqual(["Transfer-Encoding", "chunked"]);
    expect(await text(res)).toBe("first second third");
    expect(await text(await get(client, "/"))).toBe("first second third");
    expect(srv.sockets()).toBe(1);
    client.close();
  });

  it("streams a large body in pieces without losing bytes", async () => {
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
    const srv = await httpServer((_req, res) => {
      res.setHeader("Content-Length", big.byteLength);
      res.end(big);
    });
    const client = new HttpClient(netDial(srv.port));
    const res = await get(client, "/big");
    const parts = await chunks(res.body!);
    expect(parts.length).toBeGreaterThan(1);
    const got = new Uint8Array(big.byteLength);
    let o = 0;
    for (const p of parts) {
      got.set(p, o);
      o += p.byteLength;
    }
    expect(o).toBe(big.byteLength);
    expect(Buffer.from(got).equals(Buffer.from(big))).toBe(true);
    client.close();
  });

  it("parses a response arriving one byte at a time (head, chunk sizes, extensions, trailers)", async () => {
    const dial = byteDial(
      "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-Folded: a\r\n  b\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    const client = new HttpClient(dial);
    const res = await get(client, "/", { headers: [["Accept", "*/*"]] });
    expect(res.headers).toEqual([
      ["X-A", "1"],
      ["X-Folded", "a b"],
      ["Transfer-Encoding", "chunked"],
    ]);
    expect(await text(res)).toBe("hello world");
    expect(dial.written()).toBe("GET / HTTP/1.1\r\nHost: app\r\nAccept: */*\r\n\r\n");
    client.close();
  });

  it("accepts bare LF line ends", async () => {
    const client = new HttpClient(byteDial("HTTP/1.1 201 Created\nContent-Length: 2\n\nok"));
    const res = await get(client, "/");
    expect([res.status, res.statusText, await text(res)]).toEqual([201, "Created", "ok"]);
  });

  it("reads a close-delimited body to the end of the connection and does not keep it", async () => {
    const srv = await rawServer((s) => {
      s.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ");
      setTimeout(() => s.end("part two"), 10);
    });
    const client = new HttpClient(netDial(srv.port));
    expect(await text(await get(client, "/"))).toBe("part one, part two");
    expect(client.idleConnections).toBe(0);
    expect(await text(await get(client, "/"))).toBe("part one, part two");
    expect(srv.sockets()).toBe(2);
  });

  it("sends byte bodies with Content-Length and stream bodies chunked", async () => {
    const seen: { method: string; cl?: string; te?: string; body: string }[] = [];
    const srv = await httpServer((req, res) => {
      const parts: Buffer[] = [];
      req.on("data", (b: Buffer) => parts.push(b));
      req.on("end", () => {
        const body = Buffer.concat(parts).toString();
        seen.push({
          method: req.method!,
          ...(req.headers["content-length"] ? { cl: req.headers["content-length"] } : {}),
          ...(req.headers["transfer-encoding"] ? { te: req.headers["transfer-encoding"] } : {}),
          body: body.length > 40 ? `${body.length} bytes` : body,
        });
        res.end(`got ${body.length}`);
      });
    });
    const client = new HttpClient(netDial(srv.port));
    const post = (body: Uint8Array | ReadableStream<Uint8Array> | null, method = "POST") =>
      client.request({
        method,
        target: "/",
        host: "app",
        // A caller's framing headers would desynchronise the connection: the client's own win.
        headers: [["Content-Length", "999"]],
        body,
      });
    expect(await text(await post(enc.encode("small body")))).toBe("got 10");
    expect(await text(await post(new Uint8Array(100_000).fill(65)))).toBe("got 100000");
    const parts = ["one ", "", "two ", "three"];
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        const p = parts.shift();
        if (p === undefined) c.close();
        else c.enqueue(enc.encode(p));
      },
    });
    expect(await text(await post(stream))).toBe("got 13");
    expect(await text(await post(null))).toBe("got 0");
    expect(seen).toEqual([
      { method: "POST", cl: "10", body: "small body" },
      { method: "POST", cl: "100000", body: "100000 bytes" },
      { method: "POST", te: "chunked", body: "one two three" },
      { method: "POST", cl: "0", body: "" },
    ]);
    expect(srv.sockets()).toBe(1);
    client.close();
  });

  it("returns redirects instead of following them", async () => {
    const srv = await httpServer((req, res) => {
      if (req.url === "/old") {
        res.writeHead(302, { Location: "/new" });
        res.end("moved");
      } else res.end("new");
    });
    const client = new HttpClient(netDial(srv.port));
    const res = await get(client, "/old");
    expect(res.status).toBe(302);
    expect(res.headers).toContainEqual(["Location", "/new"]);
    expect(await text(res)).toBe("moved");
    client.close();
  });

  it("has no body for HEAD, 204 and 304, and keeps the connection", async () => {
    const srv = await httpServer((req, res) => {
      if (req.url === "/204") res.writeHead(204).end();
      else if (req.url === "/304") res.writeHead(304, { ETag: '"x"' }).end();
      else res.writeHead(200, { "Content-Length": "5" }).end(req.method === "HEAD" ? undefined : "hello");
    });
    const client = new HttpClient(netDial(srv.port));
    const head = await get(client, "/", { method: "HEAD" });
    expect([head.status, head.body]).toEqual([200, null]);
    expect(head.headers).toContainEqual(["Content-Length", "5"]);
    expect((await get(client, "/204")).body).toBeNull();
    expect((await get(client, "/304")).body).toBeNull();
    expect(await text(await get(client, "/"))).toBe("hello");
    expect(srv.sockets()).toBe(1);
    client.close();
  });

  it("skips 100 Continue and 103 Early Hints", async () => {
    const srv = await rawServer((s) => {
      s.write("HTTP/1.1 100 Continue\r\n\r\n");
      s.write("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
      s.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone");
    });
    const client = new HttpClient(netDial(srv.port));
    const res = await get(client, "/");
    expect(res.status).toBe(200);
    expect(res.headers).toEqual([["Content-Length", "4"]]);
    expect(await text(res)).toBe("done");
    client.close();
  });

  it("rejects a head over the size bound with too_large", async () => {
    const srv = await rawServer((s) => {
      s.write(`HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(70 * 1024)}\r\nContent-Length: 0\r\n\r\n`);
    });
    const client = new HttpClient(netDial(srv.port));
    const e = await rejection(get(client, "/"));
    expect(e.code).toBe("too_large");
    const small = new HttpClient(netDial(srv.port), { maxHeaderBytes: 1024 });
    expect((await rejection(get(small, "/"))).code).toBe("too_large");
    const roomy = new HttpClient(netDial(srv.port), { maxHeaderBytes: 128 * 1024 });
    expect((await get(roomy, "/")).status).toBe(200);
  });

  it.each([
    ["a garbage status line", "HTTP/1.1 abc OK\r\n\r\n", "malformed"],
    ["HTTP/2 on the wire", "HTTP/2 200\r\n\r\n", "malformed"],
    ["a header without a colon", "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", "malformed"],
    ["space before the colon", "HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n", "malformed"],
    [
      "conflicting Content-Length",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "malformed",
    ],
    ["an unsolicited 101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", "malformed"],
    ["an empty reply", "", "closed"],
  ])("rejects %s", async (_what, reply, code) => {
    const srv = await rawServer((s) => s.end(reply));
    const client = new HttpClient(netDial(srv.port));
    expect((await rejection(get(client, "/"))).code).toBe(code);
  });

  it.each([
    ["a bad chunk size", "zz\r\nhello\r\n0\r\n\r\n", "malformed"],
    ["a huge chunk size", "fffffffffffffffff\r\n", "too_large"],
    ["chunk data without CRLF", "5\r\nhelloXX0\r\n\r\n", "malformed"],
    ["a connection that ends inside the body", "5\r\nhel", "closed"],
  ])("fails the body on %s", async (_what, chunked, code) => {
    const srv = await rawServer((s) =>
      s.end(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`),
    );
    const client = new HttpClient(netDial(srv.port));
    const res = await get(client, "/");
    expect(res.status).toBe(200);
    expect((await rejection(bytes(res.body))).code).toBe(code);
  });

  it("fails a Content-Length body cut short with closed", async () => {
    const srv = await rawServer((s) => s.end("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
    const client = new HttpClient(netDial(srv.port));
    const res = await get(client, "/");
    expect((await rejection(bytes(res.body))).code).toBe("closed");
  });

  it("retries an idempotent request once when a reused connection turns out dead, but not a POST", async () => {
    // Answers the first request of each connection; the second one kills it unanswered,
    // as a server does that timed the connection out just as the request went out.
    const srv = await rawServer((s, _head, index) => {
      if (index === 0) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      else s.destroy();
    });
    const dial = netDial(srv.port);
    const client = new HttpClient(dial);
    expect(await text(await get(client, "/"))).toBe("ok");
    expect(await text(await get(client, "/"))).toBe("ok");
    expect(dial.dials).toBe(2);
    const post = client.request({
      method: "POST",
      target: "/",
      host: "app",
      headers: [],
      body: enc.encode("x"),
    });
    expect((await rejection(post)).code).toBe("closed");
    expect(dial.dials).toBe(2);
  });

  it("fails a fresh connection that dies before answering without retrying it", async () => {
    const srv = await rawServer((s) => s.destroy());
    const dial = netDial(srv.port);
    const client = new HttpClient(dial);
    expect((await rejection(get(client, "/"))).code).toBe("closed");
    expect(dial.dials).toBe(1);
  });

  it("drops idle connections the server closes", async () => {
    const srv = await httpServer((_req, res) => res.end("ok"));
    srv.server.keepAliveTimeout = 100;
    const client = new HttpClient(netDial(srv.port));
    expect(await text(await get(client, "/"))).toBe("ok");
    expect(client.idleConnections).toBe(1);
    // Node closes an idle keep-alive socket on a coarse timer (about a second after keepAliveTimeout).
    await until(() => client.idleConnections === 0, 3000);
    expect(await text(await get(client, "/"))).toBe("ok");
    expect(srv.sockets()).toBe(2);
    client.close();
  });

  it("closes connections idle longer than idleTimeoutMs", async () => {
    const srv = await httpServer((_req, res) => res.end("ok"));
    let closedAtServer = 0;
    srv.server.on("connection", (s: Socket) => s.on("close", () => closedAtServer++));
    const client = new HttpClient(netDial(srv.port), { idleTimeoutMs: 50 });
    expect(await text(await get(client, "/"))).toBe("ok");
    expect(client.idleConnections).toBe(1);
    await until(() => client.idleConnections === 0 && closedAtServer === 1, 2000);
    client.close();
  });

  it("keeps at most maxIdle connections", async () => {
    const srv = await httpServer((_req, res) => setTimeout(() => res.end("ok"), 20));
    const client = new HttpClient(netDial(srv.port), { maxIdle: 1 });
    const all = await Promise.all([get(client, "/"), get(client, "/"), get(client, "/")]);
    for (const r of all) expect(await text(r)).toBe("ok");
    expect(srv.sockets()).toBe(3);
    expect(client.idleConnections).toBe(1);
    client.close();
  });

  it("times out waiting for the head", async () => {
    const srv = await rawServer(() => undefined);
    const client = new HttpClient(netDial(srv.port), { headersTimeoutMs: 150 });
    const started = Date.now();
    const e = await rejection(get(client, "/"));
    expect(e.code).toBe("timeout");
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it("aborts before the head and during the body", async () => {
    const srv = await rawServer((s, head) => {
      if (head.startsWith("GET /slow-body")) s.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst");
    });
    const client = new HttpClient(netDial(srv.port));
    const before = new AbortController();
    const pending = get(client, "/never", { signal: before.signal });
    setTimeout(() => before.abort(), 50);
    expect((await rejection(pending)).code).toBe("aborted");

    const already = AbortSignal.abort();
    expect((await rejection(get(client, "/", { signal: already }))).code).toBe("aborted");

    const during = new AbortController();
    const res = await get(client, "/slow-body", { signal: during.signal });
    const reader = res.body!.getReader();
    expect(dec.decode((await reader.read()).value)).toBe("first");
    const next = reader.read();
    during.abort();
    expect((await rejection(next)).code).toBe("aborted");
    expect(client.idleConnections).toBe(0);
  });

  it("refuses header injection and non-Latin-1 values", async () => {
    const client = new HttpClient(netDial(1));
    expect((await rejection(get(client, "/", { headers: [["X-A", "1\r\nX-B: 2"]] }))).code).toBe("malformed");
    expect((await rejection(get(client, "/", { headers: [["Bad Name", "1"]] }))).code).toBe("malformed");
    expect((await rejection(get(client, "/a b"))).code).toBe("malformed");
    expect((await rejection(get(client, "/", { host: "a\r\nb" }))).code).toBe("malformed");
    expect((await rejection(get(client, "/", { headers: [["X-A", "snow ☃"]] }))).code).toBe("malformed");
  });

  it("fails requests after close", async () => {
    const client = new HttpClient(netDial(1));
    client.close();
    expect((await rejection(get(client, "/"))).code).toBe("closed");
  });

  it("upgrades, replaying bytes the server sent right after its head", async () => {
    const srv = await rawServer((s, head) => {
      expect(head).toContain("Upgrade: echo");
      s.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello");
      s.on("data", (b) => s.write(b));
    });
    const client = new HttpClient(netDial(srv.port));
    const { response, duplex } = await client.upgrade({
      method: "GET",
      target: "/ws",
      host: "app",
      headers: [
        ["Connection", "Upgrade"],
        ["Upgrade", "echo"],
      ],
    });
    expect(response.status).toBe(101);
    expect(duplex).not.toBeNull();
    const reader = duplex!.readable.getReader();
    expect(dec.decode((await reader.read()).value)).toBe("hello");
    const writer = duplex!.writable.getWriter();
    await writer.write(enc.encode("ping"));
    expect(dec.decode((await reader.read()).value)).toBe("ping");
    await reader.cancel();
    await writer.close().catch(() => undefined);
    expect(client.idleConnections).toBe(0);
  });

  it("returns a refused upgrade as a plain response", async () => {
    const srv = await httpServer((_req, res) => res.writeHead(403).end("no"));
    const client = new HttpClient(netDial(srv.port));
    const { response, duplex } = await client.upgrade({
      method: "GET",
      target: "/ws",
      host: "app",
      headers: [
        ["Connection", "Upgrade"],
        ["Upgrade", "websocket"],
      ],
    });
    expect([response.status, duplex]).toEqual([403, null]);
    expect(await text(response)).toBe("no");
  });
});
