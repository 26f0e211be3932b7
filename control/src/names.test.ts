// A removed machine's MagicDNS name stays with its owner for 30 days: another
// owner's new machine gets a suffixed name (and cannot be renamed to it),
// the same owner's next machine takes it back, and after 30 days anyone may.
// Every way a machine goes retires its name: removal by an admin, a node
// leaving, its user's removal.
import { describe, expect, it } from "vitest";
import { encodeKey } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { removeMachine, updateMachine } from "./admin/machines";
import { removeUser } from "./admin/users";
import { actorOf, adminContext, createUser } from "./admin/testing";
import { ControlError } from "./errors";
import { NAME_RETIRED_MS } from "./names";
import { createPreAuthKey } from "./preauth";
import { registerNode } from "./register";
import { PROVIDERS, testDatabases } from "./testing/db";

const newKey = () => encodeKey("nodekey", generateKeyPair().publicKey);
const opts = { dnsDomain: "trellis.internal" };

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`retired machine names on ${provider}`, () => {
    const dbs = testDatabases(provider);

    async function world() {
      const db = await dbs.open();
      const ctx = adminContext(db);
      const admin = await createUser(db, "admin", "ada@example.com");
      const member = await createUser(db, "member", "mallory@example.com");
      const server = (await createPreAuthKey(db, { tags: ["tag:server"], reusable: true }, "system")).key;
      const mallory = (await createPreAuthKey(db, { userId: member.id, reusable: true }, "system")).key;
      const register = async (key: string, hostname: string) =>
        (await registerNode(db, newKey(), { preAuthKey: key, hostname }, opts)).node;
      return { db, ctx, admin, member, server, mallory, register };
    }

    it("keeps a removed server's name from another owner's machine, and gives it back to its own", async () => {
      const { db, ctx, admin, server, mallory, register, member } = await world();
      const prod = await register(server, "db-prod");
      expect(prod.name).toBe("db-prod");
      await removeMachine(ctx, actorOf(admin), prod.id);
      // A member's machine asking for the name gets another.
      const taker = await register(mallory, "db-prod");
      expect(taker.name).toBe("db-prod-2");
      // Nor can it be renamed to it.
      const err = await updateMachine(ctx, actorOf(member), taker.id, { name: "db-prod" }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(ControlError.of(err)).toMatchObject({ status: 409, message: /kept for that machine's owner/ });
      // The server reinstalled with its tag takes its name back.
      expect((await register(server, "db-prod")).name).toBe("db-prod");
      expect(await db.prisma.retiredName.count({ where: { name: "db-prod" } })).toBe(0);
    });

    it("frees the name after 30 days", async () => {
      const { db, ctx, admin, server, mallory, register } = await world();
      const prod = await register(server, "billing");
      await removeMachine(ctx, actorOf(admin), prod.id);
      await db.prisma.retiredName.update({
        where: { name: "billing" },
        data: { retiredAt: new Date(Date.now() - NAME_RETIRED_MS - 60_000) },
      });
      expect((await register(mallory, "billing")).name).toBe("billing");
    });

    it("retires the names of a removed user's machines", async () => {
      const { ctx, admin, member, mallory, server, register } = await world();
      const laptop = await register(mallory, "mallory-laptop");
      expect(laptop.name).toBe("mallory-laptop");
      await removeUser(ctx, actorOf(admin), member.id);
      expect((await register(server, "mallory-laptop")).name).toBe("mallory-laptop-2");
    });
  });
}
