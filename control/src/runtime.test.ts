import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ControlSigner } from "@trellis/client/signer";
import { readSse } from "@trellis/client/sse";
import { createLogger } from "@trellis/log";
import {
  MapMessage,
  applyDelta,
  formatNodeAuth,
  parseNodeAuth,
  type FullMap,
  type MapDelta,
} from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { loadConfig } from "./config";
import { ControlError } from "./errors";
import { SharedReplayGuard } from "./replay";
import { ControlRuntime } from "./runtime";
import { PROVIDERS, testDatabases } from "./testing/db";

const log = createLogger("test", "silent");
const dataDir = mkdtempSync(join(tmpdir(), "trellis-rt-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** A simulated node: its key, a signer and helpers to call the runtime like the HTTP layer does. */
class TestNode {
  readonly keys = generateKeyPair();
  readonly signer: ControlSigner;
  constructor(readonly rt: ControlRuntime) {
    this.signer = new ControlSigner(this.keys.privateKey, rt.controlKey().publicKey);
  }
  signed(method: string, path: string, body = "") {
    return { method, path, body, authorization: this.signer.sign(method, path, body) };
  }
  register(preAuthKey: string, hostname: string, extra: object = {}) {
    return this.rt.register(
      this.signed("POST", "/api/v1/register", JSON.stringify({ preAuthKey, hostname, ...extra })),
    );
  }
  endpoints(endpoints: string[]) {
    return this.rt.updateEndpoints(this.signed("POST", "/api/v1/endpoints", JSON.stringify({ endpoints })));
  }
  async stream(): Promise<MapReader> {
    const ac = new AbortController();
    const s = await this.rt.openMapStream(this.signed("GET", "/api/v1/map"), ac.signal);
    return new MapReader(s, ac);
  }
}

/** Reads map messages off a stream and keeps the applied map. */
class MapReader {
  private readonly it: AsyncGenerator<{ data: string }>;
  map!: FullMap;
  constructor(
    stream: ReadableStream<Uint8Array>,
    private readonly ac: AbortController,
  ) {
    this.it = readSse(stream);
  }
  async next(timeoutMs = 5000): Promise<MapMessage> {
    const r = await Promise.race([
      this.it.next(),
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no map message in time")), timeoutMs)),
    ]);
    if (r.done) throw new Error("stream ended");
    const msg = MapMessage.parse(JSON.parse(r.value.data));
    this.map = msg.type === "full" ? msg : applyDelta(this.map, msg);
    return msg;
  }
  /** Read deltas until `pred` holds for the applied map. */
  async until(pred: (m: FullMap) => boolean): Promise<MapDelta[]> {
    const seen: MapDelta[] = [];
    while (!pred(this.map)) seen.push((await this.next()) as MapDelta);
    return seen;
  }
  close() {
    this.ac.abort();
  }
}

const peerNames = (m: FullMap) => m.peers.map((p) => p.name).sort();

async function controlError(p: Promise<unknown>): Promise<ControlError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(ControlError.is(err)).toBe(true);
  return err as ControlError;
}

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`control runtime on ${provider}`, () => {
    const dbs = testDatabases(provider);
    const runtimes: ControlRuntime[] = [];
    const readers: MapReader[] = [];
    afterEach(async () => {
      readers.splice(0).forEach((r) => r.close());
      await Promise.all(runtimes.splice(0).map((r) => r.close()));
    });

    async function runtime(opts: Parameters<typeof ControlRuntime.open>[2] = {}) {
      const config = {
        ...loadConfig({ TRELLIS_PUBLIC_URL: "https://vpn.example.com" }, dataDir),
        databaseUrl: dbs.url(),
      };
      const rt = await ControlRuntime.open(config, log, {
        controlKey: generateKeyPair(),
        stream: { coalesceMs: 5 },
        ...opts,
      });
      runtimes.push(rt);
      return rt;
    }
    async function open(n: TestNode) {
      const r = await n.stream();
      readers.push(r);
      return r;
    }

    it("streams a full map with peers, relay map and filter, then deltas as peers join, move and leave", async () => {
      const rt = await runtime();
      const { key } = await rt.createPreAuthKey({ tags: ["tag:server"], reusable: true }, "system");
      const a = new TestNode(rt);
      const b = new TestNode(rt);
      await a.register(key, "alpha");
      await b.register(key, "beta");
      const ra = await open(a);
      const first = await ra.next();
      expect(first).toMatchObject({
        type: "full",
        seq: 0,
        node: { name: "alpha", online: true, addresses: ["100.64.0.1/32", "fd7a:115c:a1e0::1/128"] },
        relayMap: {
          regions: { "1": { regionCode: "embedded", nodes: [{ url: "wss://vpn.example.com/derp" }] } },
        },
        dns: { domain: "trellis.internal", nameservers: [] },
        packetFilter: [{ SrcIPs: ["*"], DstPorts: expect.any(Array) }],
        policyVersion: 0,
      });
      expect(ra.map.peers).toEqual([
        expect.objectContaining({
          name: "beta",
          key: b.signer.nodeKey,
          dnsName: "beta.trellis.internal.",
          allowedIPs: ["100.64.0.2/32", "fd7a:115c:a1e0::2/128"],
          online: false,
        }),
      ]);

      // A third node joins: a delta with just that peer, not a full map.
      const c = new TestNode(rt);
      await c.register(key, "gamma");
      const [d1] = await ra.until((m) => peerNames(m).includes("gamma"));
      expect(d1).toMatchObject({ type: "delta", peersChanged: [expect.objectContaining({ name: "gamma" })] });
      expect(d1!.packetFilter).toBeUndefined();

      // beta comes online and reports endpoints.
      const rb = await open(b);
      await rb.next();
      await ra.until((m) => m.peers.find((p) => p.name === "beta")!.online);
      expect(await b.endpoints(["192.0.2.7:41641"])).toEqual({ changed: true });
      expect(await b.endpoints(["192.0.2.7:41641"])).toEqual({ changed: false });
      const moved = await ra.until((m) => m.peers.find((p) => p.name === "beta")!.endpoints.length === 1);
      expect(moved.at(-1)!.peersChanged!.map((p) => p.name)).toEqual(["beta"]);

      // beta's stream closes: alpha sees it offline.
      rb.close();
      await ra.until((m) => !m.peers.find((p) => p.name === "beta")!.online);
      expect(ra.map.peers.find((p) => p.name === "beta")!.lastSeen).not.toBeNull();
    });

    it("shows each node only the peers policy lets it reach or be reached by, and re-sends on policy change", async () => {
      const rt = await runtime();
      const keyFor = async (tag: string) => (await rt.createPreAuthKey({ tags: [tag] }, "system")).key;
      const web = new TestNode(rt);
      const db = new TestNode(rt);
      const lone = new TestNode(rt);
      await web.register(await keyFor("tag:web"), "web");
      await db.register(await keyFor("tag:db"), "db");
      await lone.register(await keyFor("tag:lone"), "lone");
      const { version } = await rt.setPolicy(
        JSON.stringify({
          tagOwners: { "tag:web": [], "tag:db": [], "tag:lone": [] },
          acls: [{ action: "accept", src: ["tag:web"], dst: ["tag:db:5432"] }],
        }),
        "system",
      );
      expect(version).toBe(1);
      const [rw, rd, rl] = [await open(web), await open(db), await open(lone)];
      await Promise.all([rw.next(), rd.next(), rl.next()]);
      expect(peerNames(rw.map)).toEqual(["db"]);
      expect(rw.map.packetFilter).toEqual([]);
      expect(peerNames(rd.map)).toEqual(["web"]);
      expect(rd.map.packetFilter).toEqual([
        {
          SrcIPs: ["100.64.0.1", "fd7a:115c:a1e0::1"],
          DstPorts: [
            { IP: "100.64.0.2", Ports: { First: 5432, Last: 5432 } },
            { IP: "fd7a:115c:a1e0::2", Ports: { First: 5432, Last: 5432 } },
          ],
        },
      ]);
      expect(peerNames(rl.map)).toEqual([]);
      expect(rl.map.policyVersion).toBe(1);

      // Back to allow-all: lone gains both peers and a filter through a delta.
      await rt.setPolicy('{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}', "system");
      const deltas = await rl.until((m) => m.peers.length === 2);
      expect(deltas.some((d) => d.packetFilter !== undefined && d.policyVersion === 2)).toBe(true);
      expect(rl.map.packetFilter).toHaveLength(1);

      // An invalid policy is refused with its issues and changes nothing.
      const err = await controlError(
        rt.setPolicy('{"acls":[{"action":"accept","src":["group:nope"],"dst":["*:*"]}]}', "system"),
      );
      expect(err.status).toBe(400);
      expect((await rt.policy()).version).toBe(2);
    });

    it("sends heartbeats, and cuts off a reader that stops reading", async () => {
      const rt = await runtime({ stream: { heartbeatMs: 30, coalesceMs: 1, maxQueuedBytes: 2048 } });
      const { key } = await rt.createPreAuthKey({ tags: ["tag:server"], reusable: true }, "system");
      const a = new TestNode(rt);
      const b = new TestNode(rt);
      await a.register(key, "alpha");
      await b.register(key, "beta");
      const stream = await rt.openMapStream(a.signed("GET", "/api/v1/map"));
      const reader = stream.getReader();
      const text = async () => new TextDecoder().decode((await reader.read()).value);
      expect(await text()).toMatch(/^id: 0\nevent: full\ndata: \{/);
      expect(await text()).toBe(": heartbeat\n\n");

      // Stop reading while beta's endpoints keep changing: the stream ends instead of growing.
      for (let i = 0; i < 12; i++) {
        await b.endpoints([`192.0.2.1:${1000 + i}`]);
        await new Promise((r) => setTimeout(r, 15));
      }
      let done = false;
      for (let i = 0; i < 50 && !done; i++) done = (await reader.read()).done;
      expect(done).toBe(true);
      // Its presence ended with it (written in the background, so poll).
      const deadline = Date.now() + 10_000;
      let online = true;
      while (online && Date.now() < deadline) {
        const row = await rt.db.prisma.node.findUniqueOrThrow({ where: { nodeKey: a.signer.nodeKey } });
        online = row.online;
        if (online) await new Promise((r) => setTimeout(r, 20));
      }
      expect(online).toBe(false);
    });

    it("ends the reader's stream when the request is aborted", async () => {
      const rt = await runtime();
      const { key } = await rt.createPreAuthKey({ tags: ["tag:server"], reusable: true }, "system");
      const a = new TestNode(rt);
      await a.register(key, "alpha");
      const ac = new AbortController();
      const reader = (await rt.openMapStream(a.signed("GET", "/api/v1/map"), ac.signal)).getReader();
      expect((await reader.read()).done).toBe(false);
      ac.abort();
      const end = await Promise.race([
        reader.read(),
        new Promise<"hung">((r) => setTimeout(() => r("hung"), 5_000)),
      ]);
      expect(end).toEqual({ done: true, value: undefined });
    });

    it("acts only for the node that signed: forged, unknown and malformed requests are refused", async () => {
      const rt = await runtime();
      const { key } = await rt.createPreAuthKey({ tags: ["tag:server"], reusable: true }, "system");
      const a = new TestNode(rt);
      const mallory = new TestNode(rt);
      await a.register(key, "alpha");

      // Mallory presents alpha's key with a MAC from her own private key.
      const forge = (method: string, path: string, body: string) => {
        const own = parseNodeAuth(mallory.signer.sign(method, path, body))!;
        return { method, path, body, authorization: formatNodeAuth({ ...own, key: a.signer.nodeKey }) };
      };
      const body = JSON.stringify({ endpoints: ["203.0.113.9:1"] });
      expect(await controlError(rt.updateEndpoints(forge("POST", "/api/v1/endpoints", body)))).toMatchObject({
        status: 401,
        code: "bad_signature",
      });
      expect(await controlError(rt.openMapStream(forge("GET", "/api/v1/map", "")))).toMatchObject({
        status: 401,
      });
      expect(
        await controlError(
          rt.register(forge("POST", "/api/v1/register", JSON.stringify({ preAuthKey: key, hostname: "x" }))),
        ),
      ).toMatchObject({ status: 401 });
      // Unregistered nodes have no map and no endpoints.
      expect(await controlError(mallory.stream())).toMatchObject({ status: 401, code: "unknown_node" });
      expect(await controlError(mallory.endpoints([]))).toMatchObject({ status: 401, code: "unknown_node" });
      // Bad bodies from a real node: 400, nothing stored.
      for (const bad of ["not json", "{}", JSON.stringify({ endpoints: ["nope"] })]) {
        const err = await controlError(rt.updateEndpoints(a.signed("POST", "/api/v1/endpoints", bad)));
        expect(err.status).toBe(400);
      }
      const row = await rt.db.prisma.node.findUniqueOrThrow({ where: { nodeKey: a.signer.nodeKey } });
      expect(row.endpoints).toBe("[]");
    });

    it("removes an ephemeral node shortly after its last stream closes", async () => {
      const rt = await runtime({ ephemeralGraceMs: 200 });
      const eph = (await rt.createPreAuthKey({ tags: ["tag:ci"], ephemeral: true }, "system")).key;
      const keep = (await rt.createPreAuthKey({ tags: ["tag:server"] }, "system")).key;
      const e = new TestNode(rt);
      const s = new TestNode(rt);
      expect((await e.register(eph, "ci-runner")).node.ephemeral).toBe(true);
      await s.register(keep, "server");
      const rs = await open(s);
      await rs.next();
      const re = await open(e);
      await re.next();
      // Two streams: closing one keeps it online.
      const re2 = await open(e);
      await re2.next();
      re.close();
      await new Promise((r) => setTimeout(r, 400));
      expect(await rt.db.prisma.node.count()).toBe(2);
      re2.close();
      await rs.until((m) => m.peers.length === 0);
      expect(await rt.db.prisma.node.count()).toBe(1);
      expect(await rt.db.prisma.auditEvent.count({ where: { action: "node.ephemeral_removed" } })).toBe(1);
      expect(await controlError(e.stream())).toMatchObject({ status: 401, code: "unknown_node" });
    });
  });
}

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`routes on ${provider}`, () => {
    const dbs = testDatabases(provider);
    const runtimes: ControlRuntime[] = [];
    afterEach(async () => {
      await Promise.all(runtimes.splice(0).map((r) => r.close()));
    });

    it("auto-approves covered routes, lets admins approve the rest, and puts them in peers' allowedIPs", async () => {
      const config = { ...loadConfig({}, dataDir), databaseUrl: dbs.url() };
      const rt = await ControlRuntime.open(config, log, {
        controlKey: generateKeyPair(),
        stream: { coalesceMs: 5 },
      });
      runtimes.push(rt);
      await rt.setPolicy(
        JSON.stringify({
          tagOwners: { "tag:router": [], "tag:exit": [], "tag:client": [] },
          autoApprovers: { routes: { "10.0.0.0/8": ["tag:router"] }, exitNode: ["tag:exit"] },
          acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }],
        }),
        "system",
      );
      const key = async (tag: string) => (await rt.createPreAuthKey({ tags: [tag] }, "system")).key;
      const router = new TestNode(rt);
      const exit = new TestNode(rt);
      const client = new TestNode(rt);
      const r = await router.register(await key("tag:router"), "router", {
        routableIPs: ["10.1.0.0/16", "192.168.1.0/24"],
      });
      await exit.register(await key("tag:exit"), "exit", { routableIPs: ["0.0.0.0/0", "::/0"] });
      await client.register(await key("tag:client"), "client", { routableIPs: ["10.9.0.0/16"] });

      const ac = new AbortController();
      const reader = new MapReader(
        await rt.openMapStream(client.signed("GET", "/api/v1/map"), ac.signal),
        ac,
      );
      await reader.next();
      const allowed = (name: string) => reader.map.peers.find((p) => p.name === name)!.allowedIPs;
      expect(allowed("router")).toEqual(["100.64.0.1/32", "fd7a:115c:a1e0::1/128", "10.1.0.0/16"]);
      expect(allowed("exit")).toEqual(["100.64.0.2/32", "fd7a:115c:a1e0::2/128", "0.0.0.0/0", "::/0"]);
      // The client's own route is advertised but not approved (its tag is no approver).
      expect(reader.map.node).toMatchObject({ advertisedRoutes: ["10.9.0.0/16"], approvedRoutes: [] });

      await rt.approveRoutes(r.node.id, { routes: ["10.1.0.0/16", "192.168.1.0/24"] }, "admin");
      await reader.until((m) =>
        m.peers.find((p) => p.name === "router")!.allowedIPs.includes("192.168.1.0/24"),
      );
      expect(await controlError(rt.approveRoutes(r.node.id, { routes: ["nope"] }, "admin"))).toMatchObject({
        status: 400,
      });
      expect(await controlError(rt.approveRoutes("missing", { routes: [] }, "admin"))).toMatchObject({
        status: 404,
      });

      // A policy save that approves an advertised route changes that node, not
      // only the policy: the open stream gets both.
      await rt.setPolicy(
        JSON.stringify({
          tagOwners: { "tag:router": [], "tag:exit": [], "tag:client": [] },
          autoApprovers: { routes: { "10.0.0.0/8": ["tag:router", "tag:client"] }, exitNode: ["tag:exit"] },
          acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }],
        }),
        "system",
      );
      await reader.until((m) => m.policyVersion === 2);
      expect(reader.map.node).toMatchObject({ approvedRoutes: ["10.9.0.0/16"] });
      expect(reader.map.node.allowedIPs).toContain("10.9.0.0/16");
      reader.close();
    });
  });
}

