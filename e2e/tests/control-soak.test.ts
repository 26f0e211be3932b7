// Load and soak: 1,000 simulated nodes (each a ControlClient on its own map
// stream over HTTP, in a process of their own) while the policy changes once
// a second — ten seconds in `npm test`, five minutes under
// `npm run test:reliability -- --long`. Every node gets every change, no
// stream fails, no save errs; the propagation p99 and the server's RSS slope
// after warm-up are reported (figures, not thresholds: this machine is
// shared). The run is the control benchmark's own (`npm run bench --
// control --soak S`), so the test and the bench measure the same thing.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LONG } from "@trellis/proto/fuzz";
import { ROOT } from "../src/server";

const SECONDS = LONG ? 300 : 10;

describe("the control plane under a policy change a second", () => {
  it(`1,000 nodes streaming for ${SECONDS} s: every change reaches every node, no stream fails`, () => {
    const run = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "control/bench/control.ts"),
        "--json",
        "--nodes",
        "1000",
        "--soak",
        String(SECONDS),
      ],
      { cwd: ROOT, encoding: "utf8", timeout: (SECONDS + 400) * 1000, maxBuffer: 16 << 20 },
    );
    expect(run.status, run.stderr.slice(-2000)).toBe(0);
    const figures = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as Record<string, number>;
    console.log(
      `soak: ${figures.soak_changes} changes to 1,000 nodes in ${SECONDS} s; propagation p99 ${figures.soak_p99_ms} ms; ` +
        `server RSS ${figures.soak_rss_mb_start?.toFixed(0)} → ${figures.soak_rss_mb_end?.toFixed(0)} MB ` +
        `(slope ${figures.soak_rss_slope_mb_per_min?.toFixed(1)} MB/min after warm-up)`,
    );
    expect(figures.soak_changes).toBeGreaterThanOrEqual(2);
    expect(figures.soak_lost, "node × change pairs that never arrived").toBe(0);
    expect(figures.soak_stream_failures, "map streams that failed").toBe(0);
    // Over five minutes, a leak shows: the server's RSS after warm-up stays within a quarter of where it was.
    if (LONG) expect(figures.soak_rss_mb_end).toBeLessThan(figures.soak_rss_mb_start! * 1.25);
  }, 1_000_000);
});
