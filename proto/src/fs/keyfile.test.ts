import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { afterEach, describe, expect, it } from "vitest";
import { loadOrCreateKeyFile } from "./keyfile";

const dir = mkdtempSync(join(tmpdir(), "trellis-key-"));
afterEach(() => rmSync(join(dir, "k"), { recursive: true, force: true }));

describe("key files", () => {
  it("creates a 0600 key once and loads the same key after", () => {
    const path = join(dir, "k", "node.key");
    const a = loadOrCreateKeyFile(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, "utf8")).toMatch(/^privkey:[0-9a-f]{64}\n$/);
    const b = loadOrCreateKeyFile(path);
    expect(b.privateKey).toEqual(a.privateKey);
    expect(a.publicKey).toEqual(x25519.getPublicKey(a.privateKey));
  });

  it("refuses a key file that others can read", () => {
    const path = join(dir, "k", "node.key");
    loadOrCreateKeyFile(path);
    chmodSync(path, 0o644);
    expect(() => loadOrCreateKeyFile(path)).toThrow(/must be 0600/);
  });
});
