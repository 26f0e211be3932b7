import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { loadConfig } from "./config";
import { ControlRuntime } from "./runtime";

const dir = mkdtempSync(join(tmpdir(), "trellis-health-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("health", () => {
  it("tells anonymous callers only that the database is unavailable, never its error", async () => {
    const rt = await ControlRuntime.open(
      loadConfig({ TRELLIS_DATA_DIR: dir }, dir),
      createLogger("t", "silent"),
      {
        controlKey: generateKeyPair(),
      },
    );
    try {
      expect((await rt.health({ detail: false })).database.status).toBe("ok");
      rt.db.ping = () =>
        Promise.reject(
          new Error("SQLITE_CANTOPEN: unable to open database file /srv/secret-layout/trellis.db"),
        );
      const anonymous = await rt.health({ detail: false });
      expect(anonymous.status).toBe("degraded");
      expect(anonymous.database).toMatchObject({ status: "error" });
      expect(JSON.stringify(anonymous)).not.toMatch(/SQLITE|secret-layout/);
      expect((await rt.health()).database.error).toMatch(/SQLITE_CANTOPEN/);
    } finally {
      await rt.close();
    }
  });
});
