import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "@trellis/db";
import { createLogger } from "@trellis/log";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { createNode, createUser } from "./admin/testing";
import { loadConfig } from "./config";
import type { ControlEvent } from "./events";
import { ControlRuntime } from "./runtime";
import { EXTERNAL_ORIGIN } from "./sqlite-watch";

const dir = mkdtempSync(join(tmpdir(), "trellis-watch-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("a server on SQLite", () => {
  it("recomputes every map when another process commits to its file, and not for its own commits", async () => {
    const url = `file:${join(dir, "trellis.db")}`;
    const rt = await ControlRuntime.open(
      { ...loadConfig({}, dir), databaseUrl: url },
      createLogger("test", "silent"),
      { controlKey: generateKeyPair(), externalWrites: { checkMs: 20 } },
    );
    const other = await openDatabase(url);
    try {
      const external: ControlEvent[] = [];
      rt.events.subscribe((e) => {
        if (e.origin === EXTERNAL_ORIGIN) external.push(e);
      });
      // The server's own writes: its snapshot is built, and nothing is announced as someone else's.
      const ann = await createUser(rt.db, "member", "ann@example.com");
      const node = await createNode(rt.db, "pending", { userId: ann.id, authorized: false });
      expect((await rt.topology()).nodes).toEqual([]);
      await new Promise((r) => setTimeout(r, 200));
      expect(external).toEqual([]);

      // Another process approves the machine (as trellis-server does): the server rebuilds.
      await other.prisma.node.update({ where: { id: node.id }, data: { authorized: true } });
      await until(() => external.length === 3, "the other process's commit to be noticed");
      expect(external.map((e) => e.type)).toEqual(["nodes", "policy", "settings"]);
      expect((await rt.topology()).nodes.map((n) => n.hostname)).toEqual(["pending"]);

      // Reads by the other process are no commits.
      await other.prisma.node.findMany();
      await new Promise((r) => setTimeout(r, 200));
      expect(external).toHaveLength(3);
    } finally {
      await other.close();
      await rt.close();
    }
  });
});
