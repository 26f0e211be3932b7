import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClient, ControlSigner, keyHolder } from "@trellis/client";
import { MapReader } from "@trellis/client/testing";
import { createPreAuthKey } from "@trellis/control";
import { openDatabase, type Database } from "@trellis/db";
import {
  ApiError,
  ControlKeyResponse,
  RegisterResponse,
  RelayMap,
  formatNodeAuth,
  parseNodeAuth,
} from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

// The control plane over HTTP against the real server: nodes register with a
// pre-auth key, every request signed with their node key, and read their
// netmap as Server-Sent Events — a full map first, deltas after.

const data = tempDataDir();
let trellis: RunningTrellis;
let db: Database;
let controlKey: string;
let preAuthKey: string;

beforeAll(async () => {
  trellis = await startTrellis({ dataDir: data.dir });
  // Pre-auth keys have no admin HTTP API yet; create one the way the admin console will, through control.
  db = await openDatabase(`file:${join(data.dir, "trellis.db")}`);
  preAuthKey = (await createPreAuthKey(db, { tags: ["tag:server"], reusable: true }, "local")).key;
  controlKey = ControlKeyResponse.parse(await (await fetch(trellis.url + "/api/v1/key")).json()).publicKey;
});
afterAll(async () => {
  await db?.close();
  await trellis?.stop();
  data.remove();
});

/** A node of this test: its own key, and the ControlClient every node uses. */
class HttpNode {
  readonly keys = generateKeyPair();
  readonly client = new ControlClient({ baseUrl: trellis.url, key: keyHolder(this.keys.privateKey) });

  get key(): string {
    return this.client.nodeKey;
  }
  private ownSigner: ControlSigner | null = null;
  /** This node's one signer (identical requests in one second stay distinct). */
  signer(): ControlSigner {
    this.ownSigner ??= new ControlSigner(this.keys.privateKey, controlKey);
    return this.ownSigner;
  }
  /** A signed request as sent, for checking the server's HTTP answers. */
  fetch(method: string, path: string, body = "", authorization?: string) {
    return this.client.signedFetch(method, path, body, authorization);
  }
  register(hostname: string) {
    return this.fetch("POST", "/api/v1/register", JSON.stringify({ preAuthKey, hostname, os: "linux" }));
  }
  async stream(): Promise<MapReader> {
    const res = await this.fetch("GET", "/api/v1/map");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    await res.body!.cancel();
    return new MapReader(await this.client.openMap());
  }
}

describe("control plane over HTTP", () => {
  // Created once the server's control key is known.
  let a: HttpNode;
  let b: HttpNode;
  let ra: MapReader;
  beforeAll(() => {
    a = new HttpNode();
    b = new HttpNode();
  });

  it("publishes the control key and the relay map", async () => {
    expect(controlKey).toMatch(/^controlkey:[0-9a-f]{64}$/);
    const map = RelayMap.parse(await (await fetch(trellis.url + "/api/v1/relay-map")).json());
    expect(map.regions["1"]!.nodes[0]!.url).toBe(`ws://127.0.0.1:${trellis.port}/derp`);
  });

  it("registers two nodes with signed requests, and re-registers without a new identity", async () => {
    const resA = await a.register("alpha");
    expect(resA.status).toBe(201);
    const bodyA = RegisterResponse.parse(await resA.json());
    expect(bodyA.node).toMatchObject({ name: "alpha", key: a.key, tags: ["tag:server"] });
    expect((await b.register("beta")).status).toBe(201);
    const again = await a.register("alpha");
    expect(again.status).toBe(200);
    expect(RegisterResponse.parse(await again.json()).node).toEqual(bodyA.node);
  });

  it("streams each node a full map with the other as its peer, then a delta when a third joins", async () => {
    ra = await a.stream();
    const first = await ra.next();
    expect(first.type).toBe("full");
    expect(ra.map.node.name).toBe("alpha");
    expect(ra.map.peers.map((p) => [p.name, p.key])).toEqual([["beta", b.key]]);
    expect(ra.map.packetFilter.length).toBeGreaterThan(0);

    const rb = await b.stream();
    await rb.next();
    expect(rb.map.peers.map((p) => p.name)).toEqual(["alpha"]);
    rb.close();

    const c = new HttpNode();
    expect((await c.register("gamma")).status).toBe(201);
    const deltas = await ra.until((m) => m.peers.some((p) => p.name === "gamma"));
    expect(deltas.every((d) => d.type === "delta")).toBe(true);
    // (beta's stream closing may arrive in the same delta: changes are coalesced.)
    expect(deltas.at(-1)!.type === "delta" && deltas.at(-1)).toMatchObject({
      peersChanged: expect.arrayContaining([expect.objectContaining({ name: "gamma" })]),
    });
    expect(JSON.stringify(deltas.at(-1)).length).toBeLessThan(JSON.stringify(ra.map).length);
  });

  it("passes endpoint updates to peers' streams", async () => {
    const res = await b.fetch(
      "POST",
      "/api/v1/endpoints",
      JSON.stringify({ endpoints: ["192.0.2.1:41641"] }),
    );
    expect(res.status).toBe(200);
    await ra.until((m) => m.peers.find((p) => p.name === "beta")?.endpoints[0] === "192.0.2.1:41641");
  });

  it("refuses bad input with 400 and a clear message, changing nothing", async () => {
    const nodes = await db.prisma.node.count();
    const d = new HttpNode();
    const cases: [string, RegExp][] = [
      ["{not json", /not valid JSON/],
      [JSON.stringify({ preAuthKey, hostname: "" }), /hostname/],
      [JSON.stringify({ preAuthKey, hostname: "x", routableIPs: ["10.0.0.0"] }), /routableIPs/],
    ];
    for (const [body, message] of cases) {
      const res = await d.fetch("POST", "/api/v1/register", body);
      expect(res.status).toBe(400);
      const err = ApiError.parse(await res.json());
      expect(err.message).toMatch(message);
    }
    const bad = await b.fetch("POST", "/api/v1/endpoints", JSON.stringify({ endpoints: "192.0.2.1:1" }));
    expect(bad.status).toBe(400);
    expect(await db.prisma.node.count()).toBe(nodes);
  });

  it("refuses with 401 a node presenting another node's key without its private key", async () => {
    const mallory = new HttpNode();
    const forge = (method: string, path: string, body = "") =>
      formatNodeAuth({ ...parseNodeAuth(mallory.signer().sign(method, path, body))!, key: a.key });
    const map = await mallory.fetch("GET", "/api/v1/map", "", forge("GET", "/api/v1/map"));
    expect(map.status).toBe(401);
    expect(map.headers.get("www-authenticate")).toBe("Trellis-Node");
    expect(ApiError.parse(await map.json()).error).toBe("bad_signature");
    const body = JSON.stringify({ endpoints: ["203.0.113.1:1"] });
    const ep = await mallory.fetch(
      "POST",
      "/api/v1/endpoints",
      body,
      forge("POST", "/api/v1/endpoints", body),
    );
    expect(ep.status).toBe(401);
    const unsigned = await fetch(trellis.url + "/api/v1/map");
    expect(unsigned.status).toBe(401);
    // A replayed request is refused too.
    const auth = b.signer().sign("POST", "/api/v1/endpoints", body);
    expect((await b.fetch("POST", "/api/v1/endpoints", body, auth)).status).toBe(200);
    expect((await b.fetch("POST", "/api/v1/endpoints", body, auth)).status).toBe(401);
  });

  it("marks a node offline for its peers when its stream closes", async () => {
    const rb = await b.stream();
    await rb.next();
    await ra.until((m) => m.peers.find((p) => p.name === "beta")?.online === true);
    rb.close();
    await ra.until((m) => m.peers.find((p) => p.name === "beta")?.online === false);
    ra.close();
  });
});

