#!/usr/bin/env node
// npm test: set up what the suites need, run every test (TypeScript unit,
// integration and e2e under Vitest; Rust unit tests of wasm/ under cargo), and
// end with one line "N passed, N failed, N skipped".
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, setupAll } from "./setup.mjs";

const args = process.argv.slice(2);
const totals = { passed: 0, failed: 0, skipped: 0 };

function say(msg) {
  process.stderr.write(`trellis test: ${msg}\n`);
}

try {
  await setupAll();
} catch (err) {
  say(`setup failed: ${err instanceof Error ? err.message : String(err)}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}

// System packages (Chromium, PostgreSQL, network tools): installed when we can
// (root with apt); otherwise the suites that need them skip with a reason.
if (process.getuid?.() === 0) {
  const res = spawnSync("bash", [join(ROOT, "scripts/setup-system.sh")], { stdio: "inherit" });
  if (res.status !== 0) say("some system packages could not be installed; their suites will skip");
}

// --- Vitest: every TypeScript suite -------------------------------------------
const resultsDir = join(ROOT, "test-results");
mkdirSync(resultsDir, { recursive: true });
const jsonOut = join(resultsDir, "vitest.json");
const vitest = spawnSync(
  process.execPath,
  [
    join(ROOT, "node_modules/vitest/vitest.mjs"),
    "run",
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${jsonOut}`,
    ...args,
  ],
  { cwd: ROOT, stdio: "inherit", env: { NEXT_TELEMETRY_DISABLED: "1", ...process.env } },
);
if (existsSync(jsonOut)) {
  const r = JSON.parse(readFileSync(jsonOut, "utf8"));
  totals.passed += r.numPassedTests;
  totals.failed += r.numFailedTests;
  totals.skipped += r.numPendingTests + r.numTodoTests;
  // A file that fails to load has no failed tests but is a failure all the same.
  const brokenFiles = (r.testResults ?? []).filter(
    (f) => f.status === "failed" && f.assertionResults.every((a) => a.status !== "failed"),
  );
  totals.failed += brokenFiles.length;
  if (vitest.status !== 0 && totals.failed === 0) totals.failed += 1;
} else {
  say("vitest produced no results");
  totals.failed += 1;
}

// --- cargo: Rust unit tests of the WASM crate (host target) ---------------------
if (args.length === 0) {
  const cargo = spawnSync("cargo", ["test", "--release", "--manifest-path", join(ROOT, "wasm/Cargo.toml")], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, PATH: `${process.env.HOME}/.cargo/bin:${process.env.PATH}` },
  });
  if (cargo.error) {
    say("cargo not found: the Rust tests of wasm/ were not run (install Rust to run them)");
    totals.skipped += 1;
  } else {
    process.stdout.write(cargo.stdout);
    process.stderr.write(
      cargo.stderr
        .split("\n")
        .filter((l) => /error|warning|FAILED|panicked/.test(l))
        .join("\n"),
    );
    let seen = false;
    for (const m of cargo.stdout.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/g)) {
      seen = true;
      totals.passed += Number(m[1]);
      totals.failed += Number(m[2]);
      totals.skipped += Number(m[3]);
    }
    if (cargo.status !== 0 && !seen) {
      say("cargo test failed before running tests");
      totals.failed += 1;
    }
  }
}

console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 ? 1 : 0);
