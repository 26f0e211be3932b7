import { describe, expect, it, vi } from "vitest";
import type { Database } from "@trellis/db";
import { ControlError } from "../errors";
import type { ControlEvent } from "../events";
import { hashPassword } from "../password";
import type * as PasswordModule from "../password";
import { PROVIDERS, testDatabases } from "../testing/db";
import { localOperator, requireScope, scopesFor, type Actor } from "./actor";
import { acceptInvitation, createInvitation, peekInvitation } from "./invitations";
import { verifyLogin } from "./login";
import { upsertOidcUser } from "./oidc";
import { LoginThrottle } from "./throttle";
import { createSession, deleteSession, sessionActor } from "./sessions";
import { createApiToken, createApiTokenFor, listApiTokens, revokeApiToken, tokenActor } from "./tokens";

// Counts scrypt runs, to prove refusals come before the KDF.
const kdf = vi.hoisted(() => ({ runs: 0 }));
vi.mock("../password", async (importOriginal) => {
  const real = await importOriginal<typeof PasswordModule>();
  return {
    ...real,
    hashPassword: (password: string) => {
      kdf.runs += 1;
      return real.hashPassword(password);
    },
  };
});

async function user(db: Database, email: string, role: string, password?: string) {
  return db.prisma.user.create({
    data: {
      email,
      name: email.split("@")[0]!,
      role,
      passwordHash: password ? await hashPassword(password) : null,
    },
  });
}

function sessionOf(u: { id: string; email: string; name: string; role: string }): Actor {
  const role = u.role as Actor["role"];
  return {
    userId: u.id,
    email: u.email,
    name: u.name,
    role,
    via: "session",
    scopes: scopesFor(role),
    credentialId: "s",
  };
}

async function rejects(p: Promise<unknown>, status: number, code?: string): Promise<ControlError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(ControlError.is(err), `expected a ControlError ${status}, got ${String(err)}`).toBe(true);
  expect((err as ControlError).status).toBe(status);
  if (code) expect((err as ControlError).code).toBe(code);
  return err as ControlError;
}

