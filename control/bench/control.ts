// npm run bench -- control [--json] [--nodes N] [--soak SECONDS]
// The control plane at scale, as deployed: this process is the server (the
// control runtime behind HTTP), N nodes (default 1,000) are simulated in a
// second process (nodes.ts) that registers each with a pre-auth key through
// signed requests, opens each one's map stream, and records arrivals. Then
// one node's endpoint change and one policy change propagate.
// The tailnet is N/50 groups of 50 (a tag each) that reach only their own
// group, so each node has 49 peers, as in a tailnet segmented by team.
//
// The HTTP layer is the server's own node API (src/http/node-api.ts, which
// web/server.ts mounts before Next.js), and the simulated nodes are
// ControlClients: the same code on both ends as in production.
//
// Figures: register_per_s (signed registrations per second over HTTP, 16 in
// flight), full_map_bytes (median first event), delta_bytes (median delta a
// peer gets for one node's endpoint change), propagation_p50/p99_ms (from
// saving the policy to each node receiving its new filter; policy_save_ms of
// that is the save itself, propagation_first_ms the first node's), rss_mb
// (the server process, with every stream open), nodes_rss_mb (the simulated
// nodes' process, for scale).
//
// --soak SECONDS then changes the policy once a second for that long, every
// node streaming throughout (the reliability suite's load test:
// control/src/soak.test.ts): soak_changes, soak_lost (node × change pairs
// that never arrived within 30 s), soak_stream_failures (map streams that
// ended with an error), soak_p99_ms (propagation p99 over every arrival of
// every change), soak_rss_mb_start/end and soak_rss_slope_mb_per_min (the
// server's RSS after the first fifth of the run, least squares).
import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger } from "@trellis/log";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { report, type Figures } from "../../scripts/lib/bench";
import { createKey } from "../src/admin/keys";
import { applyPolicy } from "../src/admin/policy";
import { localOperator } from "../src/auth/actor";
import { loadConfig } from "../src/config";
import { NodeApi } from "../src/http/node-api";
import { ControlRuntime } from "../src/runtime";
import type { Command, Reply } from "./nodes";

const json = process.argv.includes("--json");
const nodesArg = process.argv.indexOf("--nodes");
const N = nodesArg >= 0 ? Number(process.argv[nodesArg + 1]) : 1000;
const soakArg = process.argv.indexOf("--soak");
const SOAK_S = soakArg >= 0 ? Number(process.argv[soakArg + 1]) : 0;
if (!Number.isFinite(SOAK_S) || SOAK_S < 0 || SOAK_S > 86_400) {
  console.error("--soak must be a number of seconds between 0 and 86400");
  process.exit(2);
}
if (!Number.isInteger(N) || N < 2 || N > 100_000) {
  console.error("--nodes must be an integer between 2 and 100000");
  process.exit(2);
}
const GROUP = 50;
const GROUPS = Math.ceil(N / GROUP);
const say = (msg: string) => process.stderr.write(`bench control: ${msg}\n`);
const now = () => performance.timeOrigin + performance.now();

function policy(ports: string): string {
  const tags = Array.from({ length: GROUPS }, (_, g) => `tag:g${g}`);
  return JSON.stringify({
    tagOwners: Object.fromEntries(tags.map((t) => [t, []])),
    acls: tags.map((t) => ({ action: "accept", src: [t], dst: [`${t}:${ports}`] })),
  });
}

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

/** The simulated nodes' process, one command at a time. */
class Nodes {
  private waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  constructor(private readonly child: ChildProcess) {
    child.on("message", (r: Reply) => {
      const w = this.waiting;
      this.waiting = null;
      if (!w) return;
      if (r.cmd === "error") w.reject(new Error(`simulated nodes: ${r.message}`));
      else w.resolve(r);
    });
    child.on("exit", (code) => {
      this.waiting?.reject(new Error(`simulated nodes exited (${code})`));
      this.waiting = null;
    });
  }
  run<C extends Command["cmd"]>(c: Extract<Command, { cmd: C }>): Promise<Extract<Reply, { cmd: C }>> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve: resolve as (r: Reply) => void, reject };
      this.child.send(c);
    });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Least-squares slope of `ys` over `xs`. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** A policy change a second for SOAK_S seconds (see --soak above). */
