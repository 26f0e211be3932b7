// A full disk and a read-only database, on a real filesystem the test makes
// (a 4 MiB tmpfs; root only): callers get a clear refusal (503
// database_full, over the node API's HTTP too) and nothing is half-written,
// /api/health says writes are refused while reads still work, the database
// passes SQLite's integrity check, and everything works again once space
// returns. A database on a read-only filesystem is refused at startup with
// a message that says so, instead of SQLite's "disk I/O error".
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { applyPolicy, getPolicy } from "./admin/policy";
import { localOperator } from "./auth/actor";
import { loadConfig } from "./config";
import { clearWriteFault } from "./db-errors";
import { ControlError } from "./errors";
import { ControlRuntime } from "./runtime";
import { apiRejection, preAuthKey, serveNodeApi, TestNode } from "./testing/control";

const log = createLogger("test", "silent");
const operator = localOperator();

/** A fresh tmpfs of `size`, or null where this process may not mount one. */
function smallFilesystem(size: string): { dir: string; remount(opts: string): void; remove(): void } | null {
  if (process.getuid?.() !== 0) return null;
  const dir = mkdtempSync(join(tmpdir(), "trellis-disk-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir], { stdio: "ignore" });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  return {
    dir,
    remount: (opts) => execFileSync("mount", ["-o", `remount,${opts}`, dir]),
    remove: () => {
      execFileSync("umount", ["-l", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const canMount = (() => {
  const fs = smallFilesystem("1m");
  fs?.remove();
  return fs !== null;
})();

/** Fill the filesystem at `dir` with files of its own; returns their paths. */
function fill(dir: string): string[] {
  const files: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    const f = join(dir, `filler-${i}`);
    try {
      writeFileSync(f, Buffer.alloc(16 * 1024));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOSPC") return files;
      throw err;
    }
    files.push(f);
  }
  throw new Error("the filesystem never filled");
}

describe.skipIf(!canMount)("the control server on a full disk and a read-only database", () => {
  it("refuses changes clearly while the disk is full, changes nothing, reports it, and recovers when space returns", async () => {
    const fs = smallFilesystem("4m")!;
    const rt = await ControlRuntime.open(loadConfig({ TRELLIS_DATA_DIR: fs.dir }, fs.dir), log, {
      controlKey: generateKeyPair(),
    });
    const server = await serveNodeApi(rt, {});
    try {
      clearWriteFault();
      await applyPolicy(
        rt,
        operator,
        '// before the disk filled\n{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}',
      );
      const before = await getPolicy(rt, operator);
      const key = await preAuthKey(rt, { tags: ["tag:server"], reusable: true });
      const fillers = fill(fs.dir);

      // A change as large as a real policy: refused, with a message people can act on.
      const big = `// ${"a long comment ".repeat(20_000)}\n{}`;
      const err = await applyPolicy(rt, operator, big).then(
        () => null,
        (e: unknown) => e,
      );
      const refused = ControlError.of(err);
      expect(refused, String(err)).toMatchObject({ code: "database_full", status: 503 });
      expect(refused!.message).toMatch(/disk is full.*nothing was changed/);
      // Over HTTP, a node registering gets the same refusal, not a 500.
      const node = new TestNode(rt);
      expect(await apiRejection(node.register(key, "while-full"))).toMatchObject({
        status: 503,
        code: "database_full",
      });
      // Reads work; the policy is the one before; health says writes are refused.
      expect((await getPolicy(rt, operator)).version).toBe(before.version);
      const health = await rt.health({ detail: false });
      expect(health.status).toBe("degraded");
      expect(health.database).toMatchObject({ status: "error", writes: "full" });
      expect(health.database.error).toMatch(/disk is full/);

      for (const f of fillers) rmSync(f);
      expect((await rt.health()).database).toMatchObject({ status: "ok", writes: "ok" });
      const after = await applyPolicy(rt, operator, "// after\n{}");
      expect(after.version).toBeGreaterThan(before.version);
      expect((await node.register(key, "after-full")).created).toBe(true);
      const check =
        await rt.db.prisma.$queryRawUnsafe<{ integrity_check: string }[]>("PRAGMA integrity_check");
      expect(check).toEqual([{ integrity_check: "ok" }]);
    } finally {
      await server.close();
      await rt.close();
      fs.remove();
    }
  });

  it("refuses to start on a read-only filesystem with a message that says so, and starts once it is writable", async () => {
    const fs = smallFilesystem("4m")!;
    const config = loadConfig({ TRELLIS_DATA_DIR: fs.dir }, fs.dir);
    try {
      const rt = await ControlRuntime.open(config, log, { controlKey: generateKeyPair() });
      const saved = await applyPolicy(rt, operator, "// kept\n{}");
      await rt.close();
      fs.remount("ro");
      const err = await ControlRuntime.open(config, log, { controlKey: generateKeyPair() }).then(
        (r) => r.close().then(() => null),
        (e: unknown) => e,
      );
      expect(String(err)).toMatch(/read-only filesystem: Trellis needs to write its database there/);
      fs.remount("rw");
      const again = await ControlRuntime.open(config, log, { controlKey: generateKeyPair() });
      try {
        expect((await getPolicy(again, operator)).version).toBe(saved.version);
      } finally {
        await again.close();
      }
    } finally {
      fs.remove();
    }
  });
});
