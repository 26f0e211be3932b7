import { describe, expect, it } from "vitest";
import { acceptInvitation, createInvitation, peekInvitation } from "../auth/invitations";
import { createPreAuthKey } from "../preauth";
import { PROVIDERS, testDatabases } from "../testing/db";
import { actorOf, adminContext, auditEvents, createNode, createUser, rejection } from "./testing";
import { getUser, listUsers, removeUser, updateUser } from "./users";

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`admin users on ${provider}`, () => {
    const dbs = testDatabases(provider);

    async function world() {
      const db = await dbs.open();
      const ctx = adminContext(db);
      const admin = await createUser(db, "admin", "root@example.com");
      return { db, ctx, admin };
    }

    describe("listUsers", () => {
      it("pages through users by email with machine counts", async () => {
        const { db, ctx, admin } = await world();
        const carol = await createUser(db, "member", "carol@example.com", { oidcSubject: "https://idp#c" });
        await createUser(db, "member", "alice@example.com");
        await createUser(db, "auditor", "dave@example.com");
        await createUser(db, "member", "bob@example.com");
        await createNode(db, "c1", { userId: carol.id });
        await createNode(db, "c2", { userId: carol.id });
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await listUsers(ctx, actorOf(admin), { limit: "2", ...(cursor ? { cursor } : {}) });
          expect(page.total).toBe(5);
          seen.push(...page.items.map((u) => u.email));
          cursor = page.nextCursor ?? undefined;
          pages++;
        } while (cursor);
        expect(pages).toBe(3);
        expect(seen).toEqual([
          "alice@example.com",
          "bob@example.com",
          "carol@example.com",
          "dave@example.com",
          "root@example.com",
        ]);
        const c = await getUser(ctx, actorOf(admin), carol.id);
        expect(c).toMatchObject({
          role: "member",
          login: "oidc",
          machines: 2,
          groups: [],
          lastLoginAt: null,
        });
        expect((await getUser(ctx, actorOf(admin), admin.id)).login).toBe("local");
      });

      it("filters by role and text; auditors may list, members may not", async () => {
        const { db, ctx } = await world();
        const auditor = await createUser(db, "auditor", "audit@example.com");
        const member = await createUser(db, "member", "Zed@Example.com");
        const r = await listUsers(ctx, actorOf(auditor), { role: "member" });
        expect(r.items.map((u) => u.email)).toEqual(["Zed@Example.com"]);
        expect((await listUsers(ctx, actorOf(auditor), { q: "zed@" })).total).toBe(1);
        expect((await rejection(listUsers(ctx, actorOf(member), {}))).status).toBe(403);
        expect((await rejection(listUsers(ctx, actorOf(auditor), { role: "owner" }))).status).toBe(400);
        expect((await rejection(getUser(ctx, actorOf(auditor), "nobody"))).status).toBe(404);
      });
    });

    describe("updateUser", () => {
      it("changes a role at once, audited, and tells map streams", async () => {
        const { db, ctx, admin } = await world();
        const alice = await createUser(db, "member", "alice@example.com");
        const laptop = await createNode(db, "laptop", { userId: alice.id });
        const updated = await updateUser(ctx, actorOf(admin), alice.id, { role: "admin" });
        expect(updated.role).toBe("admin");
        expect((await db.prisma.user.findUniqueOrThrow({ where: { id: alice.id } })).role).toBe("admin");
        const [ev] = await auditEvents(db, "user.role");
        expect(ev).toMatchObject({
          actor: `user:${admin.id}`,
          target: `user:${alice.id}`,
          detail: { before: { role: "member" }, after: { role: "admin" } },
        });
        expect(ctx.published).toEqual([{ type: "nodes", ids: [laptop.id] }]);
        // The same role again changes nothing.
        await updateUser(ctx, actorOf(admin), alice.id, { role: "admin" });
        expect(await db.prisma.auditEvent.count()).toBe(1);
      });

      it("refuses invalid bodies and non-admins, changing nothing", async () => {
        const { db, ctx, admin } = await world();
        const auditor = await createUser(db, "auditor", "audit@example.com");
        const bad = await rejection(updateUser(ctx, actorOf(admin), auditor.id, { role: "owner", x: 1 }));
        expect(bad.status).toBe(400);
        expect(bad.issues?.length).toBe(2);
        const denied = await rejection(updateUser(ctx, actorOf(auditor), auditor.id, { role: "admin" }));
        expect(denied.status).toBe(403);
        expect((await rejection(updateUser(ctx, actorOf(admin), "nobody", { role: "admin" }))).status).toBe(
          404,
        );
        expect((await db.prisma.user.findUniqueOrThrow({ where: { id: auditor.id } })).role).toBe("auditor");
        expect(await db.prisma.auditEvent.count()).toBe(0);
      });

      it("never demotes the last admin, even with two demotions racing", async () => {
        const { db, ctx, admin } = await world();
        const last = await rejection(updateUser(ctx, actorOf(admin), admin.id, { role: "member" }));
        expect(last).toMatchObject({ status: 409, code: "conflict" });

        const other = await createUser(db, "admin", "other@example.com");
        const results = await Promise.allSettled([
          updateUser(ctx, actorOf(admin), admin.id, { role: "member" }),
          updateUser(ctx, actorOf(other), other.id, { role: "auditor" }),
        ]);
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        expect(await db.prisma.user.count({ where: { role: "admin" } })).toBe(1);
      });
    });

    describe("removeUser", () => {
      it("removes the user with their machines, sessions, tokens and keys", async () => {
        const { db, ctx, admin } = await world();
        const alice = await createUser(db, "member", "alice@example.com");
        const n1 = await createNode(db, "a1", { userId: alice.id });
        const n2 = await createNode(db, "a2", { userId: alice.id });
        const kept = await createNode(db, "srv", { tags: ["tag:web"] });
        await db.prisma.session.create({
          data: { id: "s1", userId: alice.id, expiresAt: new Date(Date.now() + 3600_000) },
        });
        await db.prisma.apiToken.create({
          data: { prefix: "p1", hash: "h", userId: alice.id, scopes: "[]", expiresAt: new Date() },
        });
        await createPreAuthKey(db, { userId: alice.id }, `user:${admin.id}`);

        await removeUser(ctx, actorOf(admin), alice.id);
        expect(await db.prisma.user.findUnique({ where: { id: alice.id } })).toBeNull();
        expect((await db.prisma.node.findMany()).map((n) => n.id)).toEqual([kept.id]);
        expect(await db.prisma.session.count()).toBe(0);
        expect(await db.prisma.apiToken.count()).toBe(0);
        expect(await db.prisma.preAuthKey.count()).toBe(0);
        const [ev] = await auditEvents(db, "user.remove");
        expect(ev).toMatchObject({
          actor: `user:${admin.id}`,
          target: `user:${alice.id}`,
          detail: { before: { email: "alice@example.com", role: "member" }, after: null },
        });
        expect(ctx.published).toHaveLength(1);
        const published = ctx.published[0]!;
        expect(published.type === "nodes" && [...published.ids].sort()).toEqual([n1.id, n2.id].sort());
      });

      it("revokes the tagged pre-auth keys and open invitations a removed admin created", async () => {
        const { db, ctx, admin } = await world();
        const ops = await createUser(db, "admin", "ops@example.com");
        const { key } = await createPreAuthKey(db, { tags: ["tag:ci"], reusable: true }, `user:${ops.id}`);
        const own = await createPreAuthKey(db, { tags: ["tag:web"] }, `user:${admin.id}`);
        const { token } = await createInvitation(ctx, actorOf(ops), {
          email: "new@example.com",
          role: "admin",
        });
        await removeUser(ctx, actorOf(admin), ops.id);
        const rows = await db.prisma.preAuthKey.findMany({ orderBy: { createdAt: "asc" } });
        expect(rows.find((r) => key.startsWith(`trellis-auth-${r.prefix}-`))?.revokedAt).not.toBeNull();
        expect(rows.find((r) => r.id === own.info.id)?.revokedAt).toBeNull();
        expect(await peekInvitation(db, token)).toBeNull();
        expect(
          (await rejection(acceptInvitation(db, { token, name: "N", password: "a long password 1" }))).status,
        ).toBe(403);
        expect(await auditEvents(db, "preauthkey.revoke")).toHaveLength(1);
        expect(await auditEvents(db, "invitation.revoke")).toHaveLength(1);
      });

      it("refuses removing yourself, the last admin, or without users:write", async () => {
        const { db, ctx, admin } = await world();
        const auditor = await createUser(db, "auditor", "audit@example.com");
        expect((await rejection(removeUser(ctx, actorOf(admin), admin.id))).status).toBe(409);
        expect((await rejection(removeUser(ctx, actorOf(auditor), admin.id))).status).toBe(403);
        // An admin demoted after their session began still cannot remove the last admin.
        const former = await createUser(db, "member", "former@example.com");
        const err = await rejection(removeUser(ctx, actorOf({ ...former, role: "admin" }), admin.id));
        expect(err).toMatchObject({ status: 409, code: "conflict" });
        expect(await db.prisma.user.count()).toBe(3);
        expect(ctx.published).toEqual([]);
      });
    });
  });
}
