// npm start and npm test run setup every time: with nothing changed it must do
// nothing (no install, no generation, no web build) and say nothing — a
// restart that rebuilt the web app took a minute instead of seconds.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: plain JavaScript (setup runs before any dependency is installed)
import { webInputsHash } from "./setup.mjs";

const ROOT = join(import.meta.dirname, "..");

function setup(): { status: number | null; stderr: string } {
  const res = spawnSync(process.execPath, [join(ROOT, "scripts/setup.mjs")], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 600_000,
  });
  return { status: res.status, stderr: res.stderr };
}

describe("setup", () => {
  it("does not count the files next build writes itself as inputs of the web build", () => {
    const env = join(ROOT, "web", "next-env.d.ts");
    const before = existsSync(env) ? readFileSync(env) : null;
    try {
      rmSync(env, { force: true });
      const without = (webInputsHash as () => string)();
      writeFileSync(env, '/// <reference types="next" />\n');
      expect((webInputsHash as () => string)()).toBe(without);
    } finally {
      if (before) writeFileSync(env, before);
      else rmSync(env, { force: true });
    }
  });

  it("does nothing and prints nothing the second time, the web build's own files included", () => {
    // The first run may have work to do (a fresh checkout, a changed input); the second must not.
    expect(setup().status).toBe(0);
    const second = setup();
    expect(second.status).toBe(0);
    expect(second.stderr).toBe("");
  }, 1_200_000);
});
