// The reliability suite's categories and its report: which test files prove
// what (faults survived, bad input refused, access enforced, the web's
// defences, load), and the per-category summary `npm run test:reliability`
// prints from Vitest's JSON results and the cases the bad-input tables
// recorded (@trellis/proto/fuzz). Pure: scripts/reliability.mjs runs it.
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";

/** Category → files (paths from the repo root; a trailing `*.fuzz.test.ts` glob means every such file). */
export const CATEGORIES = {
  faults: [
    "e2e/tests/control-outage.test.ts",
    "e2e/tests/control.test.ts",
    "control/src/scaleout.test.ts",
    "e2e/tests/scale-out-faults.test.ts",
    "control/src/disk-faults.test.ts",
    "relay/src/server.test.ts",
    "relay/src/half-open.test.ts",
    "e2e/tests/nat-traversal.test.ts",
  ],
  "bad input": [
    "**/*.fuzz.test.ts",
    "e2e/tests/api-fuzz.test.ts",
    "policy/src/property.test.ts",
    "wasm/ts/engine.fuzz.test.ts",
    "wasm/ts/aead.test.ts",
  ],
  access: [
    "e2e/tests/access-matrix.test.ts",
    "e2e/tests/admin-api.test.ts",
    "control/src/http/node-api.test.ts",
    "control/src/node-auth.test.ts",
    "relay/src/admission.test.ts",
    "e2e/tests/wireguard-peer-engine.test.ts",
  ],
  web: [
    "e2e/tests/secrets-in-logs.test.ts",
    "e2e/tests/console.test.ts",
    "e2e/tests/login-throttle.test.ts",
    "web/src/lib/security-headers.test.ts",
  ],
  load: ["e2e/tests/control-soak.test.ts"],
};

const SKIP_DIRS = new Set(["node_modules", ".git", ".next", "target", "pkg", "dist", "build", ".turbo"]);

function walk(dir, out) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) walk(join(dir, e.name), out);
    } else out.push(join(dir, e.name));
  }
  return out;
}

/** The files of each category, resolved against `root` (a missing named file is an error: the table would lie). */
export function resolveCategories(root, categories = CATEGORIES) {
  const all = walk(root, []).map((f) => relative(root, f));
  const have = new Set(all);
  const out = {};
  for (const [cat, entries] of Object.entries(categories)) {
    const files = [];
    for (const entry of entries) {
      if (entry.startsWith("**/")) {
        const suffix = entry.slice(3).replace("*", "");
        files.push(...all.filter((f) => f.endsWith(suffix)).sort());
      } else if (have.has(entry)) files.push(entry);
      else throw new Error(`reliability: ${cat} names ${entry}, which does not exist`);
    }
    out[cat] = [...new Set(files)];
  }
  return out;
}

/**
 * Per category: tests passed and failed, inputs the tables generated, and
 * the failures by name. `vitest` is Vitest's JSON report; `cases` the lines
 * the tables recorded.
 */
export function summarize(root, files, vitest, cases) {
  const byFile = new Map();
  for (const r of vitest.testResults ?? []) byFile.set(relative(root, r.name), r);
  const rows = [];
  for (const [cat, list] of Object.entries(files)) {
    const row = {
      category: cat,
      files: list.length,
      passed: 0,
      failed: 0,
      skipped: 0,
      cases: 0,
      failures: [],
    };
    for (const f of list) {
      const r = byFile.get(f);
      if (!r) {
        row.failed += 1;
        row.failures.push(`${f}: not run`);
        continue;
      }
      for (const a of r.assertionResults ?? []) {
        if (a.status === "passed") row.passed += 1;
        else if (a.status === "failed") {
          row.failed += 1;
          row.failures.push(`${f} › ${a.fullName ?? a.title}`);
        } else row.skipped += 1;
      }
      // A file that failed to load has no failed test but failed all the same.
      if (r.status === "failed" && !(r.assertionResults ?? []).some((a) => a.status === "failed")) {
        row.failed += 1;
        row.failures.push(`${f}: ${(r.message ?? "failed to run").split("\n")[0]}`);
      }
    }
    row.cases = cases.filter((c) => c.category === cat).reduce((n, c) => n + c.cases, 0);
    rows.push(row);
  }
  return rows;
}

/** The report: a line per category, the failures, and the closing "N passed, N failed". */
export function report(rows, long) {
  const lines = [`reliability (${long ? "long" : "short"} budget)`];
  const w = Math.max(...rows.map((r) => r.category.length));
  for (const r of rows) {
    const cases = r.cases ? `, ${r.cases} generated inputs` : "";
    const skipped = r.skipped ? `, ${r.skipped} skipped` : "";
    lines.push(
      `  ${r.category.padEnd(w)}  ${r.passed + r.failed} cases tried in ${r.files} files${cases}: ${r.passed} passed, ${r.failed} failed${skipped}`,
    );
    for (const f of r.failures) lines.push(`    failed: ${f}`);
  }
  const passed = rows.reduce((n, r) => n + r.passed, 0);
  const failed = rows.reduce((n, r) => n + r.failed, 0);
  lines.push(`${passed} passed, ${failed} failed`);
  return lines.join("\n");
}