describe("roles and scopes", () => {
  it("auditors read everything and write nothing; members only machines", () => {
    const auditor = sessionOf({ id: "a", email: "a@x", name: "a", role: "auditor" });
    expect(() => requireScope(auditor, "policy:read")).not.toThrow();
    expect(() => requireScope(auditor, "policy:write")).toThrow(/auditor/);
    const member = sessionOf({ id: "m", email: "m@x", name: "m", role: "member" });
    expect(() => requireScope(member, "machines:write")).not.toThrow();
    expect(() => requireScope(member, "users:read")).toThrow(/member/);
  });

  it("a token narrows its user's role and never widens it", () => {
    expect([...scopesFor("member", ["machines:read", "policy:write"])]).toEqual(["machines:read"]);
    expect([...scopesFor("admin", ["logs:read"])]).toEqual(["logs:read"]);
  });
});

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`auth on ${provider}`, () => {
    const dbs = testDatabases(provider);

    it("logs in with the right password only, with one message for unknown email and wrong password", async () => {
      const db = await dbs.open();
      await user(db, "ann@example.com", "admin", "correct horse battery");
      const rl = new LoginThrottle(db);
      const ok = await verifyLogin(db, rl, " Ann@Example.com ", "correct horse battery", "1.2.3.4");
      expect(ok.email).toBe("ann@example.com");
      const wrong = await rejects(verifyLogin(db, rl, "ann@example.com", "wrong password!", "1.2.3.4"), 401);
      const unknown = await rejects(
        verifyLogin(db, rl, "nobody@example.com", "whatever12345", "1.2.3.4"),
        401,
      );
      expect(wrong.message).toBe(unknown.message);
      await rejects(verifyLogin(db, rl, { $ne: 1 }, "x", "1.2.3.4"), 401);
      await rl.close();
    });

    it("sessions: valid until deleted or expired, and always carry the user's current role", async () => {
      const db = await dbs.open();
      const u = await user(db, "cat@example.com", "member");
      const s = await createSession(db, u.id, "test-agent");
      expect((await sessionActor(db, s.id))?.role).toBe("member");
      await db.prisma.user.update({ where: { id: u.id }, data: { role: "auditor" } });
      const actor = await sessionActor(db, s.id);
      expect(actor?.role).toBe("auditor");
      expect(actor?.scopes.has("logs:read")).toBe(true);
      expect(await sessionActor(db, "not-a-session")).toBeNull();
      expect(await sessionActor(db, s.id, new Date(Date.now() + 8 * 86_400_000))).toBeNull();
      const s2 = await createSession(db, u.id);
      await deleteSession(db, s2.id);
      expect(await sessionActor(db, s2.id)).toBeNull();
      expect((await db.prisma.user.findUniqueOrThrow({ where: { id: u.id } })).lastLoginAt).not.toBeNull();
    });

    it("invitations: a wrong, expired or used link is refused without running scrypt", async () => {
      const db = await dbs.open();
      const admin = sessionOf(await user(db, "root@example.com", "admin"));
      const { token } = await createInvitation({ db }, admin, { email: "inv@example.com" });
      const form = (t: string) => ({ token: t, name: "Inv", password: "a long password 1" });
      const before = kdf.runs;
      await rejects(acceptInvitation(db, form("x".repeat(32))), 403, "bad_invitation");
      await rejects(acceptInvitation(db, form(token), new Date(Date.now() + 73 * 3_600_000)), 403);
      expect(kdf.runs).toBe(before);
      await acceptInvitation(db, form(token));
      const after = kdf.runs;
      await rejects(acceptInvitation(db, form(token)), 403, "bad_invitation");
      expect(kdf.runs).toBe(after);
    });
    it("API tokens: shown once, hashed at rest, scoped, revocable, expiring", async () => {
      const db = await dbs.open();
      const admin = sessionOf(await user(db, "root@example.com", "admin"));
      const { token, info } = await createApiToken({ db }, admin, {
        description: "ci",
        scopes: ["machines:read"],
      });
      expect(token).toMatch(/^trellis-api-[0-9a-f]{12}-/);
      const row = await db.prisma.apiToken.findUniqueOrThrow({ where: { id: info.id } });
      expect(JSON.stringify(row)).not.toContain(token.slice(-43));
      const actor = await tokenActor(db, token);
      expect(actor.via).toBe("token");
      expect([...actor.scopes]).toEqual(["machines:read"]);
      await rejects(tokenActor(db, token.slice(0, -1) + (token.endsWith("A") ? "B" : "A")), 401, "bad_token");
      await rejects(tokenActor(db, "garbage"), 401, "bad_token");
      await rejects(tokenActor(db, token, new Date(Date.now() + 91 * 86_400_000)), 401);
      // A token cannot list or mint tokens, and a role cannot grant beyond itself.
      await rejects(listApiTokens({ db }, actor), 403);
      expect((await listApiTokens({ db }, admin)).map((t) => t.id)).toEqual([info.id]);
      await rejects(createApiToken({ db }, actor, { scopes: ["machines:read"] }), 403);
      const member = sessionOf(await user(db, "m@example.com", "member"));
      await rejects(createApiToken({ db }, member, { scopes: ["policy:write"] }), 403);
      await rejects(createApiToken({ db }, admin, { scopes: ["bogus:scope"] }), 400);
      await rejects(revokeApiToken({ db }, member, info.id), 404);
      await revokeApiToken({ db }, admin, info.id);
      await rejects(tokenActor(db, token), 401);
      const audit = await db.prisma.auditEvent.findMany({ where: { target: `apitoken:${info.id}` } });
      expect(audit.map((a) => a.action).sort()).toEqual(["apitoken.create", "apitoken.revoke"]);
    });

    it("API tokens for another user: only the local operator, within that user's role, audited as local", async () => {
      const db = await dbs.open();
      const admin = sessionOf(await user(db, "root@example.com", "admin"));
      const m = await user(db, "m@example.com", "member");
      // A console session (or a token) cannot mint tokens that act as someone else.
      await rejects(createApiTokenFor({ db }, admin, m.id, { scopes: ["machines:read"] }), 403);
      await rejects(createApiTokenFor({ db }, localOperator(), m.id, { scopes: ["users:read"] }), 403);
      await rejects(createApiTokenFor({ db }, localOperator(), "nobody", { scopes: ["machines:read"] }), 404);
      const { token, info } = await createApiTokenFor({ db }, localOperator(), m.id, {
        scopes: ["machines:write"],
      });
      expect(await tokenActor(db, token)).toMatchObject({ userId: m.id, role: "member", via: "token" });
      expect((await listApiTokens({ db }, sessionOf(m))).map((t) => t.id)).toEqual([info.id]);
      const audit = await db.prisma.auditEvent.findMany({ where: { action: "apitoken.create" } });
      expect(audit).toMatchObject([{ actor: "local", target: `apitoken:${info.id}` }]);
      expect(JSON.parse(audit[0]!.detail)).toMatchObject({ userId: m.id, after: { id: info.id } });
    });

    it("invitations: one link makes one account with the invited role", async () => {
      const db = await dbs.open();
      const admin = sessionOf(await user(db, "root@example.com", "admin"));
      const auditor = sessionOf(await user(db, "aud@example.com", "auditor"));
      await rejects(createInvitation({ db }, auditor, { email: "new@example.com" }), 403);
      await rejects(createInvitation({ db }, admin, { email: "aud@example.com" }), 409);
      const { token } = await createInvitation({ db }, admin, { email: "New@Example.com", role: "auditor" });
      expect(await peekInvitation(db, token)).toEqual({ email: "new@example.com", role: "auditor" });
      await rejects(acceptInvitation(db, { token, name: "N", password: "short" }), 400);
      const results = await Promise.allSettled([
        acceptInvitation(db, { token, name: "New", password: "a long password 1" }),
        acceptInvitation(db, { token, name: "New", password: "a long password 2" }),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const created = await db.prisma.user.findUniqueOrThrow({ where: { email: "new@example.com" } });
      expect(created.role).toBe("auditor");
      expect(await peekInvitation(db, token)).toBeNull();
      await rejects(
        acceptInvitation(db, { token: "x".repeat(32), name: "X", password: "a long password 3" }),
        403,
      );
    });

    it("OIDC: the first login before setup is a member without an admin group, never the admin", async () => {
      const db = await dbs.open();
      const s = { issuer: "https://idp.test", adminGroups: [], auditorGroups: [], allowedGroups: [] };
      expect(await db.prisma.user.count({ where: { role: "admin" } })).toBe(0);
      const id = await upsertOidcUser(db, s, {
        sub: "first",
        email: "first@example.com",
        emailVerified: true,
        groups: [],
      });
      expect((await db.prisma.user.findUniqueOrThrow({ where: { id } })).role).toBe("member");
      // A configured admin group still makes admins.
      const ops = await upsertOidcUser(
        db,
        { ...s, adminGroups: ["ops"] },
        { sub: "ops", email: "ops@example.com", emailVerified: true, groups: ["ops"] },
      );
      expect((await db.prisma.user.findUniqueOrThrow({ where: { id: ops } })).role).toBe("admin");
    });
    it("OIDC: first login creates the user from a verified email, groups map roles", async () => {
      const db = await dbs.open();
      const s = {
        issuer: "https://idp.test",
        adminGroups: ["ops"],
        auditorGroups: ["sec"],
        allowedGroups: [],
      };
      const id = await upsertOidcUser(db, s, {
        sub: "1",
        email: "dee@example.com",
        emailVerified: true,
        name: "Dee",
        groups: ["sec"],
      });
      let u = await db.prisma.user.findUniqueOrThrow({ where: { id } });
      expect(u.role).toBe("auditor");
      expect(JSON.parse(u.groups)).toEqual(["sec"]);
      // Dee has a machine: what her groups grant it is part of every map.
      const laptop = await db.prisma.node.create({
        data: { nodeKey: `nodekey:${"d".repeat(64)}`, name: "dee-laptop", userId: id },
      });
      // Next login: same subject, new groups → role follows, and her machine's maps are told.
      const published: ControlEvent[] = [];
      const again = await upsertOidcUser(
        db,
        s,
        { sub: "1", email: "dee@example.com", groups: ["ops"] },
        (e) => published.push(e),
      );
      expect(again).toBe(id);
      u = await db.prisma.user.findUniqueOrThrow({ where: { id } });
      expect(u.role).toBe("admin");
      expect(published).toMatchObject([{ type: "nodes", ids: [laptop.id] }]);
      // The same groups again change nothing and tell nobody.
      await upsertOidcUser(db, s, { sub: "1", email: "dee@example.com", groups: ["ops"] }, (e) =>
        published.push(e),
      );
      expect(published).toHaveLength(1);
      await rejects(
        upsertOidcUser(
          db,
          { ...s, allowedGroups: ["staff"] },
          { sub: "3", email: "f@x.com", emailVerified: true },
        ),
        403,
      );
      await rejects(upsertOidcUser(db, s, { sub: "4", email: null }), 403);
    });
    it("OIDC: a role the provider vouched for over a week ago is not honoured until the user logs in again", async () => {
      const db = await dbs.open();
      const s = { issuer: "https://idp.test", adminGroups: ["ops"], auditorGroups: [], allowedGroups: [] };
      const id = await upsertOidcUser(db, s, {
        sub: "9",
        email: "ops@example.com",
        emailVerified: true,
        groups: ["ops"],
      });
      const session = await createSession(db, id);
      const { token } = await createApiTokenFor({ db }, localOperator(), id, { scopes: ["users:read"] });
      expect((await sessionActor(db, session.id))?.role).toBe("admin");
      expect((await tokenActor(db, token)).role).toBe("admin");
      // Eight days on, without a login: the provider may have moved them out of "ops" meanwhile.
      const later = new Date(Date.now() + 8 * 24 * 3600 * 1000);
      expect(await sessionActor(db, session.id, later)).toBeNull();
      const refused = await tokenActor(db, token, later).then(
        () => null,
        (e: unknown) => e,
      );
      expect(refused).toMatchObject({ status: 401, message: /single sign-on.*logging in again/ });
      // A local account is not affected by the rule.
      const local = await db.prisma.user.create({
        data: { email: "l@example.com", name: "L", role: "admin" },
      });
      const ls = await createSession(db, local.id);
      expect((await sessionActor(db, ls.id, new Date(Date.now() + 3 * 24 * 3600 * 1000)))?.role).toBe(
        "admin",
      );
      // They log in again and the provider says they left "ops": the role follows, the token works again as a member's.
      await db.prisma.user.update({
        where: { id },
        data: { oidcSyncedAt: new Date(Date.now() - 8 * 24 * 3600 * 1000) },
      });
      await upsertOidcUser(db, s, { sub: "9", email: "ops@example.com", groups: [] });
      const now = await tokenActor(db, token);
      expect(now.role).toBe("member");
      expect([...now.scopes]).toEqual([]);
    });

    it("OIDC: no account from an unverified email, and no silent takeover of an existing account", async () => {
      const db = await dbs.open();
      const s = { issuer: "https://idp.test", adminGroups: [], auditorGroups: [], allowedGroups: [] };
      // Unverified (false or absent): nothing is created.
      await rejects(
        upsertOidcUser(db, s, { sub: "u1", email: "gil@example.com", emailVerified: false }),
        403,
        "email_unverified",
      );
      await rejects(upsertOidcUser(db, s, { sub: "u2", email: "gil@example.com" }), 403, "email_unverified");
      expect(await db.prisma.user.count()).toBe(0);
      // A verified email matching the setup admin's (or any local account) does not log in as it.
      const root = await user(db, "root@example.com", "admin", "a long password!");
      await rejects(
        upsertOidcUser(db, s, { sub: "r", email: "Root@Example.com", emailVerified: true, groups: [] }),
        409,
        "account_exists",
      );
      const after = await db.prisma.user.findUniqueOrThrow({ where: { id: root.id } });
      expect(after.oidcSubject).toBeNull();
      expect(after.role).toBe("admin");
      expect(await db.prisma.user.count()).toBe(1);
    });
  });
}
