import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { loadOrCreateAuthSecret } from "./auth/secret";
import { loadConfig } from "./config";
import { ControlRuntime } from "./runtime";

const base = mkdtempSync(join(tmpdir(), "trellis-datadir-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const mode = (p: string) => statSync(p).mode & 0o777;

describe("the data directory is private", () => {
  it("a first start creates it 0700 and the SQLite database 0600, whatever the umask", async () => {
    const dataDir = join(base, "fresh", "data");
    const old = process.umask(0o022);
    try {
      const rt = await ControlRuntime.open(
        loadConfig({ TRELLIS_DATA_DIR: dataDir }, base),
        createLogger("t", "silent"),
        {
          controlKey: generateKeyPair(),
        },
      );
      await rt.close();
    } finally {
      process.umask(old);
    }
    expect(mode(dataDir)).toBe(0o700);
    expect(mode(join(dataDir, "trellis.db"))).toBe(0o600);
  });

  it("an existing world-readable one is tightened, and its database too", async () => {
    const dataDir = join(base, "old");
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    const rt = await ControlRuntime.open(
      loadConfig({ TRELLIS_DATA_DIR: dataDir }, base),
      createLogger("t", "silent"),
      {
        controlKey: generateKeyPair(),
      },
    );
    await rt.close();
    chmodSync(join(dataDir, "trellis.db"), 0o644);
    const again = await ControlRuntime.open(
      loadConfig({ TRELLIS_DATA_DIR: dataDir }, base),
      createLogger("t", "silent"),
      {
        controlKey: generateKeyPair(),
      },
    );
    await again.close();
    expect(mode(dataDir)).toBe(0o700);
    expect(mode(join(dataDir, "trellis.db"))).toBe(0o600);
  });

  it("auth.secret is created 0600 and refused when others can read it", () => {
    const dir = join(base, "secret");
    const secret = loadOrCreateAuthSecret(null, dir);
    expect(mode(join(dir, "auth.secret"))).toBe(0o600);
    expect(loadOrCreateAuthSecret(null, dir)).toBe(secret);
    chmodSync(join(dir, "auth.secret"), 0o644);
    expect(() => loadOrCreateAuthSecret(null, dir)).toThrow(/must be 0600/);
    writeFileSync(join(dir, "auth.secret"), "x".repeat(40), { mode: 0o600 });
    expect(loadOrCreateAuthSecret("configured-secret-of-32-characters!!", dir)).toBe(
      "configured-secret-of-32-characters!!",
    );
  });
});
