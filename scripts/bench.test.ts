// The report of `npm run bench -- all`: one table with every figure (ratios
// stand out), the machine it was measured on, benchmarks that gave no
// figures named with the reason, and one JSON object holding every key.
import { describe, expect, it } from "vitest";
import { BENCHES, machine, markdown, merged } from "./bench.mjs";

type Result = { name: string; figures: Record<string, number | null> | null; error: string | null };

const results: Result[] = [
  { name: "crypto", figures: { wasm_MBps: 812, ratio_wasm_vs_node: 0.91 }, error: null },
  { name: "relay", figures: { pps: 120000, ratio_100_pairs: 1.4, rss: null }, error: null },
  { name: "browser", figures: null, error: "exited with 1 without figures" },
  { name: "policy", figures: { pps: 9 }, error: null },
];

describe("npm run bench -- all", () => {
  it("knows every benchmark the runner offers", () => {
    expect(Object.keys(BENCHES)).toEqual(
      expect.arrayContaining(["crypto", "relay", "browser", "browser-apps", "tunnel"]),
    );
  });

  it("prints one markdown table with the machine, every figure, ratios in bold, and what was not measured", () => {
    const text = markdown(results, machine()) as string;
    const lines = text.trim().split("\n");
    expect(lines[0]).toMatch(/^Measured on .+ \(\d+ cores, \d+ GiB\), .+, Node v\d+/);
    expect(
      lines.filter((l) => l.startsWith("| ") && !l.startsWith("| benchmark") && !l.startsWith("| ---")),
    ).toHaveLength(7);
    expect(text).toContain("| crypto | `ratio_wasm_vs_node` | **0.91** |");
    expect(text).toContain("| relay | `rss` | n/a |");
    expect(text).toContain("| browser | — | not measured: exited with 1 without figures |");
  });

  it("merges every benchmark's keys into one JSON object, prefixing only clashes", () => {
    expect(merged(results)).toEqual({
      wasm_MBps: 812,
      ratio_wasm_vs_node: 0.91,
      pps: 120000,
      ratio_100_pairs: 1.4,
      rss: null,
      "policy.pps": 9,
    });
  });
});
