// npm run bench -- control [--json] [--nodes N]
// The control plane in one process at scale: N nodes (default 1,000)
// register with pre-auth keys through signed requests, each opens its map
// stream, then one node's endpoint change and one policy change propagate.
// The tailnet is N/50 groups of 50 (a tag each) that reach only their own
// group, so each node has 49 peers, as in a tailnet segmented by team.
//
// Figures: register_per_s (signed registrations per second, 16 in flight),
// full_map_bytes (median first event), delta_bytes (median delta a peer gets
// for one node's endpoint change), propagation_p50/p99_ms (from saving the
// policy to each node receiving its new filter; policy_save_ms of that is the
// save itself, propagation_first_ms the first node's), rss_mb (the process, with
// every stream open; nodes are simulated in the same process and cheap).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { ControlSigner } from "@trellis/client/signer";
import { readSse, type SseEvent } from "@trellis/client/sse";
import { createLogger } from "@trellis/log";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { report, type Figures } from "../../scripts/lib/bench";
import { loadConfig } from "../src/config";
import { ControlRuntime } from "../src/runtime";

const json = process.argv.includes("--json");
const nodesArg = process.argv.indexOf("--nodes");
const N = nodesArg >= 0 ? Number(process.argv[nodesArg + 1]) : 1000;
if (!Number.isInteger(N) || N < 2 || N > 100_000) {
  console.error("--nodes must be an integer between 2 and 100000");
  process.exit(2);
}
const GROUP = 50;
const GROUPS = Math.ceil(N / GROUP);
const say = (msg: string) => process.stderr.write(`bench control: ${msg}\n`);

function policy(ports: string): string {
  const tags = Array.from({ length: GROUPS }, (_, g) => `tag:g${g}`);
  return JSON.stringify({
    tagOwners: Object.fromEntries(tags.map((t) => [t, []])),
    acls: tags.map((t) => ({ action: "accept", src: [t], dst: [`${t}:${ports}`] })),
  });
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

/**
 * One simulated node's stream consumer: sizes and arrival times of events,
 * read as a node reads them. It keeps what the figures need, not the texts:
 * 10,000 simulated nodes holding every event would be the process's largest
 * heap, and its garbage collection would be charged to the server.
 */
class Consumer {
  fullBytes = 0;
  events: { at: number; bytes: number; peers: boolean; policyVersion: number | null }[] = [];
  constructor(stream: ReadableStream<Uint8Array>) {
    void this.run(stream);
  }
  private async run(stream: ReadableStream<Uint8Array>) {
    // Each event is handled in its own call, so no idle consumer keeps its last event alive.
    const events = readSse(stream);
    while (await this.next(events));
  }
  private async next(events: AsyncGenerator<SseEvent>): Promise<boolean> {
    const r = await events.next();
    if (r.done) return false;
    const ev = r.value;
    if (this.fullBytes === 0) this.fullBytes = ev.data.length;
    else {
      const version = /"policyVersion":(\d+)/.exec(ev.data);
      this.events.push({
        at: performance.now(),
        bytes: ev.data.length,
        peers: ev.data.includes('"peers":'),
        policyVersion: version ? Number(version[1]) : null,
      });
    }
    return true;
  }
}

async function quiet(consumers: Consumer[], ms = 500) {
  let last = -1;
  for (;;) {
    const total = consumers.reduce((n, c) => n + c.events.length, 0);
    if (total === last) return;
    last = total;
    await new Promise((r) => setTimeout(r, ms));
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "trellis-bench-control-"));
  const config = loadConfig({ TRELLIS_DATA_DIR: dir }, dir);
  const rt = await ControlRuntime.open(config, createLogger("bench", "silent"), {
    controlKey: generateKeyPair(),
    ephemeralGraceMs: 3_600_000,
  });
  try {
    await rt.setPolicy(policy("*"), "bench");
    const keys = await Promise.all(
      Array.from(
        { length: GROUPS },
        async (_, g) => (await rt.createPreAuthKey({ tags: [`tag:g${g}`], reusable: true }, "bench")).key,
      ),
    );
    const controlKey = rt.controlKey().publicKey;
    say(`${N} nodes in ${GROUPS} groups: generating keys`);
    const signers = Array.from(
      { length: N },
      () => new ControlSigner(x25519.utils.randomSecretKey(), controlKey),
    );
    const sign = (s: ControlSigner, method: string, path: string, body = "") => ({
      method,
      path,
      body,
      authorization: s.sign(method, path, body),
    });

    say("registering");
    const t0 = performance.now();
    await pool(signers, 16, async (s, i) => {
      const body = JSON.stringify({ preAuthKey: keys[i % GROUPS]!, hostname: `node-${i}`, os: "linux" });
      await rt.register(sign(s, "POST", "/api/v1/register", body));
    });
    const registerPerS = N / ((performance.now() - t0) / 1000);

    say("opening map streams");
    const consumers: Consumer[] = new Array(N);
    await pool(signers, 16, async (s, i) => {
      consumers[i] = new Consumer(await rt.openMapStream(sign(s, "GET", "/api/v1/map")));
    });
    await quiet(consumers);
    const rssMb = process.memoryUsage().rss / 1e6;

    say("one node's endpoints change");
    consumers.forEach((c) => (c.events = []));
    await rt.updateEndpoints(
      sign(signers[0]!, "POST", "/api/v1/endpoints", JSON.stringify({ endpoints: ["192.0.2.1:41641"] })),
    );
    await quiet(consumers, 200);
    const deltas = consumers.flatMap((c) => c.events);
    const receivers = deltas.length;
    if (deltas.some((d) => d.peers)) throw new Error("a full map was sent for a peer change");

    say("policy change");
    consumers.forEach((c) => (c.events = []));
    const tp = performance.now();
    await rt.setPolicy(policy("22,443"), "bench");
    const saveMs = performance.now() - tp;
    const deadline = Date.now() + 300_000;
    const arrivals: number[] = [];
    for (;;) {
      arrivals.length = 0;
      for (const c of consumers) {
        const e = c.events.find((x) => x.policyVersion === 2);
        if (e) arrivals.push(e.at - tp);
      }
      if (arrivals.length === N || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (arrivals.length < N) say(`only ${arrivals.length}/${N} nodes received the policy change in time`);

    const figures: Figures = {
      nodes: N,
      register_per_s: registerPerS,
      policy_save_ms: saveMs,
      propagation_first_ms: quantile(arrivals, 0),
      propagation_p50_ms: quantile(arrivals, 0.5),
      propagation_p99_ms: quantile(arrivals, 0.99),
      full_map_bytes: quantile(
        consumers.map((c) => c.fullBytes),
        0.5,
      ),
      delta_bytes: quantile(
        deltas.map((d) => d.bytes),
        0.5,
      ),
      delta_receivers: receivers,
      rss_mb: rssMb,
    };
    report("control", figures, json);
  } finally {
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
