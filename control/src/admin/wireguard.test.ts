import { x25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import type { Database, Models } from "@trellis/db";
import { parseWgQuick, wgKeyText } from "@trellis/proto";
import { allocateAddresses } from "../addresses";
import { admittedNodeKeys } from "../nodes";
import { PolicyStore } from "../policy-store";
import { registerNode } from "../register";
import { PROVIDERS, testDatabases } from "../testing/db";
import { getMachine, listMachines, updateMachine } from "./machines";
import { plainPeersSeen } from "../plain-peers";
import {
  actorOf,
  adminContext,
  auditEvents,
  createNode,
  createUser,
  rejection,
  type TestAdminContext,
} from "./testing";
import { createWireGuardPeer, wireGuardPeerConfig } from "./wireguard";

const POLICY = (acls: unknown[]) =>
  JSON.stringify({ tagOwners: { "tag:gw": [], "tag:wg": [], "tag:other": [] }, acls });

/** A node as createNode makes it, with addresses from the registration counter (which createWireGuardPeer uses too). */
async function addressed(
  db: Database,
  node: Models.Node,
  data: Partial<Models.Node> = {},
): Promise<Models.Node> {
  const addrs = await db.prisma.$transaction((tx) => allocateAddresses(tx));
  return db.prisma.node.update({ where: { id: node.id }, data: { ...addrs, ...data } });
}

const newKey = () => wgKeyText(x25519.getPublicKey(x25519.utils.randomSecretKey()));

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`plain WireGuard peers on ${provider}`, () => {
    const dbs = testDatabases(provider);

    interface World {
      db: Database;
      ctx: TestAdminContext;
      admin: Models.User;
      alice: Models.User;
      gw: Models.Node;
    }
    async function world(acls: unknown[] = [{ action: "accept", src: ["*"], dst: ["*:*"] }]): Promise<World> {
      const db = await dbs.open();
      const ctx = adminContext(db);
      const admin = await createUser(db, "admin", "root@example.com");
      const alice = await createUser(db, "member", "alice@example.com");
      const gw0 = await createNode(db, "office-gw", {
        tags: ["tag:gw"],
        advertisedRoutes: ["10.1.0.0/24", "10.2.0.0/24", "0.0.0.0/0", "::/0"],
        approvedRoutes: ["10.1.0.0/24", "10.2.0.0/24", "0.0.0.0/0", "::/0"],
      });
      const gw = await addressed(db, gw0, {
        endpoints: JSON.stringify(["198.51.100.7:41641", "10.0.0.2:41641"]),
      });
      await new PolicyStore(db).save(POLICY(acls), `user:${admin.id}`, await ctx.topology());
      return { db, ctx, admin, alice, gw };
    }

    it("makes a machine from a public key, with an address and owner, in Machines, audited and announced", async () => {
      const { db, ctx, admin, gw } = await world();
      const publicKey = newKey();
      const m = await createWireGuardPeer(ctx, actorOf(admin), {
        name: "phone",
        gatewayId: gw.id,
        publicKey,
      });
      expect(m).toMatchObject({
        name: "phone",
        os: "WireGuard",
        user: { id: admin.id },
        tags: [],
        keyExpiry: null,
        authorized: true,
        wireguard: { gatewayId: gw.id },
      });
      expect(m.ipv4).toMatch(/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./);
      expect(m.nodeKey).toBe(`nodekey:${Buffer.from(publicKey, "base64").toString("hex")}`);
      expect((await getMachine(ctx, actorOf(admin), m.id)).wireguard).toEqual({ gatewayId: gw.id });
      expect(ctx.published).toContainEqual({ type: "nodes", ids: [m.id] });
      const [entry] = await auditEvents(db, "node.register");
      expect(entry!.detail).toMatchObject({ via: "wireguard", after: { name: "phone", gatewayId: gw.id } });

      // Tagged instead of owned.
      const t = await createWireGuardPeer(ctx, actorOf(admin), {
        name: "sensor",
        gatewayId: gw.id,
        publicKey: newKey(),
        tags: ["tag:wg"],
      });
      expect(t).toMatchObject({ user: null, tags: ["tag:wg"] });
      expect(t.ipv4).not.toBe(m.ipv4);
      // Untagged later, it is the admin's, and its key still does not expire (nothing would renew it).
      expect(await updateMachine(ctx, actorOf(admin), t.id, { tags: [] })).toMatchObject({
        user: { id: admin.id },
        tags: [],
        keyExpiry: null,
      });
    });

    it("refuses members, bad keys, taken keys and names, and gateways without a UDP endpoint, per field", async () => {
      const { db, ctx, admin, alice, gw } = await world();
      const actor = actorOf(admin);
      const member = await rejection(
        createWireGuardPeer(ctx, actorOf(alice), { name: "x", gatewayId: gw.id, publicKey: newKey() }),
      );
      expect(member.status).toBe(403);
      const badKey = await rejection(
        createWireGuardPeer(ctx, actor, { name: "x", gatewayId: gw.id, publicKey: "AAAA" }),
      );
      expect(badKey.status).toBe(400);
      expect(badKey.issues?.[0]?.path).toBe("publicKey");
      const zero = await rejection(
        createWireGuardPeer(ctx, actor, { name: "x", gatewayId: gw.id, publicKey: "A".repeat(43) + "=" }),
      );
      expect(zero.issues?.[0]).toMatchObject({
        path: "publicKey",
        message: expect.stringMatching(/small order/),
      });

      const browser = await addressed(db, await createNode(db, "browser", { userId: admin.id }));
      const noUdp = await rejection(
        createWireGuardPeer(ctx, actor, { name: "x", gatewayId: browser.id, publicKey: newKey() }),
      );
      expect(noUdp.issues?.[0]).toMatchObject({
        path: "gatewayId",
        message: expect.stringMatching(/UDP endpoint/),
      });
      const missing = await rejection(
        createWireGuardPeer(ctx, actor, { name: "x", gatewayId: "nope", publicKey: newKey() }),
      );
      expect(missing.issues?.[0]?.path).toBe("gatewayId");

      const publicKey = newKey();
      const first = await createWireGuardPeer(ctx, actor, { name: "phone", gatewayId: gw.id, publicKey });
      const sameKey = await rejection(
        createWireGuardPeer(ctx, actor, { name: "phone2", gatewayId: gw.id, publicKey }),
      );
      expect(sameKey).toMatchObject({ status: 409, issues: [{ path: "publicKey" }] });
      const sameName = await rejection(
        createWireGuardPeer(ctx, actor, { name: "phone", gatewayId: gw.id, publicKey: newKey() }),
      );
      expect(sameName).toMatchObject({ status: 409, issues: [{ path: "name" }] });
      const viaPeer = await rejection(
        createWireGuardPeer(ctx, actor, { name: "y", gatewayId: first.id, publicKey: newKey() }),
      );
      expect(viaPeer.issues?.[0]?.path).toBe("gatewayId");
      const undefinedTag = await rejection(
        createWireGuardPeer(ctx, actor, {
          name: "y",
          gatewayId: gw.id,
          publicKey: newKey(),
          tags: ["tag:nope"],
        }),
      );
      expect(undefinedTag.status).toBe(400);
      const both = await rejection(
        createWireGuardPeer(ctx, actor, {
          name: "y",
          gatewayId: gw.id,
          publicKey: newKey(),
          tags: ["tag:wg"],
          userId: alice.id,
        }),
      );
      expect(both.issues?.[0]?.path).toBe("userId");
      expect(await db.prisma.node.count({ where: { wireguardOnly: true } })).toBe(1);
    });

    it("keeps its key off the relay and out of node registration", async () => {
      const { ctx, admin, gw } = await world();
      const publicKey = newKey();
      const m = await createWireGuardPeer(ctx, actorOf(admin), {
        name: "phone",
        gatewayId: gw.id,
        publicKey,
      });
      expect(await admittedNodeKeys(ctx.db, [m.nodeKey, gw.nodeKey])).toEqual([false, true]);
      const err = await rejection(
        registerNode(
          ctx.db,
          m.nodeKey,
          { hostname: "phone", os: "linux", routableIPs: [] },
          {
            dnsDomain: "t",
            sessionUser: { userId: admin.id },
          },
        ),
      );
      expect(err).toMatchObject({ status: 403, code: "wireguard_peer" });
    });

    it("writes the wg-quick file: its addresses, the gateway's key and endpoint, the routes the policy opens", async () => {
      const { ctx, admin, alice, gw } = await world([
        { action: "accept", src: ["tag:wg"], dst: ["10.1.0.0/24:*", "tag:gw:22"] },
        { action: "accept", src: ["tag:other"], dst: ["10.2.0.0/24:*"] },
      ]);
      const publicKey = newKey();
      const m = await createWireGuardPeer(ctx, actorOf(admin), {
        name: "sensor",
        gatewayId: gw.id,
        publicKey,
        tags: ["tag:wg"],
      });
      const c = await wireGuardPeerConfig(ctx, actorOf(admin), m.id, {});
      const gwKey = Buffer.from(gw.nodeKey.slice("nodekey:".length), "hex").toString("base64");
      expect(c).toMatchObject({
        machineId: m.id,
        publicKey,
        addresses: [`${m.ipv4}/32`, `${m.ipv6}/128`],
        gateway: { id: gw.id, name: "office-gw", publicKey: gwKey, endpoint: "198.51.100.7:41641" },
        // 10.2.0.0/24 is for tag:other only, and the policy gives it no internet.
        allowedIPs: ["100.64.0.0/10", "fd7a:115c:a1e0::/48", "10.1.0.0/24"],
        exitRoutes: [],
        persistentKeepalive: 25,
      });
      // Asking for the gateway as its exit node says why not, on the field.
      const noExit = await rejection(wireGuardPeerConfig(ctx, actorOf(admin), m.id, { exitNode: "true" }));
      expect(noExit).toMatchObject({ status: 409 });
      expect(JSON.stringify(noExit.issues)).toContain("exitNode");
      expect(parseWgQuick(c.config)).toEqual({
        privateKey: null,
        addresses: c.addresses,
        peers: [
          {
            publicKey: gwKey,
            endpoint: "198.51.100.7:41641",
            allowedIPs: c.allowedIPs,
            persistentKeepalive: 25,
          },
        ],
      });
      const other = await wireGuardPeerConfig(ctx, actorOf(admin), m.id, { endpoint: "10.0.0.2:41641" });
      expect(other.gateway.endpoint).toBe("10.0.0.2:41641");
      const bad = await rejection(
        wireGuardPeerConfig(ctx, actorOf(admin), m.id, { endpoint: "x\nPostUp=id" }),
      );
      expect(bad.status).toBe(400);
      expect(
        (await rejection(wireGuardPeerConfig(ctx, actorOf(admin), m.id, { exitNode: "yes" }))).status,
      ).toBe(400);
      // Members see only their own machines' files; a Trellis node has none.
      expect((await rejection(wireGuardPeerConfig(ctx, actorOf(alice), m.id, {}))).status).toBe(404);
      expect((await rejection(wireGuardPeerConfig(ctx, actorOf(admin), gw.id, {}))).status).toBe(404);
    });

    it("is online while its gateway reports recent handshakes; no other node can say so", async () => {
      const { db, ctx, admin, gw } = await world();
      const m = await createWireGuardPeer(ctx, actorOf(admin), {
        name: "phone",
        gatewayId: gw.id,
        publicKey: newKey(),
        tags: ["tag:wg"],
      });
      const other = await addressed(db, await createNode(db, "other-gw", { tags: ["tag:gw"] }));
      const info = () => getMachine(ctx, actorOf(admin), m.id);
      expect(await info()).toMatchObject({ online: false, lastSeen: null });

      const now = new Date();
      const at = new Date(now.getTime() - 30_000);
      const report = (from: string, lastHandshake: Date, key = m.nodeKey) =>
        plainPeersSeen(db, from, { peers: [{ key, lastHandshake: lastHandshake.toISOString() }] }, now);
      // Another gateway, a key that is no plain peer, an unknown key: ignored.
      expect(await report(other.id, at)).toEqual([]);
      expect(await report(gw.id, at, gw.nodeKey)).toEqual([]);
      expect(await report(gw.id, at, `nodekey:${"ab".repeat(32)}`)).toEqual([]);
      expect(await info()).toMatchObject({ online: false, lastSeen: null });
      // Its own gateway: seen, and online.
      expect(await report(gw.id, at)).toEqual([m.id]);
      expect(await info()).toMatchObject({ online: true, lastSeen: at.toISOString() });
      const online = await listMachines(ctx, actorOf(admin), { status: "online" });
      expect(online.items.map((x) => x.name)).toContain("phone");
      const offline = await listMachines(ctx, actorOf(admin), { status: "offline" });
      expect(offline.items.map((x) => x.name)).not.toContain("phone");
      // Never back in time; a clock ahead counts as now.
      expect(await report(gw.id, new Date(at.getTime() - 60_000))).toEqual([]);
      expect(await report(gw.id, new Date(now.getTime() + 3_600_000))).toEqual([m.id]);
      expect((await info()).lastSeen).toBe(now.toISOString());
      // Bad reports are refused whole, per field.
      const bad = await rejection(
        plainPeersSeen(db, gw.id, { peers: [{ key: "x", lastHandshake: "then" }] }),
      );
      expect(bad.status).toBe(400);
      // Minutes later with no news it is offline again, and says when it was last seen.
      await db.prisma.node.update({
        where: { id: m.id },
        data: { lastSeen: new Date(Date.now() - 10 * 60_000) },
      });
      expect(await info()).toMatchObject({ online: false });
      expect(
        (await listMachines(ctx, actorOf(admin), { status: "offline" })).items.map((x) => x.name),
      ).toContain("phone");
    });

    it("offers the gateway as an exit node when the policy lets the peer reach the internet, and routes everything there on request", async () => {
      const { ctx, admin, gw } = await world([
        { action: "accept", src: ["tag:wg"], dst: ["autogroup:internet:*", "tag:gw:*"] },
      ]);
      const m = await createWireGuardPeer(ctx, actorOf(admin), {
        name: "roadwarrior",
        gatewayId: gw.id,
        publicKey: newKey(),
        tags: ["tag:wg"],
      });
      const plain = await wireGuardPeerConfig(ctx, actorOf(admin), m.id, {});
      expect(plain.exitRoutes).toEqual(["0.0.0.0/0", "::/0"]);
      expect(plain.allowedIPs).toEqual(["100.64.0.0/10", "fd7a:115c:a1e0::/48"]);
      const exit = await wireGuardPeerConfig(ctx, actorOf(admin), m.id, { exitNode: "true" });
      expect(exit.allowedIPs).toEqual(["0.0.0.0/0", "::/0", "100.64.0.0/10", "fd7a:115c:a1e0::/48"]);
      expect(parseWgQuick(exit.config).peers[0]!.allowedIPs).toEqual(exit.allowedIPs);
      expect(
        (await wireGuardPeerConfig(ctx, actorOf(admin), m.id, { exitNode: "false" })).allowedIPs,
      ).toEqual(plain.allowedIPs);
    });
  });
}
