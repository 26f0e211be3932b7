// The node-facing lifecycle as a node sees it, through the node API and the
// ControlClient: approval, key rotation, logout and expiry, WebRTC
// signalling, connection logs, and settings reaching open streams. On SQLite
// and PostgreSQL, plus two replicas on one PostgreSQL database.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import {
  ROTATION_PROOF,
  SIGNAL_MAX_SEALED,
  formatNodeAuth,
  parseNodeAuth,
  type FullMap,
  type Role,
  type Scope,
} from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import type { Actor } from "./auth/actor";
import { scopesFor } from "./auth/actor";
import { loadConfig } from "./config";
import { ControlRuntime, type RuntimeOptions } from "./runtime";
import { getDnsSettings, getTailnetSettings, updateDnsSettings, updateTailnetSettings } from "./settings";
import {
  apiRejection,
  type MapReader,
  preAuthKey,
  refusal,
  serveNodeApi,
  setPolicy,
  TestNode,
} from "./testing/control";
import { PROVIDERS, testDatabases } from "./testing/db";

const log = createLogger("test", "silent");
const dataDir = mkdtempSync(join(tmpdir(), "trellis-life-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const peerNames = (m: FullMap) => m.peers.map((p) => p.name).sort();

const controlError = apiRejection;

/** Whether the relay in front of `rt` would admit `key`. */
const admitted = async (rt: ControlRuntime, key: Uint8Array) => (await rt.admitsNodeKeys([key]))[0];

function actor(role: Role, scopes?: Scope[]): Actor {
  return {
    userId: `user-${role}`,
    email: `${role}@example.com`,
    name: role,
    role,
    via: scopes ? "token" : "session",
    scopes: scopesFor(role, scopes),
    credentialId: "test",
  };
}
const admin = actor("admin");

const ALLOW_AB = JSON.stringify({
  tagOwners: { "tag:a": [], "tag:b": [], "tag:c": [] },
  acls: [{ action: "accept", src: ["tag:a"], dst: ["tag:b:*"] }],
});

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`node lifecycle on ${provider}`, () => {
    const dbs = testDatabases(provider);
    const runtimes: ControlRuntime[] = [];
    const streams: MapReader[] = [];
    const servers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      streams.splice(0).forEach((s) => s.close());
      for (const close of servers.splice(0)) await close();
      await Promise.all(runtimes.splice(0).map((r) => r.close()));
    });

    async function runtime(opts: RuntimeOptions = {}) {
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
      const s = await n.stream();
      streams.push(s);
      await s.step();
      return s;
    }
    const tagKey = async (rt: ControlRuntime, tag: string, extra: object = {}) =>
      await preAuthKey(rt, { tags: [tag], reusable: true, ...extra });

    it("holds new nodes for approval: alone in their map, nobody's peer, refused by the relay, until approved", async () => {
      const rt = await runtime();
      const key = await tagKey(rt, "tag:server");
      const a = new TestNode(rt);
      expect((await a.register(key, "alpha")).node.authorized).toBe(true);
      await updateTailnetSettings(rt, admin, { nodeApproval: true });

      const p = new TestNode(rt);
      const reg = await p.register(key, "pending");
      expect(reg.node).toMatchObject({ authorized: false, addresses: expect.any(Array) });

      const sa = await open(a);
      const sp = await open(p);
      expect(sp.map.node).toMatchObject({ name: "pending", authorized: false });
      expect(sp.map.peers).toEqual([]);
      expect(sp.map.packetFilter).toEqual([]);
      expect(peerNames(sa.map)).toEqual([]);
      expect(await admitted(rt, p.keys.publicKey)).toBe(false);
      expect(await admitted(rt, a.keys.publicKey)).toBe(true);
      // A pending node can neither signal nor report connections.
      expect(await controlError(p.signal(a.key, "AAAA"))).toMatchObject({ status: 403 });

      // An admin approves it (as authorizeMachine does): both streams follow.
      await rt.db.prisma.node.update({ where: { id: reg.node.id }, data: { authorized: true } });
      rt.events.publish({ type: "nodes", ids: [reg.node.id] });
      await sp.waitFor((s) => s.map.node.authorized && s.map.peers.length === 1, "approval");
      expect(peerNames(sp.map)).toEqual(["alpha"]);
      expect(sp.map.packetFilter).not.toEqual([]);
      await sa.waitFor((s) => peerNames(s.map).includes("pending"), "the approved peer");
      expect(await admitted(rt, p.keys.publicKey)).toBe(true);

      // Withdrawing approval ends its stream; reconnecting shows the pending map again.
      await rt.db.prisma.node.update({ where: { id: reg.node.id }, data: { authorized: false } });
      rt.events.publish({ type: "nodes", ids: [reg.node.id] });
      expect(await sp.end()).toEqual({ type: "end", reason: "unauthorized" });
      await sa.waitFor((s) => s.map.peers.length === 0, "the peer gone");
      const again = await open(p);
      expect(again.map.peers).toEqual([]);
    });

    it("rotates a node's key: same node and addresses, peers get the new key, the old key is dead", async () => {
      const rt = await runtime();
      const key = await tagKey(rt, "tag:server");
      const a = new TestNode(rt);
      const b = new TestNode(rt);
      const before = (await a.register(key, "alpha")).node;
      await b.register(key, "beta");
      const sb = await open(b);
      const sa = await open(a);
      expect(sb.map.peers[0]!.key).toBe(a.key);

      const a2 = new TestNode(rt);
      const res = await a2.rotateFrom(a, "alpha");
      expect(res).toMatchObject({
        created: false,
        node: {
          id: before.id,
          name: "alpha",
          addresses: before.addresses,
          tags: ["tag:server"],
          key: a2.key,
        },
      });
      await sb.waitFor((s) => s.map.peers[0]?.key === a2.key, "the new key");
      expect(sb.map.peers[0]!.addresses).toEqual(before.addresses);
      // The stream opened with the old key ends; the old key no longer works anywhere.
      expect(await sa.end()).toEqual({ type: "end", reason: "key_rotated" });
      expect(await controlError(a.stream())).toMatchObject({ status: 401, code: "unknown_node" });
      expect(await admitted(rt, a.keys.publicKey)).toBe(false);
      expect(await admitted(rt, a2.keys.publicKey)).toBe(true);
      // Not even a pre-auth key brings it back (that would fork the node).
      expect(await controlError(a.register(key, "alpha-fork"))).toMatchObject({
        status: 409,
        code: "node_key_retired",
      });
      expect(await rt.db.prisma.node.count()).toBe(2);
      const row = await a2.row();
      expect(JSON.parse(row.previousKeys)).toEqual([a.key]);
      const audit = await rt.db.prisma.auditEvent.findFirstOrThrow({ where: { action: "node.rotate_key" } });
      expect(JSON.parse(audit.detail)).toEqual({ before: { nodeKey: a.key }, after: { nodeKey: a2.key } });
      // The new key streams as the same node.
      const s2 = await open(a2);
      expect(s2.map.node).toMatchObject({ id: before.id, key: a2.key });
      expect(peerNames(s2.map)).toEqual(["beta"]);
      // Retrying the same rotation is harmless; rotating from the retired key again is refused.
      expect((await a2.rotateFrom(a, "alpha")).node.id).toBe(before.id);
      const a3 = new TestNode(rt);
      expect(await controlError(a3.rotateFrom(a, "alpha"))).toMatchObject({
        status: 409,
        code: "node_key_retired",
      });
    });

    it("refuses rotation proofs that are forged, for another key, or from an unknown key", async () => {
      const rt = await runtime();
      const key = await tagKey(rt, "tag:server");
      const a = new TestNode(rt);
      await a.register(key, "alpha");
      const mallory = new TestNode(rt);
      const m2 = new TestNode(rt);
      // A proof made for someone else's new key.
      expect(await controlError(m2.rotateFrom(a, "alpha", mallory.key))).toMatchObject({
        status: 401,
        code: "bad_rotation_proof",
      });
      // Mallory's own MAC presented under alpha's key.
      const own = parseNodeAuth(mallory.signer().sign(ROTATION_PROOF.method, ROTATION_PROOF.path, m2.key))!;
      const forged = formatNodeAuth({ ...own, key: a.key });
      const body = JSON.stringify({ hostname: "x", rotateFrom: { nodeKey: a.key, signature: forged } });
      expect(await refusal(await m2.client.signedFetch("POST", "/api/v1/register", body))).toMatchObject({
        status: 401,
        code: "bad_rotation_proof",
      });
      // A proof from a key that is no node's.
      expect(await controlError(m2.rotateFrom(mallory, "x"))).toMatchObject({
        status: 401,
        code: "unknown_node",
      });
      // A new key without a pre-auth key or rotation cannot register.
      expect(await controlError(m2.register(undefined, "x"))).toMatchObject({ status: 401 });
      expect((await a.row()).nodeKey).toBe(a.key);
      expect(await rt.db.prisma.node.count()).toBe(1);
    });

    it("logs out: streams end, the key is refused, ephemeral nodes are deleted", async () => {
      const rt = await runtime({ ephemeralGraceMs: 60_000 });
      const key = await tagKey(rt, "tag:server");
      const a = new TestNode(rt);
      const b = new TestNode(rt);
      const e = new TestNode(rt);
      await a.register(key, "alpha");
      await b.register(key, "beta");
      await e.register(await tagKey(rt, "tag:ci", { ephemeral: true }), "runner");
      const sb = await open(b);
      const sa = await open(a);
      const se = await open(e);
      expect(peerNames(sb.map)).toEqual(["alpha", "runner"]);

      expect(await a.logout()).toEqual({ loggedOut: true, deleted: false });
      expect(await sa.end()).toEqual({ type: "end", reason: "key_expired" });
      expect(await controlError(a.stream())).toMatchObject({ status: 401, code: "node_key_expired" });
      expect(await controlError(a.logout())).toMatchObject({ status: 401 });
      expect(await admitted(rt, a.keys.publicKey)).toBe(false);
      await sb.waitFor((s) => !peerNames(s.map).includes("alpha"), "alpha gone");

      expect(await e.logout()).toEqual({ loggedOut: true, deleted: true });
      expect(await se.end()).toEqual({ type: "end", reason: "deleted" });
      await sb.waitFor((s) => s.map.peers.length === 0, "runner gone");
      expect(await rt.db.prisma.node.count()).toBe(2);
      expect(await rt.db.prisma.auditEvent.count({ where: { action: "node.logout" } })).toBe(2);

      // A node may ask to be removed rather than expired (a browser leaving the tailnet); nothing else goes in the body.
      const c = new TestNode(rt);
      await c.register(key, "gamma");
      expect(await c.client.signedFetch("POST", "/api/v1/logout", '{"remove":1}')).toMatchObject({
        status: 400,
      });
      expect(await c.client.signedFetch("POST", "/api/v1/logout", '{"wipe":true}')).toMatchObject({
        status: 400,
      });
      expect(await c.client.logout({ remove: true })).toEqual({ loggedOut: true, deleted: true });
      expect(await rt.db.prisma.node.count({ where: { name: "gamma" } })).toBe(0);

      // A logged-out node comes back with a pre-auth key, as the same node.
      const back = await a.register(key, "alpha");
      expect(back.node.name).toBe("alpha");
      await sb.waitFor((s) => peerNames(s.map).includes("alpha"), "alpha back");
    });

    it("ends a stream when its key expires, with no write to announce it", async () => {
      const rt = await runtime();
      const key = await tagKey(rt, "tag:server");
      const a = new TestNode(rt);
      const b = new TestNode(rt);
      const reg = await a.register(key, "alpha");
      await b.register(key, "beta");
      // Streams first, so a slow machine cannot let the key expire before they open.
      const sa = await open(a);
      const sb = await open(b);
      expect(peerNames(sb.map)).toEqual(["alpha"]);
      // The new expiry is announced (as an admin's change would be); the expiry itself is not.
      await rt.db.prisma.node.update({
        where: { id: reg.node.id },
        data: { expiresAt: new Date(Date.now() + 1500) },
      });
      rt.events.publish({ type: "nodes", ids: [reg.node.id] });
      expect(await sa.end()).toEqual({ type: "end", reason: "key_expired" });
      await sb.waitFor((s) => s.map.peers.length === 0, "alpha expired");
    });

    it("hands sealed signals to peers the policy allows, verbatim, and refuses everything else", async () => {
      const rt = await runtime({ signalRate: { perSecond: 0.001, burst: 4 } });
      await setPolicy(rt, ALLOW_AB);
      const a = new TestNode(rt);
      const b = new TestNode(rt);
      const c = new TestNode(rt);
      await a.register(await tagKey(rt, "tag:a"), "a");
      await b.register(await tagKey(rt, "tag:b"), "b");
      await c.register(await tagKey(rt, "tag:c"), "c");
      const sb = await open(b);
      const sc = await open(c);

      const sealed = "3q2+7w" + "A".repeat(SIGNAL_MAX_SEALED - 8) + "==";
      expect(await a.signal(b.key, sealed)).toEqual({ status: "queued" });
      await sb.waitFor((s) => s.signals.length === 1, "the signal");
      expect(sb.signals[0]).toEqual({ type: "signal", from: a.key, sealed });
      // The map itself did not change for it.
      expect(peerNames(sb.map)).toEqual(["a"]);
      // b answers (the policy lets a reach b, so they are each other's peers).
      const sa = await open(a);
      expect(await b.signal(a.key, "YW5zd2Vy")).toEqual({ status: "queued" });
      await sa.waitFor((s) => s.signals.length === 1, "the answer");
      expect(sa.signals[0]).toEqual({ type: "signal", from: b.key, sealed: "YW5zd2Vy" });

      // Outside the policy, unknown, oversized, not base64, too large a body.
      expect(await controlError(a.signal(c.key, "AAAA"))).toMatchObject({ status: 403, code: "not_peer" });
      const stranger = new TestNode(rt);
      expect(await controlError(a.signal(stranger.key, "AAAA"))).toMatchObject({
        status: 404,
        code: "unknown_peer",
      });
      // (The rate limit is counted only for well-formed requests.)
      expect(await controlError(a.signal(b.key, "A".repeat(SIGNAL_MAX_SEALED + 4)))).toMatchObject({
        status: 400,
      });
      expect(await controlError(a.signal(b.key, "not base64!"))).toMatchObject({ status: 400 });
      const huge = JSON.stringify({ to: b.key, sealed: "A".repeat(70_000) });
      expect(await refusal(await a.client.signedFetch("POST", "/api/v1/signal", huge))).toMatchObject({
        status: 413,
      });
      // Nobody can send as a: the signature names the sender.
      const mallory = new TestNode(rt);
      const body = JSON.stringify({ to: b.key, sealed: "AAAA" });
      const own = parseNodeAuth(mallory.signer().sign("POST", "/api/v1/signal", body))!;
      const forged = formatNodeAuth({ ...own, key: a.key });
      expect(
        await refusal(await mallory.client.signedFetch("POST", "/api/v1/signal", body, forged)),
      ).toMatchObject({ status: 401, code: "bad_signature" });
      // Offline recipient: 404 (once its going offline is recorded: presence is written in batches).
      sb.close();
      for (let i = 0; i < 200; i++) {
        const row = await rt.db.prisma.node.findUniqueOrThrow({ where: { nodeKey: b.key } });
        if (!row.online) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(await controlError(a.signal(b.key, "AAAA"))).toMatchObject({
        status: 404,
        code: "peer_offline",
      });
      // a has now used its burst of 4: the next is refused, whatever it is.
      expect(await controlError(a.signal(b.key, "AAAA"))).toMatchObject({
        status: 429,
        code: "rate_limited",
      });
      // c heard nothing of all this.
      expect(sc.signals).toEqual([]);
    });

    it("stores connection logs of the reporter's own traffic, resolving both ends to nodes", async () => {
      const rt = await runtime();
      const key = await tagKey(rt, "tag:server");
      const a = new TestNode(rt);
      const b = new TestNode(rt);
      const c = new TestNode(rt);
      const ra = (await a.register(key, "a")).node;
      const rb = (await b.register(key, "b")).node;
      await c.register(key, "c");
      const start = "2030-01-02T03:04:05.000Z";
      const res = await a.connections({
        connections: [
          { direction: "out", proto: 6, src: "100.64.0.1:40000", dst: "100.64.0.2:22", start, txBytes: 1234 },
          {
            direction: "in",
            proto: 17,
            src: "[fd7a:115c:a1e0:0:0:0:0:2]:5000",
            dst: "[fd7a:115c:a1e0::1]:53",
            start,
            end: "2030-01-02T03:05:00.000Z",
          },
          { direction: "out", proto: 6, src: "100.64.0.1:40001", dst: "10.1.2.3:443", start },
        ],
      });
      expect(res).toEqual({ accepted: 3 });
      const rows = await rt.db.prisma.connectionLog.findMany({ orderBy: { dstPort: "asc" } });
      expect(rows.map((r) => [r.reporterId, r.srcIp, r.srcNodeId, r.dstIp, r.dstNodeId])).toEqual([
        [ra.id, "100.64.0.1", ra.id, "100.64.0.2", rb.id],
        [ra.id, "fd7a:115c:a1e0::2", rb.id, "fd7a:115c:a1e0::1", ra.id],
        [ra.id, "100.64.0.1", ra.id, "10.1.2.3", null],
      ]);
      expect(rows[0]!.txBytes).toBe(1234n);
      expect(rows[1]!.endedAt?.toISOString()).toBe("2030-01-02T03:05:00.000Z");

      // A record between two other nodes spoils the whole report: nothing stored.
      const foreign = await controlError(
        a.connections({
          connections: [
            { direction: "out", proto: 6, src: "100.64.0.1:1", dst: "100.64.0.2:2", start },
            { direction: "out", proto: 6, src: "100.64.0.2:1", dst: "100.64.0.3:2", start },
          ],
        }),
      );
      expect(foreign).toMatchObject({ status: 400, issues: [{ path: "connections.1" }] });
      for (const bad of ["not json", {}, { connections: [] }, { connections: [{ direction: "out" }] }]) {
        const text = typeof bad === "string" ? bad : JSON.stringify(bad);
        expect((await a.client.signedFetch("POST", "/api/v1/connections", text)).status).toBe(400);
      }
      expect(await rt.db.prisma.connectionLog.count()).toBe(3);
    });

    it("applies settings: DNS and relay map reach open streams, key expiry and approval apply to registrations", async () => {
      const rt = await runtime();
      const key = await tagKey(rt, "tag:server");
      const a = new TestNode(rt);
      const b = new TestNode(rt);
      await a.register(key, "alpha");
      await b.register(key, "beta");
      const sa = await open(a);
      expect(sa.map.dns).toMatchObject({ domain: "trellis.internal", nameservers: [] });
      expect(await rt.dnsDomain()).toBe("trellis.internal");

      await updateDnsSettings(rt, admin, { domain: "corp.example", nameservers: ["1.1.1.1"] });
      await sa.waitFor((s) => s.map.dns.domain === "corp.example", "the new DNS");
      expect(sa.map.dns).toEqual({ domain: "corp.example", nameservers: ["1.1.1.1"], searchDomains: [] });
      await sa.waitFor((s) => s.map.peers[0]!.dnsName === "beta.corp.example.", "the new names");
      expect(await rt.dnsDomain()).toBe("corp.example");
      await updateDnsSettings(rt, admin, { magicDns: false });
      await sa.waitFor((s) => s.map.dns.domain === "", "MagicDNS off");
      expect(sa.map.dns.nameservers).toEqual(["1.1.1.1"]);

      const relayMap = {
        regions: {
          "7": {
            regionId: 7,
            regionCode: "fra",
            regionName: "Frankfurt",
            nodes: [
              {
                name: "7a",
                regionId: 7,
                hostName: "derp.example",
                url: "wss://derp.example/derp",
                stunPort: 3478,
              },
            ],
          },
        },
      };
      await updateTailnetSettings(rt, admin, { relayMap });
      await sa.waitFor((s) => s.map.relayMap.regions["7"] !== undefined, "the relay map");
      expect(Object.keys(sa.map.relayMap.regions)).toEqual(["7"]);
      expect(rt.relayMap()).toEqual(relayMap);

      // Key expiry for new untagged nodes.
      const user = await rt.db.prisma.user.create({
        data: { email: "u@example.com", name: "u", role: "member" },
      });
      const userKey = await preAuthKey(rt, { userId: user.id });
      await updateTailnetSettings(rt, admin, { keyExpiryDays: 7 });
      const laptop = await new TestNode(rt).register(userKey, "laptop");
      const expiry = Date.parse(laptop.node.keyExpiry!) - Date.now();
      expect(expiry).toBeGreaterThan(7 * 86_400_000 - 60_000);
      expect(expiry).toBeLessThanOrEqual(7 * 86_400_000);
      expect(laptop.node.dnsName).toBe("laptop.corp.example.");
    });

    it("keeps settings for admins: scopes, partial updates, validation, audit", async () => {
      const rt = await runtime();
      expect(await getTailnetSettings(rt, admin)).toEqual({
        name: "My tailnet",
        nodeApproval: false,
        keyExpiryDays: 180,
        persistentBrowserNodes: false,
        relayMap: null,
      });
      expect(await getDnsSettings(rt, actor("auditor"))).toEqual({
        magicDns: true,
        domain: "trellis.internal",
        nameservers: [],
        searchDomains: [],
      });
      expect(await controlError(getTailnetSettings(rt, actor("member")))).toMatchObject({ status: 403 });
      expect(await controlError(updateDnsSettings(rt, actor("auditor"), {}))).toMatchObject({ status: 403 });
      expect(
        await controlError(updateTailnetSettings(rt, actor("admin", ["settings:read"]), { name: "x" })),
      ).toMatchObject({ status: 403 });

      const after = await updateTailnetSettings(rt, admin, { name: "Acme", nodeApproval: true });
      expect(after).toEqual({
        name: "Acme",
        nodeApproval: true,
        keyExpiryDays: 180,
        persistentBrowserNodes: false,
        relayMap: null,
      });
      for (const bad of [{ keyExpiryDays: 0 }, { colour: "red" }, { relayMap: { regions: {} } }, [1], null]) {
        expect(await controlError(updateTailnetSettings(rt, admin, bad))).toMatchObject({ status: 400 });
      }
      expect(await controlError(updateDnsSettings(rt, admin, { domain: "Not A Domain" }))).toMatchObject({
        status: 400,
      });
      expect(await getTailnetSettings(rt, admin)).toEqual(after);
      const audit = await rt.db.prisma.auditEvent.findMany({ where: { action: "settings.update" } });
      expect(audit).toHaveLength(1);
      expect(JSON.parse(audit[0]!.detail)).toMatchObject({
        before: { name: "My tailnet", nodeApproval: false },
        after: { name: "Acme", nodeApproval: true },
      });
      // An unchanged save writes nothing.
      await updateTailnetSettings(rt, admin, { name: "Acme" });
      expect(await rt.db.prisma.auditEvent.count({ where: { action: "settings.update" } })).toBe(1);
      // New registrations now wait for approval.
      const n = new TestNode(rt);
      expect((await n.register(await tagKey(rt, "tag:x"), "n")).node.authorized).toBe(false);
    });
  });
}

