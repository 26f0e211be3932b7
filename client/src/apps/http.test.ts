// The HTTP/1.1 client against Node's own HTTP server and against raw TCP
// servers that answer what a careless or hostile server might: bodies by
// length, chunked and until close; kept connections reused (counted on the
// server); POST bodies; redirects returned, not followed; duplicate
// Set-Cookie kept; interim 100 skipped; oversize and malformed heads refused.
import { createServer as createHttp, type Server } from "node:http";
import { connect, createServer as createTcp, type AddressInfo } from "node:net";
import { Duplex as NodeDuplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Duplex } from "./duplex";
import { HttpClient, HttpError } from "./http";

function dialer(port: number): () => Promise<Duplex> {
  return () =>
    new Promise((resolve, reject) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => resolve(NodeDuplex.toWeb(s) as unknown as Duplex));
      s.once("error", reject);
    });
}

async function text(body: ReadableStream<Uint8Array> | null): Promise<string> {
  return body ? new Response(body).text() : "";
}

let http: Server;
let port: number;
let sockets = 0;

beforeAll(async () => {
  http = createHttp((req, res) => {
    const url = new URL(req.url!, "http://x");
    if (url.pathname === "/fixed") return res.end("hello fixed");
    if (url.pathname === "/chunked") {
      res.write("part one, ");
      setTimeout(() => res.end("part two"), 10);
      return;
    }
    if (url.pathname === "/echo") {
      const parts: Buffer[] = [];
      req.on("data", (d: Buffer) => parts.push(d));
      req.on("end", () =>
        res.end(`${req.method} ${Buffer.concat(parts).toString()} ${req.headers["x-test"]}`),
      );
      return;
    }
    if (url.pathname === "/redirect") {
      res.writeHead(303, { location: "/fixed" });
      return res.end();
    }
    if (url.pathname === "/cookies") {
      res.setHeader("set-cookie", ["a=1; Path=/", "b=2; HttpOnly"]);
      return res.end("ok");
    }
    if (url.pathname === "/none") {
      res.writeHead(204);
      return res.end();
    }
    if (url.pathname === "/big") {
      const chunk = Buffer.alloc(64 * 1024, 7);
      let n = 0;
      const more = () => {
        while (n < 32) {
          n++;
          if (!res.write(chunk)) return res.once("drain", more);
        }
        res.end();
      };
      return more();
    }
    res.writeHead(404).end();
  });
  http.on("connection", () => sockets++);
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  port = (http.address() as AddressInfo).port;
});
afterAll(() => http?.close());

/** A raw server that writes `answer` to every connection and then closes (or not). */
async function raw(answer: string | Buffer, close = true): Promise<{ port: number; stop(): void }> {
  const s = createTcp((c) => {
    c.once("data", () => {
      c.write(answer);
      if (close) c.end();
    });
    c.on("error", () => undefined);
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { port: (s.address() as AddressInfo).port, stop: () => s.close() };
}

describe("HttpClient", () => {
  it("reads fixed-length and chunked bodies over one kept connection", async () => {
    const client = new HttpClient(dialer(port));
    const before = sockets;
    const a = await client.request({ method: "GET", target: "/fixed", host: "office:80" });
    expect(a.status).toBe(200);
    expect(await text(a.body)).toBe("hello fixed");
    const b = await client.request({ method: "GET", target: "/chunked", host: "office:80" });
    expect(b.headers).toContainEqual(["transfer-encoding", "chunked"]);
    expect(await text(b.body)).toBe("part one, part two");
    const c = await client.request({ method: "HEAD", target: "/fixed", host: "office:80" });
    expect(c.body).toBeNull();
    const d = await client.request({ method: "GET", target: "/none", host: "office:80" });
    expect(d.status).toBe(204);
    expect(sockets - before).toBe(1);
    client.close();
  });

  it("sends bodies and headers, returns redirects and every Set-Cookie as they came", async () => {
    const client = new HttpClient(dialer(port));
    const post = await client.request({
      method: "POST",
      target: "/echo",
      host: "office:80",
      headers: [["x-test", "yes"]],
      body: new TextEncoder().encode("name=ada"),
    });
    expect(await text(post.body)).toBe("POST name=ada yes");
    const r = await client.request({ method: "GET", target: "/redirect", host: "office:80" });
    expect(r.status).toBe(303);
    expect(r.headers).toContainEqual(["location", "/fixed"]);
    await text(r.body);
    const c = await client.request({ method: "GET", target: "/cookies", host: "office:80" });
    expect(c.headers.filter(([n]) => n === "set-cookie").map(([, v]) => v)).toEqual([
      "a=1; Path=/",
      "b=2; HttpOnly",
    ]);
    await text(c.body);
    client.close();
  });

  it("streams a large body without holding it, and a new request after it reuses the connection", async () => {
    const client = new HttpClient(dialer(port));
    const before = sockets;
    const r = await client.request({ method: "GET", target: "/big", host: "office:80" });
    let n = 0;
    const reader = r.body!.getReader();
    for (;;) {
      const x = await reader.read();
      if (x.done) break;
      n += x.value.length;
      expect(x.value.length).toBeLessThanOrEqual(256 * 1024);
    }
    expect(n).toBe(32 * 64 * 1024);
    await text((await client.request({ method: "GET", target: "/fixed", host: "office:80" })).body);
    expect(sockets - before).toBe(1);
    client.close();
  });

  it("skips an interim 100, reads a body that ends with the connection, and refuses bad answers", async () => {
    const interim = await raw("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: b\r\n\r\nuntil close");
    const r = await new HttpClient(dialer(interim.port)).request({ method: "GET", target: "/", host: "h" });
    expect(r.status).toBe(200);
    expect(await text(r.body)).toBe("until close");
    interim.stop();

    const cases: [string | Buffer, string][] = [
      ["SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed"],
      ["HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "malformed"],
      ["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed"],
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed"],
      [Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\nX: "), Buffer.alloc(70 * 1024, 97)]), "too_large"],
      ["", "closed"],
    ];
    for (const [answer, code] of cases) {
      const s = await raw(answer);
      const err = await new HttpClient(dialer(s.port))
        .request({ method: "GET", target: "/", host: "h" })
        .then((res) => text(res.body))
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(err, JSON.stringify(String(answer).slice(0, 30))).toBeInstanceOf(HttpError);
      expect((err as HttpError).code).toBe(code);
      s.stop();
    }
    await expect(
      new HttpClient(dialer(port)).request({ method: "GET", target: "no-slash", host: "h" }),
    ).rejects.toMatchObject({ code: "malformed" });
    await expect(
      new HttpClient(dialer(port)).request({
        method: "GET",
        target: "/",
        host: "h",
        headers: [["x", "a\r\nb: c"]],
      }),
    ).rejects.toMatchObject({ code: "malformed" });
  });
});
