import { describe, expect, it } from "vitest";
import { PROVIDERS, testDatabases } from "../testing/db";
import { csvField, exportAudit, listAudit } from "./audit";
import { removeMachine, updateMachine } from "./machines";
import { actorOf, adminContext, createNode, createUser, rejection } from "./testing";

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`admin audit log on ${provider}`, () => {
    const dbs = testDatabases(provider);

    async function world() {
      const db = await dbs.open();
      const ctx = adminContext(db);
      const admin = await createUser(db, "admin", "root@example.com");
      const auditor = await createUser(db, "auditor", "audit@example.com");
      return { db, ctx, admin, auditor };
    }

    it("pages newest first, ties broken stably, with the total", async () => {
      const { db, ctx, auditor } = await world();
      const t0 = Date.parse("2030-01-01T00:00:00Z");
      const at = [t0, t0 + 1000, t0 + 1000, t0 + 1000, t0 + 2000];
      for (const [i, ms] of at.entries()) {
        await db.prisma.auditEvent.create({
          data: { at: new Date(ms), actor: "system", action: `test.e${i}`, target: "x" },
        });
      }
      const seen: string[] = [];
      const times: number[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await listAudit(ctx, actorOf(auditor), { limit: "2", ...(cursor ? { cursor } : {}) });
        expect(page.total).toBe(5);
        seen.push(...page.items.map((e) => e.action));
        times.push(...page.items.map((e) => Date.parse(e.at)));
        cursor = page.nextCursor ?? undefined;
        pages++;
      } while (cursor);
      expect(pages).toBe(3);
      expect(new Set(seen).size).toBe(5);
      expect(seen[0]).toBe("test.e4");
      expect(seen[4]).toBe("test.e0");
      expect(times).toEqual([...times].sort((a, b) => b - a));
    });

    it("names actors and parses details", async () => {
      const { db, ctx, admin, auditor } = await world();
      const node = await createNode(db, "laptop", { userId: admin.id });
      await updateMachine(ctx, actorOf(admin), node.id, { name: "renamed" });
      await db.prisma.auditEvent.createMany({
        data: [
          { actor: `node:${node.id}`, action: "node.register", target: `node:${node.id}` },
          { actor: "node:gone", action: "node.register", target: "node:gone", detail: "not json" },
          { actor: "system", action: "node.routes_auto_approved", target: "node:x" },
        ],
      });
      const page = await listAudit(ctx, actorOf(auditor), {});
      const byActor = new Map(page.items.map((e) => [e.actor, e]));
      expect(byActor.get(`user:${admin.id}`)).toMatchObject({
        actorName: "root@example.com",
        action: "node.rename",
        detail: { before: { name: "laptop" }, after: { name: "renamed" } },
      });
      expect(byActor.get(`node:${node.id}`)?.actorName).toBe("renamed");
      expect(byActor.get("node:gone")).toMatchObject({
        actorName: "node:gone",
        detail: { text: "not json" },
      });
      expect(byActor.get("system")?.actorName).toBe("system");
    });

    it("filters by actor (as stored, or a user's email), action prefix, target and time", async () => {
      const { db, ctx, admin, auditor } = await world();
      const t = (s: string) => new Date(`2030-01-01T00:00:0${s}Z`);
      await db.prisma.auditEvent.createMany({
        data: [
          { at: t("1"), actor: `user:${admin.id}`, action: "node.rename", target: "node:a" },
          { at: t("2"), actor: `user:${admin.id}`, action: "node.tags", target: "node:b" },
          { at: t("3"), actor: "system", action: "nodes.other", target: "node:a" },
          { at: t("4"), actor: `user:${auditor.id}`, action: "user.role", target: "user:x" },
        ],
      });
      const actions = async (q: Record<string, string>) =>
        (await listAudit(ctx, actorOf(auditor), q)).items.map((e) => e.action);
      expect(await actions({ actor: "root@example.com" })).toEqual(["node.tags", "node.rename"]);
      expect(await actions({ actor: `user:${admin.id}` })).toEqual(["node.tags", "node.rename"]);
      expect(await actions({ action: "node." })).toEqual(["node.tags", "node.rename"]);
      expect(await actions({ action: "node.tags" })).toEqual(["node.tags"]);
      expect(await actions({ target: "node:a" })).toEqual(["nodes.other", "node.rename"]);
      expect(await actions({ since: "2030-01-01T00:00:02Z", until: "2030-01-01T00:00:04Z" })).toEqual([
        "nodes.other",
        "node.tags",
      ]);
      const bad = await rejection(listAudit(ctx, actorOf(auditor), { since: "yesterday" }));
      expect(bad.status).toBe(400);
      expect(bad.issues?.[0]?.path).toBe("since");
    });

    it("names targets: users and machines by name, a removed machine by the name its entry recorded", async () => {
      const { db, ctx, admin, auditor } = await world();
      const kept = await createNode(db, "kept", { userId: admin.id });
      const gone = await createNode(db, "gone-box", { userId: admin.id });
      await updateMachine(ctx, actorOf(admin), kept.id, { name: "kept-renamed" });
      await removeMachine(ctx, actorOf(admin), gone.id);
      await db.prisma.auditEvent.create({
        data: { actor: "system", action: "user.role", target: `user:${auditor.id}` },
      });
      const names = new Map(
        (await listAudit(ctx, actorOf(auditor), {})).items.map((e) => [e.action, [e.target, e.targetName]]),
      );
      expect(names.get("node.rename")).toEqual([`node:${kept.id}`, "kept-renamed"]);
      expect(names.get("node.remove")).toEqual([`node:${gone.id}`, "gone-box"]);
      expect(names.get("user.role")).toEqual([`user:${auditor.id}`, "audit@example.com"]);
    });

    it("exports every matching entry as CSV or JSON, past one page, spreadsheet formulas defused", async () => {
      const { db, ctx, admin, auditor } = await world();
      await db.prisma.auditEvent.createMany({
        data: Array.from({ length: 450 }, (_, i) => ({
          at: new Date(Date.parse("2030-01-01T00:00:00Z") + i * 1000),
          actor: `user:${admin.id}`,
          action: i % 2 ? "node.rename" : "user.role",
          target: "node:x",
          detail: JSON.stringify({ note: i === 449 ? '=HYPERLINK("http://evil")' : `n${i}` }),
        })),
      });
      const json = await exportAudit(ctx, actorOf(auditor), { action: "node." }, "json");
      const entries = JSON.parse(json.body) as { action: string; actorName: string }[];
      expect([json.count, json.truncated, entries.length]).toEqual([225, false, 225]);
      expect(new Set(entries.map((e) => e.action))).toEqual(new Set(["node.rename"]));
      expect(entries[0]!.actorName).toBe("root@example.com");
      const csv = await exportAudit(ctx, actorOf(auditor), {}, "csv");
      const lines = csv.body.trimEnd().split("\r\n");
      expect(lines[0]).toBe("at,actor,actor_name,action,target,target_name,detail");
      expect(lines).toHaveLength(451);
      expect(lines[1]).toContain('"{""note"":""=HYPERLINK(\\""http://evil\\"")""}"');
      expect(csvField("=1+1")).toBe("'=1+1");
      expect(csvField("a,b")).toBe('"a,b"');
      expect(csvField('say "hi"')).toBe('"say ""hi"""');
      expect((await rejection(exportAudit(ctx, actorOf(admin, ["machines:read"]), {}, "csv"))).status).toBe(
        403,
      );
    });

    it("is for holders of logs:read only", async () => {
      const { db, ctx, admin } = await world();
      const member = await createUser(db, "member", "m@example.com");
      expect((await rejection(listAudit(ctx, actorOf(member), {}))).status).toBe(403);
      expect((await rejection(listAudit(ctx, actorOf(admin, ["machines:read"]), {}))).status).toBe(403);
      expect((await listAudit(ctx, actorOf(admin, ["logs:read"]), {})).total).toBe(0);
    });
  });
}
