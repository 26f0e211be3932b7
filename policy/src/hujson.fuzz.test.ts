// Bad input in policy files, as tables of generated cases (fast-check): any
// text, and real policies from testdata with bytes deleted, duplicated or
// replaced. validatePolicy either accepts or throws a PolicyError whose
// issues carry a line and column inside the text — nothing else, however
// mangled the file.
import { readFileSync, readdirSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fuzzRuns, recordCases } from "@trellis/proto/fuzz";
import { PolicyError } from "./errors";
import { validatePolicy } from "./validate";

const DIR = new URL("./testdata/filters/", import.meta.url);
const POLICIES = readdirSync(DIR)
  .filter((f) => f.endsWith(".hujson"))
  .map((f) => readFileSync(new URL(f, DIR), "utf8"));

function check(text: string): void {
  try {
    validatePolicy(text, { runTests: false });
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    const lines = text.split("\n").length;
    for (const p of (err as PolicyError).problems) {
      if (p.line !== undefined) {
        expect(p.line).toBeGreaterThanOrEqual(1);
        expect(p.line).toBeLessThanOrEqual(lines + 1);
      }
    }
  }
}

describe("policy files on bad input", () => {
  it("any text: accepted, or a PolicyError with positions inside the text", () => {
    const runs = fuzzRuns(500);
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.json({ maxDepth: 4 })), check), {
      numRuns: runs,
    });
    recordCases("bad input", "policy files: any text", runs);
  });

  it("real policies mangled: bytes deleted, duplicated, replaced", () => {
    expect(POLICIES.length).toBeGreaterThan(3);
    const runs = fuzzRuns(500);
    fc.assert(
      fc.property(
        fc.nat({ max: POLICIES.length - 1 }),
        fc.array(fc.tuple(fc.constantFrom("del", "dup", "set"), fc.nat(), fc.nat({ max: 40 }), fc.char()), {
          minLength: 1,
          maxLength: 5,
        }),
        (i, edits) => {
          let t = POLICIES[i]!;
          for (const [op, at0, n, ch] of edits) {
            const at = at0 % (t.length + 1);
            if (op === "del") t = t.slice(0, at) + t.slice(at + n);
            else if (op === "dup") t = t.slice(0, at) + t.slice(at, at + n) + t.slice(at);
            else t = t.slice(0, at) + ch + t.slice(at + 1);
          }
          check(t);
        },
      ),
      { numRuns: runs },
    );
    recordCases("bad input", "policy files: real ones mangled", runs);
  });
});
