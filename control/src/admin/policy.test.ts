import { describe, expect, it } from "vitest";
import { ControlError } from "../errors";
import { DEFAULT_POLICY_TEXT } from "../policy-store";
import type { AdminContext } from "./context";
import { PROVIDERS, testDatabases } from "../testing/db";
import {
  checkReachability,
  getPolicy,
  getPolicyVersion,
  listPolicyVersions,
  restorePolicyVersion,
  savePolicyText,
  validatePolicyText,
} from "./policy";
import { actorOf, adminContext, auditEvents, createNode, createUser, rejection } from "./testing";

const allowAll = (comment: string) =>
  `// ${comment}\n{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`;

const POLICY = `{
  "groups": { "group:eng": ["alice@example.com"] },
  "tagOwners": { "tag:web": ["autogroup:admin"], "tag:router": ["autogroup:admin"] },
  "acls": [
    { "action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"] },
    { "action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"] },
    { "action": "accept", "src": ["group:eng"], "dst": ["10.0.0.0/24:80"] },
  ],
}`;

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`admin policy on ${provider}`, () => {
    const dbs = testDatabases(provider);

    async function world() {
      const db = await dbs.open();
      const ctx = adminContext(db);
      const admin = await createUser(db, "admin", "root@example.com");
      const auditor = await createUser(db, "auditor", "audit@example.com");
      const alice = await createUser(db, "member", "alice@example.com");
      const bob = await createUser(db, "member", "bob@example.com");
      return { db, ctx, admin, auditor, alice, bob };
    }

    describe("getPolicy and validatePolicyText", () => {
      it("reads the built-in default until a version is saved", async () => {
        const { ctx, auditor, alice } = await world();
        expect(await getPolicy(ctx, actorOf(auditor))).toEqual({ version: 0, text: DEFAULT_POLICY_TEXT });
        expect((await rejection(getPolicy(ctx, actorOf(alice)))).status).toBe(403);
      });

      it("dry-runs a policy, reporting issues with line and column, saving nothing", async () => {
        const { db, ctx, admin, alice } = await world();
        await createNode(db, "alice-laptop", { userId: alice.id });
        expect(await validatePolicyText(ctx, actorOf(admin), POLICY)).toEqual({ ok: true });
        expect(await validatePolicyText(ctx, actorOf(admin), { text: POLICY })).toEqual({ ok: true });

        const bad = await validatePolicyText(
          ctx,
          actorOf(admin),
          '{\n  "acls": [\n    {"action": "accept", "src": ["group:nope"], "dst": ["*:*"]}\n  ]\n}',
        );
        expect(bad.ok).toBe(false);
        if (bad.ok) return;
        expect(bad.message).toMatch(/group:nope/);
        expect(bad.issues).toEqual([
          expect.objectContaining({ path: "acls[0].src[0]", line: 3, column: expect.any(Number) }),
        ]);

        // The policy's own tests run against the tailnet as it is.
        const failing = await validatePolicyText(
          ctx,
          actorOf(admin),
          JSON.stringify({
            acls: [{ action: "accept", src: ["alice@example.com"], dst: ["alice@example.com:*"] }],
            tests: [{ src: "alice@example.com", deny: ["alice@example.com:22"] }],
          }),
        );
        expect(failing).toMatchObject({ ok: false, issues: [{ path: "tests[0].deny[0]" }] });

        expect((await rejection(validatePolicyText(ctx, actorOf(admin), 42))).status).toBe(400);
        expect(await db.prisma.policyVersion.count()).toBe(0);
      });
    });

    describe("checks off the event loop", () => {
      it("dry runs and saves go to the context's policy check; a busy one answers 503, saving nothing", async () => {
        const { db, ctx, admin, auditor } = await world();
        const asked: { source: string; wantPolicy: boolean }[] = [];
        const busy = new ControlError("policy_check_busy", 503, "busy", undefined, 2);
        const refusing: AdminContext = {
          ...ctx,
          policyCheck: {
            check: (_text, _topology, opts) => {
              asked.push(opts);
              return Promise.reject(busy);
            },
          },
        };
        expect(await rejection(validatePolicyText(refusing, actorOf(auditor), POLICY))).toBe(busy);
        expect(await rejection(savePolicyText(refusing, actorOf(admin), { text: POLICY }))).toBe(busy);
        expect(asked).toEqual([
          { source: "policy", wantPolicy: false },
          { source: "policy", wantPolicy: true },
        ]);
        expect(await db.prisma.policyVersion.count()).toBe(0);
      });
    });

    describe("savePolicyText", () => {
      it("saves a version, audited and published, and applies autoApprovers", async () => {
        const { db, ctx, admin, alice } = await world();
        const router = await createNode(db, "router", {
          userId: alice.id,
          advertisedRoutes: ["10.9.0.0/24"],
        });
        const text = JSON.stringify({
          acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }],
          autoApprovers: { routes: { "10.9.0.0/16": ["alice@example.com"] } },
        });
        expect(await savePolicyText(ctx, actorOf(admin), { text, baseVersion: 0 })).toEqual({ version: 1 });
        expect(await getPolicy(ctx, actorOf(admin))).toEqual({ version: 1, text });
        const [ev] = await auditEvents(db, "policy.update");
        expect(ev).toMatchObject({ actor: `user:${admin.id}`, target: "policy:1" });
        // The auto-approved node is announced before the policy, which alone promises no node changed.
        expect(ctx.published).toEqual([{ type: "nodes", ids: [router.id] }, { type: "policy" }]);
        const approved = await db.prisma.node.findUniqueOrThrow({ where: { id: router.id } });
        expect(JSON.parse(approved.approvedRoutes)).toEqual(["10.9.0.0/24"]);
      });

      it("refuses a save based on an outdated version with 409 policy_conflict", async () => {
        const { db, ctx, admin } = await world();
        await savePolicyText(ctx, actorOf(admin), { text: allowAll("one") });
        await savePolicyText(ctx, actorOf(admin), { text: allowAll("two"), baseVersion: 1 });
        const err = await rejection(
          savePolicyText(ctx, actorOf(admin), { text: allowAll("three"), baseVersion: 1 }),
        );
        expect(err).toMatchObject({ status: 409, code: "policy_conflict" });
        expect((await getPolicy(ctx, actorOf(admin))).text).toBe(allowAll("two"));
        expect(await db.prisma.policyVersion.count()).toBe(2);
      });

      it("refuses invalid policies and non-writers, saving nothing", async () => {
        const { db, ctx, admin, auditor } = await world();
        const invalid = await rejection(savePolicyText(ctx, actorOf(admin), { text: '{"acls": [' }));
        expect(invalid.status).toBe(400);
        expect(invalid.issues?.length).toBeGreaterThan(0);
        const strict = await rejection(
          savePolicyText(ctx, actorOf(admin), { text: allowAll("x"), version: 3 }),
        );
        expect(strict).toMatchObject({ status: 400, code: "invalid_request" });
        expect((await rejection(savePolicyText(ctx, actorOf(auditor), { text: allowAll("x") }))).status).toBe(
          403,
        );
        expect(await db.prisma.policyVersion.count()).toBe(0);
        expect(ctx.published).toEqual([]);
      });
    });

    describe("versions", () => {
      it("lists versions newest first in pages, marking the current one, the built-in default last as version 0", async () => {
        const { ctx, admin, auditor } = await world();
        const before = await listPolicyVersions(ctx, actorOf(auditor), {});
        expect(before.items).toMatchObject([{ id: 0, createdBy: "system", current: true }]);
        expect(before.total).toBe(1);
        for (let i = 1; i <= 5; i++) await savePolicyText(ctx, actorOf(admin), { text: allowAll(`v${i}`) });
        const ids: number[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await listPolicyVersions(ctx, actorOf(auditor), {
            limit: "2",
            ...(cursor ? { cursor } : {}),
          });
          expect(page.total).toBe(6);
          for (const v of page.items) {
            if (v.id === 0) {
              expect(v).toMatchObject({ createdBy: "system", current: false });
              expect(v.bytes).toBe(Buffer.byteLength(DEFAULT_POLICY_TEXT));
              continue;
            }
            expect(v).toMatchObject({
              createdBy: `user:${admin.id}`,
              createdByName: "root@example.com",
              current: v.id === 5,
            });
            expect(v.bytes).toBe(Buffer.byteLength(allowAll(`v${v.id}`)));
          }
          ids.push(...page.items.map((v) => v.id));
          cursor = page.nextCursor ?? undefined;
          pages++;
        } while (cursor);
        expect(pages).toBe(3);
        expect(ids).toEqual([5, 4, 3, 2, 1, 0]);
        expect(await getPolicyVersion(ctx, actorOf(auditor), 2)).toMatchObject({
          id: 2,
          text: allowAll("v2"),
          current: false,
        });
        expect(await getPolicyVersion(ctx, actorOf(auditor), 0)).toMatchObject({
          id: 0,
          text: DEFAULT_POLICY_TEXT,
        });
        expect((await rejection(getPolicyVersion(ctx, actorOf(auditor), 99))).status).toBe(404);
      });

      it("restores an old version as a new one, validated against the tailnet now", async () => {
        const { db, ctx, admin, alice, bob } = await world();
        const a = await createNode(db, "alice-laptop", { userId: alice.id });
        const b = await createNode(db, "bob-laptop", { userId: bob.id });
        // v1's test holds only while alice-laptop exists: its address is then alice's (group:eng).
        const v1 = JSON.stringify({
          groups: { "group:eng": ["alice@example.com"] },
          acls: [{ action: "accept", src: ["group:eng"], dst: ["*:*"] }],
          tests: [{ src: a.ipv4, accept: [`${b.ipv4}:22`] }],
        });
        await savePolicyText(ctx, actorOf(admin), { text: v1 });
        await savePolicyText(ctx, actorOf(admin), { text: allowAll("v2") });
        ctx.published.length = 0;

        expect(await restorePolicyVersion(ctx, actorOf(admin), 1)).toEqual({ version: 3 });
        expect(await getPolicy(ctx, actorOf(admin))).toEqual({ version: 3, text: v1 });
        const [ev] = await auditEvents(db, "policy.restore");
        expect(ev).toMatchObject({
          actor: `user:${admin.id}`,
          target: "policy:3",
          detail: { before: { version: 2 }, after: { version: 3, restoredFrom: 1 } },
        });
        expect(ctx.published).toEqual([{ type: "policy" }]);

        await savePolicyText(ctx, actorOf(admin), { text: allowAll("v4") });
        await db.prisma.node.delete({ where: { id: a.id } });
        const err = await rejection(restorePolicyVersion(ctx, actorOf(admin), 1));
        expect(err).toMatchObject({ status: 400, code: "policy_test_failed" });
        expect((await getPolicy(ctx, actorOf(admin))).version).toBe(4);
        expect((await rejection(restorePolicyVersion(ctx, actorOf(alice), 1))).status).toBe(403);
      });
    });

    describe("checkReachability", () => {
      async function tailnet() {
        const w = await world();
        const { db, ctx, admin, alice, bob } = w;
        await createNode(db, "alice-laptop", { userId: alice.id });
        await createNode(db, "bob-laptop", { userId: bob.id });
        const web = await createNode(db, "web", { tags: ["tag:web"] });
        await createNode(db, "router", {
          tags: ["tag:router"],
          advertisedRoutes: ["10.0.0.0/24"],
          approvedRoutes: ["10.0.0.0/24"],
        });
        await createNode(db, "waiting", { userId: alice.id, authorized: false });
        await savePolicyText(ctx, actorOf(admin), { text: POLICY });
        return { ...w, web };
      }

      it("answers allowed with the rule, and denied without one", async () => {
        const { ctx, auditor, web } = await tailnet();
        const yes = await checkReachability(ctx, actorOf(auditor), {
          src: "alice-laptop",
          dst: "web",
          port: 443,
        });
        expect(yes).toMatchObject({
          allowed: true,
          rule: { kind: "acls", index: 0, text: expect.stringContaining("tag:web:443") },
          src: { input: "alice-laptop", node: { name: "alice-laptop" }, user: "alice@example.com" },
          dst: { node: { id: web.id, name: "web" }, ip: web.ipv4, via: null },
        });
        expect(yes.explanation).toMatch(/allowed by acls\[0\]/);

        const no = await checkReachability(ctx, actorOf(auditor), {
          src: "bob-laptop",
          dst: "web",
          port: 443,
        });
        expect(no).toMatchObject({ allowed: false, rule: null });
        expect(no.explanation).toMatch(/default deny/);
        const wrongPort = await checkReachability(ctx, actorOf(auditor), {
          src: "alice-laptop",
          dst: "web.trellis.test",
          port: 22,
          proto: "tcp",
        });
        expect(wrongPort.allowed).toBe(false);
      });

      it("resolves sources by address and by user email, and subnet routes through their router", async () => {
        const { ctx, auditor, web } = await tailnet();
        const byEmail = await checkReachability(ctx, actorOf(auditor), {
          src: "alice@example.com",
          dst: web.ipv4!,
          port: 443,
        });
        expect(byEmail).toMatchObject({
          allowed: true,
          src: { node: { name: "alice-laptop" } },
          dst: { node: { name: "web" } },
        });
        const bobAddr = (
          await checkReachability(ctx, actorOf(auditor), { src: "bob-laptop", dst: "web", port: 1 })
        ).src.ip!;
        const byAddr = await checkReachability(ctx, actorOf(auditor), {
          src: bobAddr,
          dst: "bob-laptop",
          port: 22,
        });
        expect(byAddr).toMatchObject({
          allowed: true,
          rule: { kind: "acls", index: 1 },
          src: { node: { name: "bob-laptop" } },
        });

        const subnet = await checkReachability(ctx, actorOf(auditor), {
          src: "alice-laptop",
          dst: "10.0.0.7",
          port: 80,
        });
        expect(subnet).toMatchObject({
          allowed: true,
          rule: { index: 2 },
          dst: { node: null, via: { name: "router" } },
        });
        expect(subnet.explanation).toMatch(/on router/);
      });

      it('takes "*" as Tailscale does: the tailnet and its approved subnet routes, nothing else', async () => {
        const { ctx, admin, auditor } = await tailnet();
        await savePolicyText(ctx, actorOf(admin), {
          text: JSON.stringify({
            tagOwners: { "tag:web": [], "tag:router": [] },
            acls: [{ action: "accept", src: ["*"], dst: ["tag:web:443"] }],
          }),
        });
        const ask = (src: string) => checkReachability(ctx, actorOf(auditor), { src, dst: "web", port: 443 });
        expect(await ask("alice-laptop")).toMatchObject({ allowed: true, rule: { kind: "acls", index: 0 } });
        // Behind the router's approved route: inside "*".
        expect(await ask("10.0.0.9")).toMatchObject({ allowed: true, src: { ip: "10.0.0.9", node: null } });
        // A LAN no router routes for, the internet, the ChromeOS block: outside.
        for (const outside of ["192.168.7.7", "203.0.113.5", "100.115.92.1"]) {
          const answer = await ask(outside);
          expect(answer.allowed, outside).toBe(false);
          expect(answer.explanation, outside).toMatch(/default deny/);
        }
      });

      it("refuses unknown and inactive machines with 400, and readers without policy:read", async () => {
        const { ctx, auditor, alice } = await tailnet();
        const unknown = await rejection(
          checkReachability(ctx, actorOf(auditor), { src: "nobody", dst: "web", port: 1 }),
        );
        expect(unknown).toMatchObject({ status: 400, issues: [{ path: "src" }] });
        const waiting = await rejection(
          checkReachability(ctx, actorOf(auditor), { src: "alice-laptop", dst: "waiting", port: 1 }),
        );
        expect(waiting.message).toMatch(/not active/);
        const noMachines = await rejection(
          checkReachability(ctx, actorOf(auditor), { src: "root@example.com", dst: "web", port: 1 }),
        );
        expect(noMachines.message).toMatch(/no active machines/);
        const invalid = await rejection(
          checkReachability(ctx, actorOf(auditor), { src: "a", dst: "b", port: 70000 }),
        );
        expect(invalid.issues?.[0]?.path).toBe("port");
        expect(
          (await rejection(checkReachability(ctx, actorOf(alice), { src: "a", dst: "b", port: 1 }))).status,
        ).toBe(403);
      });
    });
  });
}
