#!/usr/bin/env node
// npm run test:reliability [-- --long]: the tests a security reviewer of a
// VPN would write, by category (scripts/lib/reliability.mjs): faults
// survived, bad input refused, access enforced, the web's defences, load.
// The short budget is what `npm test` runs too; --long gives the bad-input
// tables 25 times the inputs, the soak five minutes, and fuzzes the WireGuard
// core with cargo-fuzz (scripts/fuzz-wasm.sh). Prints per category the cases
// tried and the failures, and ends with "N passed, N failed".
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CATEGORIES, report, resolveCategories, summarize } from "./lib/reliability.mjs";
import { ROOT, setupAll } from "./setup.mjs";

const long = process.argv.includes("--long");
const say = (msg) => process.stderr.write(`trellis reliability: ${msg}\n`);

try {
  await setupAll();
} catch (err) {
  say(`setup failed: ${err instanceof Error ? err.message : String(err)}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}

const files = resolveCategories(ROOT, CATEGORIES);
const outDir = join(ROOT, "test-results");
mkdirSync(outDir, { recursive: true });
const jsonOut = join(outDir, "reliability.json");
const casesOut = join(outDir, "reliability-cases.jsonl");
rmSync(jsonOut, { force: true });
rmSync(casesOut, { force: true });

const unique = [...new Set(Object.values(files).flat())];
say(`${unique.length} files in ${Object.keys(files).length} categories, ${long ? "long" : "short"} budget`);
spawnSync(
  process.execPath,
  [
    join(ROOT, "node_modules/vitest/vitest.mjs"),
    "run",
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${jsonOut}`,
    ...unique,
  ],
  {
    cwd: ROOT,
    stdio: "inherit",
    env: {
      NEXT_TELEMETRY_DISABLED: "1",
      ...process.env,
      TRELLIS_RELIABILITY: long ? "long" : "short",
      TRELLIS_RELIABILITY_CASES: casesOut,
    },
  },
);
const vitest = existsSync(jsonOut) ? JSON.parse(readFileSync(jsonOut, "utf8")) : { testResults: [] };
const cases = existsSync(casesOut)
  ? readFileSync(casesOut, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  : [];
const rows = summarize(ROOT, files, vitest, cases);

if (long) {
  // The WireGuard core's receive path under libFuzzer, bounded in time.
  const fuzz = spawnSync("bash", [join(ROOT, "scripts/fuzz-wasm.sh")], {
    cwd: ROOT,
    stdio: "inherit",
    env: { ...process.env, FUZZ_SECONDS: process.env.FUZZ_SECONDS ?? "300" },
  });
  const bad = rows.find((r) => r.category === "bad input");
  if (fuzz.status === 0) bad.passed += 1;
  else {
    bad.failed += 1;
    bad.failures.push("scripts/fuzz-wasm.sh (cargo-fuzz on Device::receive)");
  }
}

console.log(report(rows, long));
process.exit(rows.some((r) => r.failed > 0) ? 1 : 0);
