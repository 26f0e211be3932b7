// The reliability suite's table and report: every file a category names
// exists (a renamed test would otherwise vanish from the report), every
// bad-input table is found, and the report counts per category and ends
// with the line CI reads.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain ESM script without types
import { CATEGORIES, report, resolveCategories, summarize } from "./lib/reliability.mjs";

const ROOT = join(import.meta.dirname, "..");

type Row = { category: string; passed: number; failed: number; cases: number; failures: string[] };

describe("npm run test:reliability", () => {
  it("names only files that exist, and finds every bad-input table", () => {
    const files = resolveCategories(ROOT) as Record<string, string[]>;
    expect(Object.keys(files)).toEqual(Object.keys(CATEGORIES));
    expect(files["bad input"]).toEqual(
      expect.arrayContaining([
        "relay/src/server.fuzz.test.ts",
        "client/src/paths/derp/client.fuzz.test.ts",
        "proto/src/stun.fuzz.test.ts",
        "control/src/http/node-api.fuzz.test.ts",
        "e2e/tests/api-fuzz.test.ts",
      ]),
    );
    expect(() => resolveCategories(ROOT, { faults: ["no/such.test.ts"] })).toThrow(/does not exist/);
  });

  it("reports per category: cases tried, generated inputs, failures by name, then N passed, N failed", () => {
    const files = { faults: ["a.test.ts"], "bad input": ["b.test.ts", "c.test.ts"] };
    const vitest = {
      testResults: [
        {
          name: join(ROOT, "a.test.ts"),
          status: "passed",
          assertionResults: [{ status: "passed" }, { status: "skipped" }],
        },
        {
          name: join(ROOT, "b.test.ts"),
          status: "failed",
          assertionResults: [{ status: "passed" }, { status: "failed", fullName: "refuses garbage" }],
        },
      ],
    };
    const cases = [
      { category: "bad input", table: "x", cases: 300 },
      { category: "bad input", table: "y", cases: 200 },
    ];
    const rows = summarize(ROOT, files, vitest, cases) as Row[];
    expect(rows.map((r) => [r.category, r.passed, r.failed, r.cases])).toEqual([
      ["faults", 1, 0, 0],
      ["bad input", 1, 2, 500],
    ]);
    expect(rows[1]!.failures).toEqual(["b.test.ts › refuses garbage", "c.test.ts: not run"]);
    const text = report(rows, false) as string;
    expect(text).toMatch(/bad input +3 cases tried in 2 files, 500 generated inputs: 1 passed, 2 failed/);
    expect(text.split("\n").at(-1)).toBe("2 passed, 2 failed");
  });
});
