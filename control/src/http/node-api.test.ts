import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ControlSigner } from "@trellis/client/signer";
import { readSse } from "@trellis/client/sse";
import { createLogger } from "@trellis/log";
import { MapMessage, applyDelta, type FullMap } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { loadConfig } from "./config";
import { isMapRequest, serveMapStream } from "./http-map";
import { ControlRuntime } from "./runtime";
import { PROVIDERS, testDatabases } from "./testing/db";

const log = createLogger("test", "silent");
const dataDir = mkdtempSync(join(tmpdir(), "trellis-httpmap-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

// The adapter does not depend on the database: SQLite is enough.
const sqlite = PROVIDERS.find((p) => p.provider === "sqlite")!;

describe.skipIf(sqlite.skip)("map streams on node:http", () => {
  const dbs = testDatabases("sqlite");
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A runtime behind a real HTTP server that routes the map path the way web/server.ts does. */
  async function serve() {
    const config = {
      ...loadConfig({ TRELLIS_PUBLIC_URL: "https://vpn.example.com" }, dataDir),
      databaseUrl: dbs.url(),
    };
    const rt = await ControlRuntime.open(config, log, {
      controlKey: generateKeyPair(),
      stream: { coalesceMs: 5 },
    });
    const server: Server = createServer((req, res) => {
      if (isMapRequest(req)) return void serveMapStream(rt, req, res);
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await rt.close();
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { key } = await rt.createPreAuthKey({ tags: ["tag:server"], reusable: true }, "system");
    const node = async (hostname: string) => {
      const keys = generateKeyPair();
      const signer = new ControlSigner(keys.privateKey, rt.controlKey().publicKey);
      const body = JSON.stringify({ preAuthKey: key, hostname });
      const reg = await rt.register({
        method: "POST",
        path: "/api/v1/register",
        body,
        authorization: signer.sign("POST", "/api/v1/register", body),
      });
      return { signer, id: reg.node.id };
    };
    const online = async (id: string) =>
      (await rt.db.prisma.node.findUniqueOrThrow({ where: { id } })).online;
    return { rt, url, node, online };
  }

  async function until(what: string, pred: () => Promise<boolean>) {
    const deadline = Date.now() + 10_000;
    while (!(await pred())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it("streams the full map, then deltas; closing the connection ends the stream and the node goes offline", async () => {
    const { rt, url, node, online } = await serve();
    const a = await node("alpha");
    const b = await node("beta");
    const ac = new AbortController();
    const res = await fetch(`${url}/api/v1/map`, {
      headers: { authorization: a.signer.sign("GET", "/api/v1/map") },
      signal: ac.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store, no-transform");
    const events = readSse(res.body!);
    const next = async () => {
      const r = await events.next();
      if (r.done) throw new Error("stream ended");
      return MapMessage.parse(JSON.parse(r.value.data));
    };
    let map = (await next()) as FullMap;
    expect(map.type).toBe("full");
    expect(map.peers.map((p) => p.name)).toEqual(["beta"]);
    expect(await online(a.id)).toBe(true);

    const body = JSON.stringify({ endpoints: ["192.0.2.7:41641"] });
    await rt.updateEndpoints({
      method: "POST",
      path: "/api/v1/endpoints",
      body,
      authorization: b.signer.sign("POST", "/api/v1/endpoints", body),
    });
    for (let i = 0; i < 10 && map.peers[0]!.endpoints.length === 0; i++) {
      const msg = await next();
      expect(msg.type).toBe("delta");
      if (msg.type === "delta") map = applyDelta(map, msg);
    }
    expect(map.peers[0]!.endpoints).toEqual(["192.0.2.7:41641"]);

    ac.abort();
    await until("alpha is offline", async () => !(await online(a.id)));
  });

  it("answers bad requests with the API's JSON errors and streams nothing", async () => {
    const { url, node, online } = await serve();
    const a = await node("alpha");
    const mallory = await node("mallory");

    const unsigned = await fetch(`${url}/api/v1/map`);
    expect(unsigned.status).toBe(401);
    expect(unsigned.headers.get("www-authenticate")).toBe("Trellis-Node");
    expect(await unsigned.json()).toMatchObject({ error: expect.any(String), message: expect.any(String) });

    // Alpha's key, with a MAC made by mallory's private key.
    const own = mallory.signer.sign("GET", "/api/v1/map");
    const alphaKey = a.signer.sign("GET", "/api/v1/map").match(/key=([^,]+)/)![1]!;
    const forged = await fetch(`${url}/api/v1/map`, {
      headers: { authorization: own.replace(/key=[^,]+/, `key=${alphaKey}`) },
    });
    expect(forged.status).toBe(401);
    expect((await forged.json()) as { message: string }).toMatchObject({ message: expect.any(String) });

    const post = await fetch(`${url}/api/v1/map`, { method: "POST", body: "{}" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET");

    expect(await online(a.id)).toBe(false);
    expect(await online(mallory.id)).toBe(false);
  });
});
