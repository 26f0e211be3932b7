import { describe, expect, it } from "vitest";
import type { Database } from "@trellis/db";
import { encodeKey } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { ControlError } from "./errors";
import { createPreAuthKey, listPreAuthKeys, revokePreAuthKey } from "./preauth";
import { dnsLabel, registerNode } from "./register";
import { PROVIDERS, testDatabases } from "./testing/db";

const newKey = () => encodeKey("nodekey", generateKeyPair().publicKey);
const opts = { dnsDomain: "trellis.internal" };

async function controlError(p: Promise<unknown>): Promise<ControlError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(ControlError.is(err)).toBe(true);
  return err as ControlError;
}

async function admin(db: Database) {
  return db.prisma.user.create({ data: { email: "ada@example.com", name: "Ada", role: "admin" } });
}

describe("dnsLabel", () => {
  it.each([
    ["Web Server #1", "web-server-1"],
    ["--x--", "x"],
    ["ÄÖ", "ao"],
    ["!!!", "node"],
    ["a".repeat(80), "a".repeat(63)],
  ])("%s → %s", (h, l) => expect(dnsLabel(h)).toBe(l));
});

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`pre-auth keys and registration on ${provider}`, () => {
    const dbs = testDatabases(provider);

    it("creates a key shown once, stores only its hash, lists and revokes it", async () => {
      const db = await dbs.open();
      const { key, info } = await createPreAuthKey(db, { tags: ["tag:server"], reusable: true }, "system");
      expect(key).toMatch(/^trellis-auth-[0-9a-f]{12}-[\w-]{43}$/);
      expect(info).toMatchObject({ tags: ["tag:server"], reusable: true, usedCount: 0, revokedAt: null });
      expect(key.startsWith(info.prefix + "-")).toBe(true);
      const rows = await db.prisma.preAuthKey.findMany();
      expect(JSON.stringify(rows)).not.toContain(key.slice(-43));
      expect(await listPreAuthKeys(db)).toEqual([info]);
      const revoked = await revokePreAuthKey(db, info.id, "system");
      expect(revoked.revokedAt).not.toBeNull();
      const err = await controlError(registerNode(db, newKey(), { preAuthKey: key, hostname: "a" }, opts));
      expect(err).toMatchObject({ status: 401, code: "invalid_preauth_key", message: /revoked/ });
      expect(await db.prisma.auditEvent.count({ where: { action: { startsWith: "preauthkey." } } })).toBe(2);
    });

    it("refuses bad key requests", async () => {
      const db = await dbs.open();
      expect(await controlError(createPreAuthKey(db, {}, "system"))).toMatchObject({ status: 400 });
      expect(await controlError(createPreAuthKey(db, { tags: ["server"] }, "system"))).toMatchObject({
        status: 400,
      });
      expect(await controlError(createPreAuthKey(db, { userId: "nobody" }, "system"))).toMatchObject({
        code: "unknown_user",
      });
    });

    it("registers a browser's key for the logged-in user without a pre-auth key", async () => {
      const db = await dbs.open();
      const ada = await admin(db);
      const nodeKey = newKey();
      const err = await controlError(registerNode(db, nodeKey, { hostname: "tab", os: "browser" }, opts));
      expect(err).toMatchObject({ status: 401, code: "invalid_preauth_key" });
      expect(await db.prisma.node.count()).toBe(0);
      const { response, node } = await registerNode(
        db,
        nodeKey,
        { hostname: "tab", os: "browser" },
        { ...opts, keyExpiryDays: 7, sessionUser: { userId: ada.id } },
      );
      expect(response.created).toBe(true);
      // Ephemeral: the tab's machine goes when the browser does (unless the tailnet keeps browsers).
      expect(node).toMatchObject({ userId: ada.id, tags: "[]", ephemeral: true, preAuthKeyId: null });
      expect(node.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 7 * 24 * 3600_000 - 60_000);
      const ev = await db.prisma.auditEvent.findFirstOrThrow({ where: { action: "node.register" } });
      expect(ev.actor).toBe(`user:${ada.id}`);
      expect(JSON.parse(ev.detail)).toMatchObject({ via: "session" });
      // The same key again (a reload of the tab) is the same node.
      const again = await registerNode(db, nodeKey, { hostname: "tab", os: "browser" }, opts);
      expect(again.response).toMatchObject({ created: false, node: { addresses: response.node.addresses } });
      const kept = await registerNode(
        db,
        newKey(),
        { hostname: "tab", os: "browser" },
        { ...opts, sessionUser: { userId: ada.id }, persistentBrowserNodes: true },
      );
      expect(kept.node).toMatchObject({ userId: ada.id, ephemeral: false });
    });

    it("refuses a session registration of another user's machine key, live or expired", async () => {
      const db = await dbs.open();
      const ada = await admin(db);
      const bob = await db.prisma.user.create({
        data: { email: "bob@example.com", name: "Bob", role: "member" },
      });
      const nodeKey = newKey();
      const tab = { hostname: "tab", os: "browser" };
      const now = new Date();
      await registerNode(db, nodeKey, tab, {
        ...opts,
        now,
        keyExpiryDays: 1,
        sessionUser: { userId: ada.id },
      });
      const live = await controlError(
        registerNode(db, nodeKey, tab, { ...opts, sessionUser: { userId: bob.id } }),
      );
      expect(live).toMatchObject({ status: 403, code: "node_key_owned" });
      // Expired, it would otherwise be renewed for the new session's user, taking Ada's name and addresses.
      const later = new Date(now.getTime() + 2 * 86_400_000);
      const expired = await controlError(
        registerNode(db, nodeKey, tab, { ...opts, now: later, sessionUser: { userId: bob.id } }),
      );
      expect(expired).toMatchObject({ status: 403, code: "node_key_owned" });
      expect((await db.prisma.node.findUniqueOrThrow({ where: { nodeKey } })).userId).toBe(ada.id);
      // Ada herself renews it.
      const renewed = await registerNode(db, nodeKey, tab, {
        ...opts,
        now: later,
        sessionUser: { userId: ada.id },
      });
      expect(renewed.node.userId).toBe(ada.id);
    });

    it("registers a tagged node with addresses, a DNS name and no key expiry", async () => {
      const db = await dbs.open();
      const { key } = await createPreAuthKey(
        db,
        { tags: ["tag:gw", "tag:server"], ephemeral: true },
        "system",
      );
      const nodeKey = newKey();
      const { response } = await registerNode(
        db,
        nodeKey,
        { preAuthKey: key, hostname: "Gateway One", os: "linux", routableIPs: ["10.1.0.0/16", "10.0.0.1/8"] },
        opts,
      );
      expect(response).toEqual({
        created: true,
        node: {
          id: expect.any(String),
          key: nodeKey,
          name: "gateway-one",
          dnsName: "gateway-one.trellis.internal.",
          addresses: ["100.64.0.1/32", "fd7a:115c:a1e0::1/128"],
          tags: ["tag:gw", "tag:server"],
          user: null,
          ephemeral: true,
          keyExpiry: null,
          authorized: true,
        },
      });
      const row = await db.prisma.node.findUniqueOrThrow({ where: { nodeKey } });
      expect(JSON.parse(row.advertisedRoutes)).toEqual(["10.0.0.0/8", "10.1.0.0/16"]);
    });

    it("gives an untagged key's nodes to its user, with a 180-day key expiry", async () => {
      const db = await dbs.open();
      const user = await admin(db);
      const { key } = await createPreAuthKey(db, { userId: user.id }, `user:${user.id}`);
      const now = new Date("2026-01-01T00:00:00Z");
      const { response } = await registerNode(
        db,
        newKey(),
        { preAuthKey: key, hostname: "laptop" },
        { ...opts, now },
      );
      expect(response.node).toMatchObject({ user: user.id, tags: [], keyExpiry: "2026-06-30T00:00:00.000Z" });
    });

    it("keeps identity and addresses on re-registration without using the key again", async () => {
      const db = await dbs.open();
      const { key } = await createPreAuthKey(db, { tags: ["tag:server"] }, "system");
      const nodeKey = newKey();
      const first = await registerNode(db, nodeKey, { preAuthKey: key, hostname: "srv" }, opts);
      const again = await registerNode(
        db,
        nodeKey,
        { preAuthKey: key, hostname: "srv-renamed", os: "linux" },
        opts,
      );
      expect(again.response.created).toBe(false);
      expect(again.response.node).toEqual(first.response.node);
      expect(again.node.hostname).toBe("srv-renamed");
      expect((await listPreAuthKeys(db))[0]!.usedCount).toBe(1);
      // The single-use key is spent for any other node.
      const err = await controlError(registerNode(db, newKey(), { preAuthKey: key, hostname: "b" }, opts));
      expect(err.message).toMatch(/already used/);
    });

    it("lets a single-use key used twice concurrently register exactly one node", async () => {
      const db = await dbs.open();
      const { key } = await createPreAuthKey(db, { tags: ["tag:server"] }, "system");
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) =>
          registerNode(db, newKey(), { preAuthKey: key, hostname: `n${i}` }, opts),
        ),
      );
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of results) {
        if (r.status === "rejected")
          expect(r.reason).toMatchObject({ status: 401, code: "invalid_preauth_key" });
      }
      expect(await db.prisma.node.count()).toBe(1);
      expect((await listPreAuthKeys(db))[0]!.usedCount).toBe(1);
    });

    it("allocates distinct addresses and names under concurrent registration, never reusing one", async () => {
      const db = await dbs.open();
      const { key } = await createPreAuthKey(db, { tags: ["tag:server"], reusable: true }, "system");
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          registerNode(db, newKey(), { preAuthKey: key, hostname: "web" }, opts),
        ),
      );
      const v4 = results.map((r) => r.node.ipv4);
      const names = results.map((r) => r.node.name);
      expect(new Set(v4).size).toBe(20);
      expect(new Set(names).size).toBe(20);
      expect(names).toContain("web");
      expect(names).toContain("web-20");
      // Deleting a node does not free its address for the next one.
      await db.prisma.node.delete({ where: { id: results[0]!.node.id } });
      const next = await registerNode(db, newKey(), { preAuthKey: key, hostname: "web" }, opts);
      expect(next.node.ipv4).toBe("100.64.0.21");
      expect((await listPreAuthKeys(db))[0]!.usedCount).toBe(21);
    });

    it("suffixes a taken name, also when other names only share its prefix or it is cut to fit", async () => {
      const db = await dbs.open();
      const { key } = await createPreAuthKey(db, { tags: ["tag:server"], reusable: true }, "system");
      const reg = async (hostname: string) =>
        (await registerNode(db, newKey(), { preAuthKey: key, hostname }, opts)).node.name;
      expect(await reg("node-1")).toBe("node-1");
      expect(await reg("node-10")).toBe("node-10");
      expect(await reg("node-1")).toBe("node-1-2");
      expect(await reg("node-1")).toBe("node-1-3");
      const long = "a".repeat(63);
      expect(await reg(long)).toBe("a".repeat(63));
      expect(await reg(long)).toBe("a".repeat(61) + "-2");
      expect(await reg(long)).toBe("a".repeat(61) + "-3");
    });

    it("refuses expired, unknown and malformed keys and bad bodies without changing anything", async () => {
      const db = await dbs.open();
      const now = new Date();
      const { key } = await createPreAuthKey(
        db,
        { tags: ["tag:server"], expiresInSeconds: 60 },
        "system",
        new Date(now.getTime() - 120_000),
      );
      const later = { ...opts, now };
      expect(
        await controlError(registerNode(db, newKey(), { preAuthKey: key, hostname: "a" }, later)),
      ).toMatchObject({
        status: 401,
        message: /expired/,
      });
      const forged = key.slice(0, -4) + "AAAA";
      expect(
        await controlError(registerNode(db, newKey(), { preAuthKey: forged, hostname: "a" }, later)),
      ).toMatchObject({
        status: 401,
        message: /not recognised/,
      });
      // A new key without a pre-auth key (only restarts and rotations need none).
      expect(await controlError(registerNode(db, newKey(), { hostname: "a" }, later))).toMatchObject({
        status: 401,
        code: "invalid_preauth_key",
      });
      for (const body of [
        null,
        { preAuthKey: "short", hostname: "a" },
        { preAuthKey: key, hostname: "" },
        { preAuthKey: key, hostname: "a", routableIPs: ["300.0.0.0/8"] },
        { preAuthKey: key, hostname: "a", routableIPs: ["100.64.0.0/24"] },
      ]) {
        const err = await controlError(registerNode(db, newKey(), body, later));
        expect(err).toMatchObject({ status: 400, code: "invalid_request" });
        expect(err.issues?.length).toBeGreaterThan(0);
      }
      expect(await db.prisma.node.count()).toBe(0);
      expect((await listPreAuthKeys(db))[0]!.usedCount).toBe(0);
    });

    it("renews an expired node with a new key, keeping its addresses", async () => {
      const db = await dbs.open();
      const user = await admin(db);
      const k1 = (await createPreAuthKey(db, { userId: user.id }, `user:${user.id}`)).key;
      const nodeKey = newKey();
      const first = await registerNode(db, nodeKey, { preAuthKey: k1, hostname: "laptop" }, opts);
      await db.prisma.node.update({ where: { nodeKey }, data: { expiresAt: new Date(Date.now() - 1000) } });
      const k2 = (await createPreAuthKey(db, { tags: ["tag:server"] }, `user:${user.id}`)).key;
      const renewed = await registerNode(db, nodeKey, { preAuthKey: k2, hostname: "laptop" }, opts);
      expect(renewed.response.created).toBe(false);
      expect(renewed.response.node).toMatchObject({
        id: first.response.node.id,
        addresses: first.response.node.addresses,
        tags: ["tag:server"],
        user: null,
        keyExpiry: null,
      });
    });
  });
}
