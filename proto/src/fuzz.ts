// Budgets of the bad-input tables (property tests with fast-check): a short
// run inside `npm test`, a long one under `npm run test:reliability -- --long`.
// Each table records how many inputs it tried, so the reliability report can
// say per category what was tried (not only how many tests passed).
// Node-only (tests); not exported to browsers.
import { appendFileSync } from "node:fs";

/** Whether this is the long run (`TRELLIS_RELIABILITY=long`). */
export const LONG = process.env.TRELLIS_RELIABILITY === "long";

/** Inputs per property: `short` in the normal run, 25 times as many in the long one. */
export function fuzzRuns(short: number): number {
  return LONG ? short * 25 : short;
}

/** Note `cases` inputs tried under `category` (for the reliability report; a no-op otherwise). */
export function recordCases(category: string, table: string, cases: number): void {
  const file = process.env.TRELLIS_RELIABILITY_CASES;
  if (file) appendFileSync(file, `${JSON.stringify({ category, table, cases })}\n`);
}
