// Shared harness for `npm run bench`: timing loops and the report format.
// Benchmarks print human-readable lines; with --json their last line is one
// JSON object of figures.

export type Figures = Record<string, number | null>;

export interface Measurement {
  /** Plaintext (or payload) megabytes per second, 1 MB = 10^6 bytes. */
  mbps: number;
  /** Units of work per second. */
  opsPerSec: number;
}

/**
 * Run `work` (returning the bytes it processed) repeatedly: a warm-up, then
 * `rounds` timed rounds of about `roundMs` each; report the best round, which is
 * the least disturbed by other load on a shared machine.
 */
export function measure(work: () => number, roundMs = 300, rounds = 3): Measurement {
  const warmUntil = performance.now() + roundMs / 2;
  while (performance.now() < warmUntil) work();
  let best: Measurement = { mbps: 0, opsPerSec: 0 };
  for (let r = 0; r < rounds; r++) {
    let bytes = 0;
    let ops = 0;
    const start = performance.now();
    let now = start;
    while (now - start < roundMs) {
      bytes += work();
      ops++;
      if ((ops & 7) === 0) now = performance.now();
    }
    now = performance.now();
    const secs = (now - start) / 1000;
    const m = { mbps: bytes / secs / 1e6, opsPerSec: ops / secs };
    if (m.mbps > best.mbps || (bytes === 0 && m.opsPerSec > best.opsPerSec)) best = m;
  }
  return best;
}

function round(v: number | null): number | null {
  if (v === null) return null;
  return v >= 100 ? Math.round(v) : Math.round(v * 100) / 100;
}

/** Print figures as aligned lines, and as one JSON line last when `json` is set. */
export function report(name: string, figures: Figures, json: boolean): void {
  const rounded = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, round(v)]));
  const width = Math.max(...Object.keys(rounded).map((k) => k.length));
  console.log(`# bench ${name}`);
  for (const [k, v] of Object.entries(rounded)) {
    console.log(`${k.padEnd(width)}  ${v === null ? "n/a" : v}`);
  }
  if (json) console.log(JSON.stringify(rounded));
}
