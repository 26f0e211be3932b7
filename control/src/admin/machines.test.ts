import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { Database, Models } from "@trellis/db";
import type { MachineInfo } from "@trellis/proto";
import { createKey } from "./keys";
import { PolicyStore } from "../policy-store";
import { createPreAuthKey } from "../preauth";
import { NODE_KEY_TTL_MS, registerNode } from "../register";
import { updateTailnetSettings } from "../settings";
import { PROVIDERS, testDatabases } from "../testing/db";
import {
  authorizeMachine,
  expireMachineKey,
  getMachine,
  listMachines,
  removeMachine,
  tagChoices,
  setMachineRoutes,
  updateMachine,
} from "./machines";
import {
  actorOf,
  adminContext,
  auditEvents,
  createNode,
  createUser,
  rejection,
  TEST_DOMAIN,
  type TestAdminContext,
} from "./testing";

const DAY = 24 * 3600 * 1000;

const TAG_POLICY = JSON.stringify({
  groups: { "group:eng": ["alice@example.com"] },
  tagOwners: {
    "tag:web": ["group:eng"],
    "tag:ci": ["autogroup:member"],
    "tag:db": ["autogroup:admin"],
  },
  acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }],
});

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`admin machines on ${provider}`, () => {
    const dbs = testDatabases(provider);

    interface World {
      db: Database;
      ctx: TestAdminContext;
      admin: Models.User;
      alice: Models.User;
      bob: Models.User;
      auditor: Models.User;
    }
    async function world(): Promise<World> {
      const db = await dbs.open();
      const ctx = adminContext(db);
      return {
        db,
        ctx,
        admin: await createUser(db, "admin", "root@example.com"),
        alice: await createUser(db, "member", "alice@example.com"),
        bob: await createUser(db, "member", "Bob@Example.com"),
        auditor: await createUser(db, "auditor", "audit@example.com"),
      };
    }

    describe("listMachines", () => {
      it("pages through every machine in name order without repeats", async () => {
        const { db, ctx, admin, alice } = await world();
        for (const name of ["echo", "alpha", "delta", "charlie", "bravo"])
          await createNode(db, name, { userId: alice.id });
        const actor = actorOf(admin);
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await listMachines(ctx, actor, { limit: "2", ...(cursor ? { cursor } : {}) });
          expect(page.total).toBe(5);
          expect(page.items.length).toBeLessThanOrEqual(2);
          seen.push(...page.items.map((m) => m.name));
          cursor = page.nextCursor ?? undefined;
          pages++;
        } while (cursor);
        expect(pages).toBe(3);
        expect(seen).toEqual(["alpha", "bravo", "charlie", "delta", "echo"]);
      });

      it("shows members only their own machines, auditors everything", async () => {
        const { db, ctx, alice, bob, auditor } = await world();
        await createNode(db, "alice-laptop", { userId: alice.id });
        await createNode(db, "bob-laptop", { userId: bob.id });
        await createNode(db, "web", { tags: ["tag:web"] });
        const mine = await listMachines(ctx, actorOf(alice), {});
        expect(mine.items.map((m) => m.name)).toEqual(["alice-laptop"]);
        expect(mine.total).toBe(1);
        // Asking for someone else's machines by userId does not widen the view.
        const theirs = await listMachines(ctx, actorOf(alice), { userId: bob.id });
        expect(theirs).toEqual({ items: [], nextCursor: null, total: 0 });
        const all = await listMachines(ctx, actorOf(auditor), {});
        expect(all.items.map((m) => m.name)).toEqual(["alice-laptop", "bob-laptop", "web"]);
      });

      it("filters by status, tag, owner and text", async () => {
        const { db, ctx, admin, alice, bob } = await world();
        await createNode(db, "pending-one", { userId: alice.id, authorized: false });
        await createNode(db, "old-key", { userId: alice.id, expiresAt: new Date(Date.now() - 1000) });
        await createNode(db, "live", { userId: bob.id, online: true });
        await createNode(db, "web-1", { tags: ["tag:web", "tag:prod"] });
        const actor = actorOf(admin);
        const names = async (query: Record<string, string>) =>
          (await listMachines(ctx, actor, query)).items.map((m) => m.name);
        expect(await names({ status: "pending" })).toEqual(["pending-one"]);
        expect(await names({ status: "expired" })).toEqual(["old-key"]);
        expect(await names({ status: "online" })).toEqual(["live"]);
        expect(await names({ status: "offline" })).toEqual(["old-key", "pending-one", "web-1"]);
        expect(await names({ tag: "tag:prod" })).toEqual(["web-1"]);
        expect(await names({ userId: alice.id })).toEqual(["old-key", "pending-one"]);
        // Owner email, case-insensitively, and addresses.
        expect(await names({ q: "bob@example" })).toEqual(["live"]);
        const live = (await listMachines(ctx, actor, { q: "live" })).items[0]!;
        expect(await names({ q: live.ipv4! })).toEqual(["live"]);
        const filtered = await listMachines(ctx, actor, { userId: alice.id, limit: "1" });
        expect(filtered.total).toBe(2);
        expect(filtered.nextCursor).not.toBeNull();
      });

      it("describes a machine fully", async () => {
        const { db, ctx, admin, alice } = await world();
        const node = await createNode(db, "router", {
          userId: alice.id,
          advertisedRoutes: ["0.0.0.0/0", "::/0", "10.0.0.0/24"],
          approvedRoutes: ["10.0.0.0/24"],
        });
        const m = await getMachine(ctx, actorOf(admin), node.id);
        expect(m).toMatchObject({
          id: node.id,
          name: "router",
          dnsName: `router.${TEST_DOMAIN}`,
          ipv4: node.ipv4,
          user: { id: alice.id, email: "alice@example.com", name: "alice" },
          tags: [],
          expired: false,
          authorized: true,
          exitNodeAdvertised: true,
          exitNodeApproved: false,
          approvedRoutes: ["10.0.0.0/24"],
        } satisfies Partial<MachineInfo>);
      });

      it("refuses bad queries and foreign cursors with 400", async () => {
        const { ctx, admin, alice } = await world();
        const e1 = await rejection(listMachines(ctx, actorOf(admin), { status: "asleep", limit: "0" }));
        expect(e1.status).toBe(400);
        expect(e1.issues?.map((i) => i.path).sort()).toEqual(["limit", "status"]);
        const e2 = await rejection(listMachines(ctx, actorOf(admin), { cursor: "not-a-cursor" }));
        expect(e2).toMatchObject({ status: 400, code: "invalid_request" });
        // A member without machines:read (an API token with other scopes) is refused.
        const e3 = await rejection(listMachines(ctx, actorOf(alice, ["machines:write"]), {}));
        expect(e3.status).toBe(403);
        expect(e3.message).toMatch(/token lacks the machines:read scope/);
      });
    });

    describe("getMachine", () => {
      it("hides other users' machines from members as 404", async () => {
        const { db, ctx, alice, bob } = await world();
        const own = await createNode(db, "a1", { userId: alice.id });
        const other = await createNode(db, "b1", { userId: bob.id });
        const tagged = await createNode(db, "srv", { tags: ["tag:web"] });
        expect((await getMachine(ctx, actorOf(alice), own.id)).name).toBe("a1");
        for (const id of [other.id, tagged.id, "no-such-id"]) {
          const err = await rejection(getMachine(ctx, actorOf(alice), id));
          expect(err).toMatchObject({ status: 404, code: "not_found" });
        }
      });
    });

    describe("updateMachine", () => {
      it("renames, audits before/after and publishes", async () => {
        const { db, ctx, alice } = await world();
        const node = await createNode(db, "old-name", { userId: alice.id });
        const m = await updateMachine(ctx, actorOf(alice), node.id, { name: "new-name" });
        expect(m.name).toBe("new-name");
        expect(m.dnsName).toBe(`new-name.${TEST_DOMAIN}`);
        const [ev] = await auditEvents(db, "node.rename");
        expect(ev).toMatchObject({
          actor: `user:${alice.id}`,
          target: `node:${node.id}`,
          detail: { before: { name: "old-name" }, after: { name: "new-name" } },
        });
        expect(ctx.published).toEqual([{ type: "nodes", ids: [node.id] }]);
      });

      it("refuses a taken name with 409 and an invalid one with 400, changing nothing", async () => {
        const { db, ctx, admin, alice } = await world();
        const node = await createNode(db, "one", { userId: alice.id });
        await createNode(db, "two", { userId: alice.id });
        const conflict = await rejection(updateMachine(ctx, actorOf(admin), node.id, { name: "two" }));
        expect(conflict).toMatchObject({ status: 409, code: "conflict" });
        const invalid = await rejection(
          updateMachine(ctx, actorOf(admin), node.id, { name: "Not_A_Label", color: "red" }),
        );
        expect(invalid.status).toBe(400);
        expect(invalid.issues?.map((i) => i.path).sort()).toEqual(["(body)", "name"]);
        expect((await db.prisma.node.findUniqueOrThrow({ where: { id: node.id } })).name).toBe("one");
        expect(await db.prisma.auditEvent.count()).toBe(0);
        expect(ctx.published).toEqual([]);
      });

      it("lets auditors change nothing and members change only their own machines", async () => {
        const { db, ctx, alice, bob, auditor } = await world();
        const bobs = await createNode(db, "bobs", { userId: bob.id });
        expect((await rejection(updateMachine(ctx, actorOf(auditor), bobs.id, { name: "x" }))).status).toBe(
          403,
        );
        expect((await rejection(updateMachine(ctx, actorOf(alice), bobs.id, { name: "x" }))).status).toBe(
          404,
        );
        expect((await db.prisma.node.findUniqueOrThrow({ where: { id: bobs.id } })).name).toBe("bobs");
      });

      it("holds pre-auth keys to the same tag rule as machines: only tags the policy defines", async () => {
        const { db, ctx, admin } = await world();
        await new PolicyStore(db).save(TAG_POLICY, `user:${admin.id}`, await ctx.topology());
        const bad = await rejection(
          createKey(ctx, actorOf(admin), { tags: ["tag:web", "tag:undeclared"], expiresInSeconds: 3600 }),
        );
        expect(bad.status).toBe(400);
        expect(bad.issues).toEqual([
          { path: "tags.1", message: "tag:undeclared is not defined in the policy's tagOwners" },
        ]);
        expect(await db.prisma.preAuthKey.count()).toBe(0);
        const ok = await createKey(ctx, actorOf(admin), { tags: ["tag:web"], expiresInSeconds: 3600 });
        expect(ok.info.tags).toEqual(["tag:web"]);
      });

      it("applies tags per tagOwners: tagging removes the owner and key expiry", async () => {
        const { db, ctx, admin, alice, bob } = await world();
        await new PolicyStore(db).save(TAG_POLICY, `user:${admin.id}`, await ctx.topology());
        const a = await createNode(db, "alice-srv", { userId: alice.id });
        const b = await createNode(db, "bob-srv", { userId: bob.id });

        // alice is in group:eng, which owns tag:web; everyone owns tag:ci.
        const tagged = await updateMachine(ctx, actorOf(alice), a.id, {
          tags: ["tag:web", "tag:ci", "tag:web"],
        });
        expect(tagged).toMatchObject({ tags: ["tag:ci", "tag:web"], user: null, keyExpiry: null });
        const [ev] = await auditEvents(db, "node.tags");
        expect(ev!.detail).toMatchObject({
          before: { tags: [], userId: alice.id },
          after: { tags: ["tag:ci", "tag:web"], userId: null, keyExpiry: null },
        });
        // The machine is no longer alice's: she cannot see it any more.
        expect((await rejection(getMachine(ctx, actorOf(alice), a.id))).status).toBe(404);

        // bob is not in group:eng; tag:db is for admins; tag:nope is not defined at all.
        const notOwner = await rejection(updateMachine(ctx, actorOf(bob), b.id, { tags: ["tag:web"] }));
        expect(notOwner.status).toBe(403);
        expect(notOwner.message).toMatch(/tag:web/);
        expect((await rejection(updateMachine(ctx, actorOf(bob), b.id, { tags: ["tag:db"] }))).status).toBe(
          403,
        );
        const undef = await rejection(
          updateMachine(ctx, actorOf(admin), b.id, { tags: ["tag:ci", "tag:nope"] }),
        );
        expect(undef.status).toBe(400);
        expect(undef.issues).toEqual([{ path: "tags.1", message: expect.stringMatching(/tag:nope/) }]);
        expect(JSON.parse((await db.prisma.node.findUniqueOrThrow({ where: { id: b.id } })).tags)).toEqual(
          [],
        );

        // An identity provider group counts as the policy group of that name.
        await db.prisma.user.update({ where: { id: bob.id }, data: { groups: JSON.stringify(["eng"]) } });
        expect((await updateMachine(ctx, actorOf(bob), b.id, { tags: ["tag:web"] })).tags).toEqual([
          "tag:web",
        ]);

        // Admins may set any defined tag; removing every tag makes the admin the owner.
        expect((await updateMachine(ctx, actorOf(admin), a.id, { tags: ["tag:db"] })).tags).toEqual([
          "tag:db",
        ]);
        const untagged = await updateMachine(ctx, actorOf(admin), a.id, { tags: [] });
        expect(untagged.user?.id).toBe(admin.id);
        expect(Date.parse(untagged.keyExpiry!)).toBeGreaterThan(Date.now() + NODE_KEY_TTL_MS - 60_000);
      });

      it("offers each caller the tags they may set: all defined ones to admins, the owned ones to others", async () => {
        const { db, ctx, admin, alice, bob } = await world();
        expect(await tagChoices(ctx, actorOf(alice))).toEqual([]);
        await new PolicyStore(db).save(TAG_POLICY, `user:${admin.id}`, await ctx.topology());
        expect(await tagChoices(ctx, actorOf(admin))).toEqual(["tag:ci", "tag:db", "tag:web"]);
        expect(await tagChoices(ctx, actorOf(alice))).toEqual(["tag:ci", "tag:web"]);
        expect(await tagChoices(ctx, actorOf(bob))).toEqual(["tag:ci"]);
        // What is offered is exactly what is accepted.
        const n = await createNode(db, "bob-n", { userId: bob.id });
        expect(
          (await updateMachine(ctx, actorOf(bob), n.id, { tags: await tagChoices(ctx, actorOf(bob)) })).tags,
        ).toEqual(["tag:ci"]);
      });

      it("refuses every tag while the policy defines none", async () => {
        const { db, ctx, admin, alice } = await world();
        const node = await createNode(db, "n", { userId: alice.id });
        const err = await rejection(updateMachine(ctx, actorOf(admin), node.id, { tags: ["tag:web"] }));
        expect(err.status).toBe(400);
        expect(err.message).toMatch(/not defined in the policy's tagOwners/);
      });

      it("lets admins, not members, disable and re-enable key expiry", async () => {
        const { db, ctx, admin, alice } = await world();
        const node = await createNode(db, "n", { userId: alice.id, expiresAt: new Date(Date.now() + DAY) });
        const denied = await rejection(
          updateMachine(ctx, actorOf(alice), node.id, { keyExpiryDisabled: true }),
        );
        expect(denied.status).toBe(403);
        const off = await updateMachine(ctx, actorOf(admin), node.id, { keyExpiryDisabled: true });
        expect(off.keyExpiry).toBeNull();
        const on = await updateMachine(ctx, actorOf(admin), node.id, { keyExpiryDisabled: false });
        const expiry = Date.parse(on.keyExpiry!);
        expect(expiry).toBeGreaterThan(Date.now() + NODE_KEY_TTL_MS - 60_000);
        expect(expiry).toBeLessThanOrEqual(Date.now() + NODE_KEY_TTL_MS);
        // Both changes can fall in the same millisecond, so their order in the log is not asserted.
        const events = await auditEvents(db, "node.key_expiry");
        const after = events.map((e) => (e.detail.after as { keyExpiry: unknown }).keyExpiry);
        expect(after).toHaveLength(2);
        expect(after).toEqual(expect.arrayContaining([null, on.keyExpiry]));
      });
      it("re-enables key expiry with the tailnet's default key lifetime", async () => {
        const { db, ctx, admin, alice } = await world();
        await updateTailnetSettings(ctx, actorOf(admin), { keyExpiryDays: 30 });
        const node = await createNode(db, "n", { userId: alice.id, expiresAt: null });
        const on = await updateMachine(ctx, actorOf(admin), node.id, { keyExpiryDisabled: false });
        const expiry = Date.parse(on.keyExpiry!);
        expect(expiry).toBeGreaterThan(Date.now() + 30 * DAY - 60_000);
        expect(expiry).toBeLessThanOrEqual(Date.now() + 30 * DAY);
      });
    });

    describe("setMachineRoutes", () => {
      it("lets admins approve routes, audited and published", async () => {
        const { db, ctx, admin, alice } = await world();
        const node = await createNode(db, "gw", { userId: alice.id, advertisedRoutes: ["10.1.0.0/16"] });
        const m = await setMachineRoutes(ctx, actorOf(admin), node.id, { routes: ["10.1.0.0/16"] });
        expect(m.approvedRoutes).toEqual(["10.1.0.0/16"]);
        const [ev] = await auditEvents(db, "node.routes");
        expect(ev).toMatchObject({
          actor: `user:${admin.id}`,
          detail: { before: [], after: ["10.1.0.0/16"] },
        });
        expect(ctx.published).toEqual([{ type: "nodes", ids: [node.id] }]);
      });

      it("refuses members (403 on their own machine, 404 on others') and bad routes (400)", async () => {
        const { db, ctx, admin, alice, bob } = await world();
        const own = await createNode(db, "gw", { userId: alice.id, advertisedRoutes: ["10.1.0.0/16"] });
        const bobs = await createNode(db, "gw2", { userId: bob.id });
        const body = { routes: ["10.1.0.0/16"] };
        expect((await rejection(setMachineRoutes(ctx, actorOf(alice), own.id, body))).status).toBe(403);
        expect((await rejection(setMachineRoutes(ctx, actorOf(alice), bobs.id, body))).status).toBe(404);
        const bad = await rejection(setMachineRoutes(ctx, actorOf(admin), own.id, { routes: ["10.1.0.0"] }));
        expect(bad.status).toBe(400);
        expect(bad.issues?.[0]?.path).toBe("routes.0");
        expect((await db.prisma.node.findUniqueOrThrow({ where: { id: own.id } })).approvedRoutes).toBe("[]");
        expect(ctx.published).toEqual([]);
      });
    });

    describe("setMachineRoutes: only what the machine advertises, written as a network", () => {
      it("refuses a route the machine never advertised and one with host bits set, changing nothing", async () => {
        const { db, ctx, admin, alice } = await world();
        const gw = await createNode(db, "gw", { userId: alice.id, advertisedRoutes: ["10.20.0.0/24"] });
        const unadvertised = await rejection(
          setMachineRoutes(ctx, actorOf(admin), gw.id, { routes: ["10.20.0.0/24", "172.16.0.0/12"] }),
        );
        expect(unadvertised.status).toBe(400);
        expect(unadvertised.issues).toEqual([
          { path: "routes.1", message: "gw does not advertise 172.16.0.0/12" },
        ]);
        const hostBits = await rejection(
          setMachineRoutes(ctx, actorOf(admin), gw.id, { routes: ["10.20.0.5/24"] }),
        );
        expect(hostBits.status).toBe(400);
        expect(hostBits.issues).toEqual([
          { path: "routes.0", message: "host bits are set; the network is 10.20.0.0/24" },
        ]);
        expect((await db.prisma.node.findUniqueOrThrow({ where: { id: gw.id } })).approvedRoutes).toBe("[]");
        expect(ctx.published).toEqual([]);
        // The advertised network itself is approved.
        const ok = await setMachineRoutes(ctx, actorOf(admin), gw.id, { routes: ["10.20.0.0/24"] });
        expect(ok.approvedRoutes).toEqual(["10.20.0.0/24"]);
      });
    });

    describe("authorizeMachine", () => {
      it("approves a pending machine for admins only", async () => {
        const { db, ctx, admin, alice } = await world();
        const node = await createNode(db, "new", { userId: alice.id, authorized: false });
        expect((await rejection(authorizeMachine(ctx, actorOf(alice), node.id))).status).toBe(403);
        expect((await authorizeMachine(ctx, actorOf(admin), node.id)).authorized).toBe(true);
        const [ev] = await auditEvents(db, "node.authorize");
        expect(ev).toMatchObject({
          actor: `user:${admin.id}`,
          detail: { before: { authorized: false }, after: { authorized: true } },
        });
        expect(ctx.published).toEqual([{ type: "nodes", ids: [node.id] }]);
      });
    });

    describe("expireMachineKey", () => {
      it("expires a member's own key now", async () => {
        const { db, ctx, alice, bob } = await world();
        const node = await createNode(db, "laptop", { userId: alice.id });
        const m = await expireMachineKey(ctx, actorOf(alice), node.id);
        expect(m.expired).toBe(true);
        expect(
          (await listMachines(ctx, actorOf(alice), { status: "expired" })).items.map((x) => x.id),
        ).toEqual([node.id]);
        expect((await auditEvents(db, "node.expire"))[0]!.detail.before).toEqual({
          keyExpiry: node.expiresAt!.toISOString(),
        });
        expect(ctx.published).toEqual([{ type: "nodes", ids: [node.id] }]);
        expect((await rejection(expireMachineKey(ctx, actorOf(bob), node.id))).status).toBe(404);
      });
    });

    describe("removeMachine", () => {
      it("removes a machine; its address is not handed out again", async () => {
        const { db, ctx, admin, alice, bob } = await world();
        const { key } = await createPreAuthKey(db, { userId: alice.id, reusable: true }, `user:${admin.id}`);
        const reg = (hostname: string) =>
          registerNode(
            db,
            `nodekey:${randomBytes(32).toString("hex")}`,
            { preAuthKey: key, hostname },
            {
              dnsDomain: TEST_DOMAIN,
            },
          );
        const first = (await reg("laptop")).node;
        expect((await rejection(removeMachine(ctx, actorOf(bob), first.id))).status).toBe(404);
        await removeMachine(ctx, actorOf(alice), first.id);
        expect(await db.prisma.node.findUnique({ where: { id: first.id } })).toBeNull();
        expect((await rejection(getMachine(ctx, actorOf(admin), first.id))).status).toBe(404);
        const [ev] = await auditEvents(db, "node.remove");
        expect(ev).toMatchObject({
          actor: `user:${alice.id}`,
          detail: { before: { name: "laptop", ipv4: first.ipv4 } },
        });
        expect(ctx.published).toEqual([{ type: "nodes", ids: [first.id] }]);
        const second = (await reg("laptop")).node;
        expect(second.name).toBe("laptop");
        expect(second.ipv4).not.toBe(first.ipv4);
        expect(second.ipv6).not.toBe(first.ipv6);
      });
    });
  });
}