// Scale-out: two server processes (runtimes) on one PostgreSQL database. They
// share the control key, as replicas must (see control/README.md).
describe.skipIf(PROVIDERS.find((p) => p.provider === "postgresql")!.skip)(
  "two replicas on one PostgreSQL database",
  () => {
    const dbs = testDatabases("postgresql");
    const runtimes: ControlRuntime[] = [];
    const readers: MapReader[] = [];
    afterEach(async () => {
      readers.splice(0).forEach((r) => r.close());
      await Promise.all(runtimes.splice(0).map((r) => r.close()));
    });

    it("a node streaming from one replica hears of changes made through the other within a second", async () => {
      const url = dbs.url();
      const controlKey = generateKeyPair();
      const replica = async () => {
        const config = {
          ...loadConfig({ TRELLIS_PUBLIC_URL: "https://vpn.example.com" }, dataDir),
          databaseUrl: url,
        };
        const rt = await ControlRuntime.open(config, log, { controlKey, stream: { coalesceMs: 5 } });
        runtimes.push(rt);
        return rt;
      };
      const one = await replica();
      const two = await replica();
      const { key } = await one.createPreAuthKey({ tags: ["tag:server"], reusable: true }, "system");

      const a = new TestNode(two);
      await a.register(key, "alpha");
      const ra = await a.stream();
      readers.push(ra);
      await ra.next();
      expect(peerNames(ra.map)).toEqual([]);

      const b = new TestNode(one);
      // No timing bound here (the machine is shared): with no polling fallback,
      // arrival at all proves the change crossed over NOTIFY.
      await b.register(key, "beta");
      await ra.until((m) => peerNames(m).includes("beta"));

      await one.setPolicy(JSON.stringify({ tagOwners: { "tag:server": [] }, acls: [] }), "system");
      await ra.until((m) => m.peers.length === 0 && m.policyVersion === 1);
    });

    it("refuses on one replica a signed request another already accepted, and forgets it after its window", async () => {
      const url = dbs.url();
      const controlKey = generateKeyPair();
      const config = {
        ...loadConfig({ TRELLIS_PUBLIC_URL: "https://vpn.example.com" }, dataDir),
        databaseUrl: url,
      };
      const one = await ControlRuntime.open(config, log, { controlKey });
      const two = await ControlRuntime.open(config, log, { controlKey });
      runtimes.push(one, two);
      const { key } = await one.createPreAuthKey({ tags: ["tag:server"], reusable: true }, "system");
      const a = new TestNode(one);
      await a.register(key, "alpha");

      const body = JSON.stringify({ endpoints: ["192.0.2.1:41641"] });
      const req = a.signed("POST", "/api/v1/endpoints", body);
      await one.updateEndpoints(req);
      // Captured on its way to one, replayed to two (and to one again).
      expect(await controlError(two.updateEndpoints(req))).toMatchObject({
        status: 401,
        code: "replayed_request",
      });
      expect(await controlError(one.updateEndpoints(req))).toMatchObject({
        status: 401,
        code: "replayed_request",
      });
      // A fresh request still goes through either replica.
      const fresh = JSON.stringify({ endpoints: ["192.0.2.2:41641"] });
      await two.updateEndpoints(a.signed("POST", "/api/v1/endpoints", fresh));
      const row = await one.db.prisma.node.findUniqueOrThrow({ where: { nodeKey: a.signer.nodeKey } });
      expect(JSON.parse(row.endpoints)).toEqual(["192.0.2.2:41641"]);

      // Claims are kept while their requests could be replayed, and deleted once the window has passed.
      const claims = await one.db.prisma.usedSignature.count();
      expect(claims).toBeGreaterThanOrEqual(3);
      const guard = new SharedReplayGuard(one.db, log);
      try {
        expect(await guard.prune()).toBe(0);
        await one.db.prisma.usedSignature.updateMany({
          data: { expiresAt: new Date(Date.now() - 3_600_000) },
        });
        expect(await guard.prune()).toBe(claims);
      } finally {
        guard.close();
      }
      expect(await one.db.prisma.usedSignature.count()).toBe(0);
    });
  },
);