describe.skipIf(PROVIDERS.find((p) => p.provider === "postgresql")!.skip)(
  "node lifecycle across two replicas on one PostgreSQL database",
  () => {
    const dbs = testDatabases("postgresql");
    const runtimes: ControlRuntime[] = [];
    const streams: MapReader[] = [];
    const servers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      streams.splice(0).forEach((s) => s.close());
      for (const close of servers.splice(0)) await close();
      await Promise.all(runtimes.splice(0).map((r) => r.close()));
    });

    it("signals, logouts and settings cross replicas; a starting replica leaves others' nodes online", async () => {
      const url = dbs.url();
      const controlKey = generateKeyPair();
      const replica = async () => {
        const config = {
          ...loadConfig({ TRELLIS_PUBLIC_URL: "https://vpn.example.com" }, dataDir),
          databaseUrl: url,
        };
        const rt = await ControlRuntime.open(config, log, { controlKey, stream: { coalesceMs: 5 } });
        runtimes.push(rt);
        servers.push((await serveNodeApi(rt)).close);
        return rt;
      };
      const one = await replica();
      const two = await replica();
      const key = await preAuthKey(one, { tags: ["tag:server"], reusable: true });
      const a = new TestNode(one);
      const b = new TestNode(two);
      await a.register(key, "alpha");
      await b.register(key, "beta");
      const sb = await b.stream();
      streams.push(sb);
      await sb.step();

      // A third replica starting does not mark beta (streaming from two) offline.
      await replica();
      expect((await b.row()).online).toBe(true);

      // a, on replica one, signals b, streaming from replica two.
      expect(await a.signal(b.key, "aGVsbG8=")).toEqual({ status: "queued" });
      await sb.waitFor((s) => s.signals.length === 1, "the signal from the other replica");
      expect(sb.signals[0]).toEqual({ type: "signal", from: a.key, sealed: "aGVsbG8=" });

      // A DNS change saved through one reaches the stream on two.
      await updateDnsSettings(one, admin, { nameservers: ["9.9.9.9"] });
      await sb.waitFor((s) => s.map.dns.nameservers[0] === "9.9.9.9", "the DNS change");
      expect(await two.dnsDomain()).toBe("trellis.internal");

      // b logs out through replica one: its stream on two ends.
      await b.via(one).logout();
      expect(await sb.end()).toEqual({ type: "end", reason: "key_expired" });
    });
  },
);