describe("crash safety", () => {
  const crashData = tempDataDir();
  let server: RunningTrellis | undefined;
  afterAll(async () => {
    await server?.stop();
    crashData.remove();
  });

  it("kill -9 during a registration storm leaves no duplicate addresses and no half-registered node", async () => {
    server = await startTrellis({ dataDir: crashData.dir });
    const url = server.url;
    const crashDb = await openDatabase(`file:${join(crashData.dir, "trellis.db")}`);
    try {
      const { key } = await createPreAuthKey(crashDb, { tags: ["tag:storm"], reusable: true }, "local");
      const acknowledged: string[] = [];
      let stop = false;
      const worker = async (w: number) => {
        for (let i = 0; !stop; i++) {
          const node = new ControlClient({ baseUrl: url, key: keyHolder(generateKeyPair().privateKey) });
          const body = JSON.stringify({ preAuthKey: key, hostname: `storm-${w}-${i}` });
          try {
            const res = await node.signedFetch("POST", "/api/v1/register", body);
            if (res.status === 201) acknowledged.push(node.nodeKey);
          } catch {
            return; // the server is gone
          }
        }
      };
      const workers = Array.from({ length: 12 }, (_, w) => worker(w));
      while (acknowledged.length < 30) await new Promise((r) => setTimeout(r, 20));
      await server.crash();
      stop = true;
      await Promise.all(workers);
      await crashDb.close();

      server = await startTrellis({ dataDir: crashData.dir });
      const db2 = await openDatabase(`file:${join(crashData.dir, "trellis.db")}`);
      try {
        const nodes = await db2.prisma.node.findMany();
        // Every acknowledged registration survived; every node is whole.
        const keys = new Set(nodes.map((n) => n.nodeKey));
        expect(acknowledged.every((k) => keys.has(k))).toBe(true);
        for (const n of nodes) expect(n.ipv4 && n.ipv6 && n.name).toBeTruthy();
        expect(new Set(nodes.map((n) => n.ipv4)).size).toBe(nodes.length);
        expect(new Set(nodes.map((n) => n.ipv6)).size).toBe(nodes.length);
        expect(new Set(nodes.map((n) => n.name)).size).toBe(nodes.length);
        // Key use and node creation commit together: no use without its node, no node without its use.
        const pak = await db2.prisma.preAuthKey.findFirstOrThrow();
        expect(pak.usedCount).toBe(nodes.length);
        expect(await db2.prisma.auditEvent.count({ where: { action: "node.register" } })).toBe(nodes.length);

        // The allocator continues above every address handed out before the crash.
        const node = new ControlClient({ baseUrl: server.url, key: keyHolder(generateKeyPair().privateKey) });
        const registered = await node.register({ preAuthKey: key, hostname: "after-crash" });
        expect(registered.created).toBe(true);
        const after = registered.node.addresses[0]!;
        const last = (a: string) =>
          Number(a.split("/")[0]!.split(".").at(-1)) + 256 * Number(a.split(".")[2]);
        expect(last(after)).toBeGreaterThan(Math.max(...nodes.map((n) => last(n.ipv4!))));
      } finally {
        await db2.close();
      }
    } finally {
      await crashDb.close().catch(() => undefined);
    }
  });
});
