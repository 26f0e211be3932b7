import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { formatNodeAuth, parseNodeAuth, type FullMap, type MapDelta } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { setMachineRoutes } from "./admin/machines";
import { localOperator } from "./auth/actor";
import { loadConfig } from "./config";
import type { MapSink } from "./map-stream";
import { SharedReplayGuard } from "./replay";
import { ControlRuntime } from "./runtime";
import {
  apiRejection,
  type MapReader,
  preAuthKey,
  serveNodeApi,
  setPolicy,
  TestNode,
} from "./testing/control";
import { PROVIDERS, testDatabases } from "./testing/db";

const log = createLogger("test", "silent");
const dataDir = mkdtempSync(join(tmpdir(), "trellis-rt-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const peerNames = (m: FullMap) => m.peers.map((p) => p.name).sort();

const controlError = apiRejection;

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`control runtime on ${provider}`, () => {
    const dbs = testDatabases(provider);
    const runtimes: ControlRuntime[] = [];
    const readers: MapReader[] = [];
    afterEach(async () => {
      readers.splice(0).forEach((r) => r.close());
      await Promise.all(runtimes.splice(0).map((r) => r.close()));
    });

    const servers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const close of servers.splice(0)) await close();
    });

    /** A runtime served by the node API on a loopback port (nodes reach it through the ControlClient). */
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
      servers.push((await serveNodeApi(rt)).close);
      return rt;
    }
    async function open(n: TestNode) {
      const r = await n.stream();
      readers.push(r);
      return r;
    }

    it("streams a full map with peers, relay map and filter, then deltas as peers join, move and leave", async () => {
      const rt = await runtime();
      const key = await preAuthKey(rt, { tags: ["tag:server"], reusable: true });
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
        packetFilter: [
          {
            SrcIPs: ["100.64.0.0-100.115.91.255", "100.115.94.0-100.127.255.255", "fd7a:115c:a1e0::/48"],
            DstPorts: expect.any(Array),
          },
        ],
        policyVersion: 0,
      });
      expect(ra.map.peers).toEqual([
        expect.objectContaining({
          name: "beta",
          key: b.key,
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
      expect((moved.at(-1) as MapDelta).peersChanged!.map((p) => p.name)).toEqual(["beta"]);

      // beta's stream closes: alpha sees it offline.
      rb.close();
      await ra.until((m) => !m.peers.find((p) => p.name === "beta")!.online);
      expect(ra.map.peers.find((p) => p.name === "beta")!.lastSeen).not.toBeNull();
    });

    it("shows each node only the peers policy lets it reach or be reached by, and re-sends on policy change", async () => {
      const rt = await runtime();
      const keyFor = async (tag: string) => await preAuthKey(rt, { tags: [tag] });
      const web = new TestNode(rt);
      const db = new TestNode(rt);
      const lone = new TestNode(rt);
      await web.register(await keyFor("tag:web"), "web");
      await db.register(await keyFor("tag:db"), "db");
      await lone.register(await keyFor("tag:lone"), "lone");
      const version = await setPolicy(
        rt,
        JSON.stringify({
          tagOwners: { "tag:web": [], "tag:db": [], "tag:lone": [] },
          acls: [{ action: "accept", src: ["tag:web"], dst: ["tag:db:5432"] }],
        }),
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
      await setPolicy(rt, '{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}');
      const deltas = await rl.until((m) => m.peers.length === 2);
      expect(deltas.some((d) => d.packetFilter !== undefined && d.policyVersion === 2)).toBe(true);
      expect(rl.map.packetFilter).toHaveLength(1);

      // An invalid policy is refused with its issues and changes nothing.
      const err = await controlError(
        setPolicy(rt, '{"acls":[{"action":"accept","src":["group:nope"],"dst":["*:*"]}]}'),
      );
      expect(err.status).toBe(400);
      expect((await rt.policies.current()).version).toBe(2);
    });

    it("sends heartbeats, and cuts off a reader that stops reading", async () => {
      const rt = await runtime({ stream: { heartbeatMs: 30, coalesceMs: 1, maxQueuedBytes: 2048 } });
      const key = await preAuthKey(rt, { tags: ["tag:server"], reusable: true });
      const a = new TestNode(rt);
      const b = new TestNode(rt);
      await a.register(key, "alpha");
      await b.register(key, "beta");
      // Over HTTP, as sent: the full map first, then heartbeats.
      const signer = a.signer();
      const res = await a.client.signedFetch("GET", "/api/v1/map", "", signer.sign("GET", "/api/v1/map"));
      const body = res.body!.getReader();
      let text = "";
      while (!text.includes(": heartbeat\n\n")) text += new TextDecoder().decode((await body.read()).value);
      expect(text).toMatch(/^id: 0\nevent: full\ndata: \{/);
      await body.cancel();

      // A reader that takes nothing: the production stream core, on a sink whose bytes nobody reads.
      let queued = 0;
      let ended: boolean | null = null;
      const sink: MapSink = {
        write: (bytes) => void (queued += bytes.byteLength),
        queued: () => queued,
        gone: () => ended !== null,
        end: (abort) => void (ended = abort ?? false),
      };
      await rt.startMapStream(
        { method: "GET", path: "/api/v1/map", body: "", authorization: signer.sign("GET", "/api/v1/map") },
        sink,
      );
      // Beta's endpoints keep changing: the stream ends (aborted) instead of growing.
      for (let i = 0; i < 12 && ended === null; i++) {
        await b.endpoints([`192.0.2.1:${1000 + i}`]);
        await new Promise((r) => setTimeout(r, 15));
      }
      expect(ended).toBe(true);
      // Its presence ended with it (written in the background, so poll).
      const deadline = Date.now() + 10_000;
      let online = true;
      while (online && Date.now() < deadline) {
        online = (await a.row()).online;
        if (online) await new Promise((r) => setTimeout(r, 20));
      }
      expect(online).toBe(false);
    });

    it("takes a node offline when its reader closes the stream", async () => {
      const rt = await runtime();
      const key = await preAuthKey(rt, { tags: ["tag:server"], reusable: true });
      const a = new TestNode(rt);
      await a.register(key, "alpha");
      const reader = await open(a);
      await reader.next();
      expect((await a.row()).online).toBe(true);
      reader.close();
      const deadline = Date.now() + 10_000;
      while ((await a.row()).online && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect((await a.row()).online).toBe(false);
    });

    it("acts only for the node that signed: forged, unknown and malformed requests are refused", async () => {
      const rt = await runtime();
      const key = await preAuthKey(rt, { tags: ["tag:server"], reusable: true });
      const a = new TestNode(rt);
      const mallory = new TestNode(rt);
      await a.register(key, "alpha");

      // Mallory presents alpha's key with a MAC from her own private key.
      const forge = async (method: string, path: string, body: string) => {
        const own = parseNodeAuth(mallory.signer().sign(method, path, body))!;
        const res = await mallory.client.signedFetch(
          method,
          path,
          body,
          formatNodeAuth({ ...own, key: a.key }),
        );
        return { status: res.status, code: ((await res.json()) as { error: string }).error };
      };
      const body = JSON.stringify({ endpoints: ["203.0.113.9:1"] });
      expect(await forge("POST", "/api/v1/endpoints", body)).toEqual({ status: 401, code: "bad_signature" });
      expect((await forge("GET", "/api/v1/map", "")).status).toBe(401);
      expect(
        (await forge("POST", "/api/v1/register", JSON.stringify({ preAuthKey: key, hostname: "x" }))).status,
      ).toBe(401);
      // Unregistered nodes have no map and no endpoints.
      expect(await controlError(mallory.stream())).toMatchObject({ status: 401, code: "unknown_node" });
      expect(await controlError(mallory.endpoints([]))).toMatchObject({ status: 401, code: "unknown_node" });
      // Bad bodies from a real node: 400, nothing stored.
      for (const bad of ["not json", "{}", JSON.stringify({ endpoints: ["nope"] })]) {
        const res = await a.client.signedFetch("POST", "/api/v1/endpoints", bad);
        expect(res.status).toBe(400);
      }
      expect((await a.row()).endpoints).toBe("[]");
      // A plain WireGuard peer's key (admin/wireguard.ts) is no node of this API, whoever holds its private half.
      const plain = new TestNode(rt);
      await plain.register(key, "plain");
      await rt.db.prisma.node.update({
        where: { id: (await plain.row()).id },
        data: { wireguardOnly: true },
      });
      expect(await controlError(plain.stream())).toMatchObject({ status: 403, code: "wireguard_peer" });
      expect(await controlError(plain.endpoints([]))).toMatchObject({ status: 403, code: "wireguard_peer" });
      expect(await controlError(plain.register(key, "plain"))).toMatchObject({
        status: 403,
        code: "wireguard_peer",
      });
    });

    it("removes an ephemeral node shortly after its last stream closes", async () => {
      const rt = await runtime({ ephemeralGraceMs: 200 });
      const eph = await preAuthKey(rt, { tags: ["tag:ci"], ephemeral: true });
      const keep = await preAuthKey(rt, { tags: ["tag:server"] });
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
      const server = await serveNodeApi(rt);
      await setPolicy(
        rt,
        JSON.stringify({
          tagOwners: { "tag:router": [], "tag:exit": [], "tag:client": [] },
          autoApprovers: { routes: { "10.0.0.0/8": ["tag:router"] }, exitNode: ["tag:exit"] },
          acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }],
        }),
      );
      const key = async (tag: string) => await preAuthKey(rt, { tags: [tag] });
      const router = new TestNode(rt);
      const exit = new TestNode(rt);
      const client = new TestNode(rt);
      const r = await router.register(await key("tag:router"), "router", {
        routableIPs: ["10.1.0.0/16", "192.168.1.0/24"],
      });
      await exit.register(await key("tag:exit"), "exit", { routableIPs: ["0.0.0.0/0", "::/0"] });
      await client.register(await key("tag:client"), "client", { routableIPs: ["10.9.0.0/16"] });

      const reader = await client.stream();
      await reader.next();
      const allowed = (name: string) => reader.map.peers.find((p) => p.name === name)!.allowedIPs;
      expect(allowed("router")).toEqual(["100.64.0.1/32", "fd7a:115c:a1e0::1/128", "10.1.0.0/16"]);
      expect(allowed("exit")).toEqual(["100.64.0.2/32", "fd7a:115c:a1e0::2/128", "0.0.0.0/0", "::/0"]);
      // The client's own route is advertised but not approved (its tag is no approver).
      expect(reader.map.node).toMatchObject({ advertisedRoutes: ["10.9.0.0/16"], approvedRoutes: [] });

      const admin = localOperator();
      await setMachineRoutes(rt, admin, r.node.id, { routes: ["10.1.0.0/16", "192.168.1.0/24"] });
      await reader.until((m) =>
        m.peers.find((p) => p.name === "router")!.allowedIPs.includes("192.168.1.0/24"),
      );
      expect(await controlError(setMachineRoutes(rt, admin, r.node.id, { routes: ["nope"] }))).toMatchObject({
        status: 400,
      });
      expect(await controlError(setMachineRoutes(rt, admin, "missing", { routes: [] }))).toMatchObject({
        status: 404,
      });

      // A policy save that approves an advertised route changes that node, not
      // only the policy: the open stream gets both.
      await setPolicy(
        rt,
        JSON.stringify({
          tagOwners: { "tag:router": [], "tag:exit": [], "tag:client": [] },
          autoApprovers: { routes: { "10.0.0.0/8": ["tag:router", "tag:client"] }, exitNode: ["tag:exit"] },
          acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }],
        }),
      );
      await reader.until((m) => m.policyVersion === 2);
      expect(reader.map.node).toMatchObject({ approvedRoutes: ["10.9.0.0/16"] });
      expect(reader.map.node.allowedIPs).toContain("10.9.0.0/16");
      reader.close();
      await server.close();
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
    const servers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      readers.splice(0).forEach((r) => r.close());
      for (const close of servers.splice(0)) await close();
      await Promise.all(runtimes.splice(0).map((r) => r.close()));
    });
    const serve = async (rt: ControlRuntime) => {
      const s = await serveNodeApi(rt);
      servers.push(s.close);
      return s.url;
    };

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
        await serve(rt);
        return rt;
      };
      const one = await replica();
      const two = await replica();
      const key = await preAuthKey(one, { tags: ["tag:server"], reusable: true });

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

      await setPolicy(one, JSON.stringify({ tagOwners: { "tag:server": [] }, acls: [] }));
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
      const [urlOne, urlTwo] = [await serve(one), await serve(two)];
      const key = await preAuthKey(one, { tags: ["tag:server"], reusable: true });
      const a = new TestNode(one);
      await a.register(key, "alpha");

      const body = JSON.stringify({ endpoints: ["192.0.2.1:41641"] });
      const authorization = a.signer().sign("POST", "/api/v1/endpoints", body);
      const send = async (url: string) => {
        const res = await fetch(`${url}/api/v1/endpoints`, {
          method: "POST",
          headers: { authorization, "content-type": "application/json" },
          body,
        });
        return { status: res.status, code: ((await res.json()) as { error?: string }).error };
      };
      expect((await send(urlOne)).status).toBe(200);
      // Captured on its way to one, replayed to two (and to one again).
      expect(await send(urlTwo)).toEqual({ status: 401, code: "replayed_request" });
      expect(await send(urlOne)).toEqual({ status: 401, code: "replayed_request" });
      // A fresh request still goes through either replica.
      const viaTwo = await fetch(`${urlTwo}/api/v1/endpoints`, {
        method: "POST",
        headers: {
          authorization: a.signer().sign("POST", "/api/v1/endpoints", '{"endpoints":["192.0.2.2:41641"]}'),
          "content-type": "application/json",
        },
        body: '{"endpoints":["192.0.2.2:41641"]}',
      });
      expect(viaTwo.status).toBe(200);
      const row = await one.db.prisma.node.findUniqueOrThrow({ where: { nodeKey: a.key } });
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
