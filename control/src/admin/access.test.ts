// What a member's own machine may open on another, from the destination's
// compiled filter: the ports a policy allows (merged), nothing where it
// allows nothing, the rule for one port, and only from the caller's own
// machine.
import { describe, expect, it } from "vitest";
import { PROVIDERS, testDatabases } from "../testing/db";
import { machineAccess } from "./access";
import { savePolicyText } from "./policy";
import { actorOf, adminContext, createNode, createUser, rejection } from "./testing";

const POLICY = `{
  "groups": { "group:eng": ["alice@example.com"] },
  "tagOwners": { "tag:office": ["autogroup:admin"] },
  "acls": [
    { "action": "accept", "src": ["group:eng"], "dst": ["tag:office:22,80"] },
    { "action": "accept", "src": ["alice@example.com"], "dst": ["tag:office:81-90,5900"] },
    { "action": "accept", "src": ["bob@example.com"], "dst": ["tag:office:80"], "proto": "udp" },
  ],
}`;

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`machineAccess on ${provider}`, () => {
    const dbs = testDatabases(provider);

    async function tailnet() {
      const db = await dbs.open();
      const ctx = adminContext(db);
      const admin = await createUser(db, "admin", "root@example.com");
      const alice = await createUser(db, "member", "alice@example.com");
      const bob = await createUser(db, "member", "bob@example.com");
      await createNode(db, "alice-browser", { userId: alice.id });
      await createNode(db, "bob-browser", { userId: bob.id });
      await createNode(db, "root-browser", { userId: admin.id });
      await createNode(db, "office", { tags: ["tag:office"] });
      await createNode(db, "lan-router", {
        tags: ["tag:office"],
        advertisedRoutes: ["192.168.40.0/24", "192.168.41.0/24"],
        approvedRoutes: ["192.168.40.0/24"],
      });
      await savePolicyText(ctx, actorOf(admin), { text: POLICY });
      return { ctx, admin, alice, bob };
    }

    it("lists the TCP ports the destination accepts from the caller's machine, merged", async () => {
      const { ctx, admin, alice, bob } = await tailnet();
      const a = await machineAccess(ctx, actorOf(alice), { from: "alice-browser", machine: "office" });
      expect(a.machine.name).toBe("office");
      expect(a.tcp).toEqual([
        { first: 22, last: 22 },
        { first: 80, last: 90 },
        { first: 5900, last: 5900 },
      ]);
      // A UDP-only rule opens no TCP port: to a member that machine might as well not exist.
      const b = await rejection(
        machineAccess(ctx, actorOf(bob), { from: "bob-browser", machine: "office.trellis.test" }),
      );
      expect(b).toMatchObject({ status: 404, message: "no machine called office.trellis.test" });
      // Whoever may read the policy learns that nothing is open.
      expect(
        (await machineAccess(ctx, actorOf(admin), { from: "root-browser", machine: "office" })).tcp,
      ).toEqual([]);
    });

    it("explains one port: the rule that allows it, or that none does", async () => {
      const { ctx, alice } = await tailnet();
      const yes = await machineAccess(ctx, actorOf(alice), {
        from: "alice-browser",
        machine: "office",
        port: 22,
      });
      expect(yes.port).toMatchObject({ allowed: true, rule: { kind: "acls", index: 0 } });
      const no = await machineAccess(ctx, actorOf(alice), {
        from: "alice-browser",
        machine: "office",
        port: 23,
      });
      expect(no.port).toMatchObject({ allowed: false, rule: null });
      expect(no.port!.explanation).toMatch(/alice-browser → office port 23\/tcp: denied/);
    });

    it("answers for an address behind a subnet router from the router's filter, approved routes only", async () => {
      const { ctx, alice, bob } = await tailnet();
      // The policy grants the LAN to group:eng; Bob is not in it.
      const grant = POLICY.replace(
        '"acls": [',
        '"acls": [\n    { "action": "accept", "src": ["group:eng"], "dst": ["192.168.40.0/24:22"] },',
      );
      const admin = actorOf({ id: "x", email: "root@example.com", name: "root", role: "admin" });
      await savePolicyText(ctx, admin, { text: grant });
      const a = await machineAccess(ctx, actorOf(alice), {
        from: "alice-browser",
        machine: "192.168.40.7",
        port: 22,
      });
      expect(a.machine.name).toBe("192.168.40.7 (via lan-router)");
      expect(a.tcp).toEqual([{ first: 22, last: 22 }]);
      expect(a.port).toMatchObject({ allowed: true });
      // An advertised route not yet approved leads nowhere; nor does an address no router serves.
      for (const machine of ["192.168.41.7", "10.9.9.9"]) {
        const r = await rejection(machineAccess(ctx, actorOf(alice), { from: "alice-browser", machine }));
        expect(r.status).toBe(404);
      }
      expect(
        (await rejection(machineAccess(ctx, actorOf(bob), { from: "bob-browser", machine: "192.168.40.7" })))
          .status,
      ).toBe(404);
    });

    it("answers only from the caller's own machine, and refuses bad queries", async () => {
      const { ctx, alice, bob } = await tailnet();
      const other = await rejection(
        machineAccess(ctx, actorOf(bob), { from: "alice-browser", machine: "office" }),
      );
      expect(other.status).toBe(404);
      expect(
        (await rejection(machineAccess(ctx, actorOf(alice), { from: "alice-browser", machine: "nope" })))
          .status,
      ).toBe(404);
      const bad = await rejection(
        machineAccess(ctx, actorOf(alice), { from: "alice-browser", machine: "office", port: 0 }),
      );
      expect(bad.status).toBe(400);
    });
  });
}
