import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { run } from "./cli";

function capture(argv: string[]) {
  let out = "";
  const code = run(argv, (s) => (out += s));
  return { code, out };
}

describe("trellis CLI", () => {
  it("prints its version", () => {
    expect(capture(["version"])).toEqual({ code: 0, out: "trellis 0.1.0\n" });
  });

  it("prints a stable node public key and never the private key", () => {
    const dir = mkdtempSync(join(tmpdir(), "trellis-cli-"));
    try {
      const first = capture(["key", "--state-dir", dir]);
      expect(first.code).toBe(0);
      expect(first.out).toMatch(/^nodekey:[0-9a-f]{64}\n$/);
      expect(capture(["key", "--state-dir", dir]).out).toBe(first.out);
      expect(first.out).not.toMatch(/privkey/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("rejects unknown options", () => {
    expect(() => capture(["key", "--bogus"])).toThrow(/bogus/);
  });
});