async function soakRun(rt: ControlRuntime, nodes: Nodes, operator: ReturnType<typeof localOperator>) {
  say(`soak: a policy change a second for ${SOAK_S} s`);
  const t0 = now();
  const all: number[] = [];
  const rss: { t: number; mb: number }[] = [];
  let lost = 0;
  let failed = 0;
  let changes = 0;
  for (let i = 0; now() - t0 < SOAK_S * 1000; i++) {
    const started = now();
    await nodes.run({ cmd: "reset" });
    const tp = now();
    const { version } = await applyPolicy(rt, operator, policy(`22,443,${1000 + (i % 50_000)}`));
    const got = await nodes.run({ cmd: "arrivals", policyVersion: version, timeoutMs: 30_000 });
    changes++;
    lost += N - got.at.length;
    failed = Math.max(failed, got.failed);
    for (const t of got.at) all.push(t - tp);
    rss.push({ t: (now() - t0) / 60_000, mb: process.memoryUsage().rss / 1e6 });
    await sleep(Math.max(0, 1000 - (now() - started)));
  }
  const warm = rss.slice(Math.floor(rss.length / 5));
  return {
    soak_s: SOAK_S,
    soak_changes: changes,
    soak_lost: lost,
    soak_stream_failures: failed,
    soak_p99_ms: quantile(all, 0.99),
    soak_rss_mb_start: warm[0]?.mb ?? null,
    soak_rss_mb_end: warm.at(-1)?.mb ?? null,
    soak_rss_slope_mb_per_min:
      warm.length >= 2
        ? slope(
            warm.map((r) => r.t),
            warm.map((r) => r.mb),
          )
        : null,
  };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "trellis-bench-control-"));
  const config = loadConfig({ TRELLIS_DATA_DIR: dir }, dir);
  const rt = await ControlRuntime.open(config, createLogger("bench", "silent"), {
    controlKey: generateKeyPair(),
    ephemeralGraceMs: 3_600_000,
  });
  const server = createServer({ keepAliveTimeout: 600_000 }, new NodeApi(rt).listener());
  // Streams stay open for the whole run; the default request timeout would cut them.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.maxConnections = N + 64;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const child = fork(fileURLToPath(new URL("./nodes.ts", import.meta.url)), [], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const nodes = new Nodes(child);
  try {
    const operator = localOperator();
    await applyPolicy(rt, operator, policy("*"));
    const preAuthKeys = await Promise.all(
      Array.from(
        { length: GROUPS },
        async (_, g) => (await createKey(rt, operator, { tags: [`tag:g${g}`], reusable: true })).key,
      ),
    );
    say(`${N} nodes in ${GROUPS} groups: registering`);
    const { perS } = await nodes.run({
      cmd: "register",
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      preAuthKeys,
      nodes: N,
    });

    say("opening map streams");
    const open = await nodes.run({ cmd: "open" });
    const rssMb = process.memoryUsage().rss / 1e6;

    say("one node's endpoints change");
    await nodes.run({ cmd: "reset" });
    await nodes.run({ cmd: "endpoints" });
    const { deltas } = await nodes.run({ cmd: "quiet", ms: 300 });
    if (deltas.some((d) => d.peers)) throw new Error("a full map was sent for a peer change");

    say("policy change");
    await nodes.run({ cmd: "reset" });
    const tp = now();
    await applyPolicy(rt, operator, policy("22,443"));
    const saveMs = now() - tp;
    const { at } = await nodes.run({ cmd: "arrivals", policyVersion: 2, timeoutMs: 300_000 });
    const arrivals = at.map((t) => t - tp);
    if (arrivals.length < N) say(`only ${arrivals.length}/${N} nodes received the policy change in time`);

    const soak = SOAK_S > 0 ? await soakRun(rt, nodes, operator) : {};
    const figures: Figures = {
      ...soak,
      nodes: N,
      register_per_s: perS,
      policy_save_ms: saveMs,
      propagation_first_ms: quantile(arrivals, 0),
      propagation_p50_ms: quantile(arrivals, 0.5),
      propagation_p99_ms: quantile(arrivals, 0.99),
      full_map_bytes: quantile(open.fullBytes, 0.5),
      delta_bytes: quantile(
        deltas.map((d) => d.bytes),
        0.5,
      ),
      delta_receivers: deltas.length,
      rss_mb: rssMb,
      nodes_rss_mb: open.rssMb,
    };
    report("control", figures, json);
  } finally {
    child.kill();
    server.closeAllConnections();
    server.close();
    await rt.close();
    rmSync(dir, { recursive: true, force: true });
  }
  // Open streams hold timers; the figures are printed.
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
