// The node API's router over real sockets: what a node (or anything else)
// gets back from each endpoint as HTTP — status, headers, error bodies,
// size limits counted in bytes, the console session riding along on a
// browser's registration, relay admission.
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { encodeKey } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { listAudit } from "../admin/audit";
import { createUser, actorOf } from "../admin/testing";
import { localOperator, type Actor } from "../auth/actor";
import { loadConfig } from "../config";
import { ControlRuntime } from "../runtime";
import { preAuthKey, refusal, serveNodeApi, TestNode } from "../testing/control";
import { PROVIDERS, testDatabases } from "../testing/db";
import type { NodeApiOptions } from "./node-api";

const log = createLogger("test", "silent");
const dataDir = mkdtempSync(join(tmpdir(), "trellis-nodeapi-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

// The router does not depend on the database: SQLite is enough.
const sqlite = PROVIDERS.find((p) => p.provider === "sqlite")!;

describe.skipIf(sqlite.skip)("node API on node:http", () => {
  const dbs = testDatabases("sqlite");
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function serve(opts: NodeApiOptions = {}) {
    const config = {
      ...loadConfig({ TRELLIS_PUBLIC_URL: "https://vpn.example.com" }, dataDir),
      databaseUrl: dbs.url(),
    };
    const rt = await ControlRuntime.open(config, log, {
      controlKey: generateKeyPair(),
      stream: { coalesceMs: 5 },
    });
    const server = await serveNodeApi(rt, opts);
    cleanups.push(async () => {
      await server.close();
      await rt.close();
    });
    const key = await preAuthKey(rt, { tags: ["tag:server"], reusable: true });
    const node = async (hostname: string) => {
      const n = new TestNode(rt);
      await n.register(key, hostname);
      return n;
    };
    const until = async (what: string, pred: () => Promise<boolean>) => {
      const deadline = Date.now() + 10_000;
      while (!(await pred())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    return { rt, url: server.url, server: server.server, node, until, key };
  }

  it("streams the full map, then deltas; closing the connection ends the stream and the node goes offline", async () => {
    const { url, node, until } = await serve();
    const a = await node("alpha");
    const b = await node("beta");
    const res = await a.client.signedFetch("GET", "/api/v1/map");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store, no-transform");
    await res.body!.cancel();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:/);

    const reader = await a.stream();
    const full = await reader.next();
    expect(full.type).toBe("full");
    expect(reader.map.peers.map((p) => p.name)).toEqual(["beta"]);
    expect((await a.row()).online).toBe(true);
    await b.endpoints(["192.0.2.7:41641"]);
    await reader.until((m) => m.peers[0]!.endpoints.length === 1);
    expect(reader.map.peers[0]!.endpoints).toEqual(["192.0.2.7:41641"]);
    reader.close();
    await until("alpha is offline", async () => !(await a.row()).online);
  });

  it("ends a map stream whose client half-closes: the node goes offline and the socket is released", async () => {
    // node:http sockets are allowHalfOpen; a client that sends its FIN and
    // nothing more (a process exiting mid-stream) must not hold the stream.
    const { server, url, node, until } = await serve();
    const a = await node("alpha");
    await node("beta");
    const sock = connect(Number(new URL(url).port), "127.0.0.1");
    cleanups.push(async () => {
      sock.destroy();
    });
    await new Promise<void>((r) => sock.once("connect", () => r()));
    const auth = a.signer().sign("GET", "/api/v1/map");
    sock.write(`GET /api/v1/map HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\n\r\n`);
    let received = "";
    let ended = false;
    sock.on("data", (d: Buffer) => (received += d.toString()));
    sock.on("end", () => (ended = true));
    await until("the full map", async () => received.includes("event: full"));
    expect(received.startsWith("HTTP/1.1 200")).toBe(true);
    expect((await a.row()).online).toBe(true);
    sock.end();
    await until("alpha is offline", async () => !(await a.row()).online);
    await until("the server ends its side", async () => ended);
    await until(
      "no connection left",
      () => new Promise((r) => server.getConnections((err, n) => r(!err && n === 0))),
    );
  });

  it("answers bad requests with the API's JSON errors, naming the signature scheme on 401", async () => {
    const { url, node } = await serve();
    const a = await node("alpha");
    const mallory = new TestNode(a.rt);

    for (const path of ["/api/v1/map", "/api/v1/endpoints"]) {
      const unsigned = await fetch(url + path, { method: path.endsWith("map") ? "GET" : "POST" });
      expect(unsigned.status).toBe(401);
      expect(unsigned.headers.get("www-authenticate")).toBe("Trellis-Node");
      expect(await unsigned.json()).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    }
    // Alpha's key, with a MAC made by mallory's private key.
    const own = mallory.signer().sign("GET", "/api/v1/map");
    const forged = await fetch(`${url}/api/v1/map`, {
      headers: { authorization: own.replace(/key=[^,]+/, `key=${a.key}`) },
    });
    expect(await refusal(forged)).toMatchObject({ status: 401, code: "bad_signature" });

    const post = await fetch(`${url}/api/v1/map`, { method: "POST", body: "{}" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET");
    const get = await fetch(`${url}/api/v1/register`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    expect((await fetch(`${url}/api/v1/nothing`)).status).toBe(404);
    expect((await a.row()).online).toBe(false);
  });

  it("counts the body limit in bytes, declared or chunked, and reads no further", async () => {
    const { url, node } = await serve();
    const a = await node("alpha");
    // 40,000 two-byte characters: under 64 KiB in UTF-16 units, over it in bytes.
    const wide = JSON.stringify({ endpoints: [], homeRegion: null, pad: "é".repeat(40_000) });
    expect(wide.length).toBeLessThan(64 * 1024);
    expect(Buffer.byteLength(wide)).toBeGreaterThan(64 * 1024);
    expect(await refusal(await a.client.signedFetch("POST", "/api/v1/endpoints", wide))).toMatchObject({
      status: 413,
      code: "body_too_large",
    });
    // No Content-Length: the bytes are counted as they arrive.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(`${url}/api/v1/endpoints`, {
        method: "POST",
        headers: {
          authorization: a.signer().sign("POST", "/api/v1/endpoints", ""),
          "transfer-encoding": "chunked",
        },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      for (let i = 0; i < 80; i++) req.write("x".repeat(1024));
      req.end();
    });
    expect(chunked).toBe(413);
    // A body just under the limit is read and judged on its content.
    expect((await a.client.signedFetch("POST", "/api/v1/endpoints", "x".repeat(60_000))).status).toBe(400);
  });

  it("registers a browser's key with the console session riding along, audited as that user, from the console's origin only", async () => {
    let session: Actor | null = null;
    const { rt, url } = await serve({ sessionActor: async () => session });
    const alice = await createUser(rt.db, "member", "alice@example.com");
    session = actorOf(alice);
    const tab = new TestNode(rt);
    const body = JSON.stringify({ hostname: "alice-browser", os: "browser" });
    const send = (origin: string) =>
      fetch(`${url}/api/v1/register`, {
        method: "POST",
        headers: {
          authorization: tab.signer().sign("POST", "/api/v1/register", body),
          origin,
          host: new URL(url).host,
          "content-type": "application/json",
        },
        body,
      });
    expect(await refusal(await send("https://evil.example"))).toMatchObject({ status: 403, code: "csrf" });
    const res = await send("https://vpn.example.com");
    expect(res.status).toBe(201);
    expect(((await res.json()) as { node: { user: string } }).node.user).toBe(alice.id);
    expect((await tab.row()).ephemeral).toBe(true);
    const page = await listAudit(rt, localOperator(), { action: "node.register" });
    expect(page.items).toEqual([
      expect.objectContaining({ actor: `user:${alice.id}`, actorName: "alice@example.com" }),
    ]);
    // Without a session and without a pre-auth key, a new key cannot register.
    session = null;
    const other = new TestNode(rt);
    expect((await other.client.signedFetch("POST", "/api/v1/register", body)).status).toBe(401);
  });

  it("remembers no MAC of a key that is not a node: made-up keys cannot fill the replay cache", async () => {
    const { rt, url } = await serve();
    const seen = () => (rt as unknown as { auth: { seen: Map<string, unknown> } }).auth.seen.size;
    const before = seen();
    for (let i = 0; i < 20; i++) {
      const stranger = new TestNode(rt);
      expect(
        await refusal(await stranger.client.signedFetch("POST", "/api/v1/endpoints", "{}")),
      ).toMatchObject({
        status: 401,
        code: "unknown_node",
      });
      const body = JSON.stringify({ hostname: "x", os: "linux" });
      expect((await stranger.client.signedFetch("POST", "/api/v1/register", body)).status).toBe(401);
    }
    void url;
    expect(seen()).toBe(before);
  });

  it("tells a relay which node keys it may admit", async () => {
    const { url, node } = await serve();
    const a = await node("alpha");
    const stranger = encodeKey("nodekey", generateKeyPair().publicKey);
    const ask = (nodeKeys: unknown) =>
      fetch(`${url}/api/v1/relay/verify`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ nodeKeys }),
      });
    const res = await ask([a.key, stranger, a.key]);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ allowed: [true, false, true] });
    expect((await ask([])).status).toBe(400);
    expect((await ask(["not a key"])).status).toBe(400);
  });
});
