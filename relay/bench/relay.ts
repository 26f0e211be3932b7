// npm run bench -- relay [--json] [--seconds S] [--rounds N] [--only upgrade]
// Packets/s and MB/s of 1,200-byte packets through the DERP relay for 2, 100
// and 1,000 concurrent client pairs over WebSocket, with every relay limit
// enforced; the same load against a plain `ws` echo server as the baseline,
// in the same run; one-way latency through the relay; RSS per 1,000 idle
// clients. Then, over the plain `Upgrade: DERP` transport with one load
// generator for both, Trellis's relay against Tailscale's derper (built from
// the Go module proxy; skipped, and said so, without Go) at 1, 10 and 100
// pairs, 16 packets in flight per pair, taking turns (best of --rounds, 2).
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { DerpClient } from "@trellis/client/derp";
import { openWebSocket as nodeSocketFactory } from "@trellis/client/node";
import { report, type Figures } from "../../scripts/lib/bench";
import { DEFAULT_LIMITS } from "../src/server";
import { DERPER_VERSION, ensureDerper, startDerper } from "./derper";
import { closedLoop, openLoop } from "./upgrade-load";

const json = process.argv.includes("--json");
const secondsArg = process.argv.indexOf("--seconds");
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 2;
const PACKET = 1200;
const WINDOW = 32; // packets in flight per pair (closed loop)
/** Packets in flight per pair in the comparison with derper, as Tailscale's client allows. */
const UPGRADE_WINDOW = 16;
/** Rounds of the comparison with derper, taking turns (--rounds). */
const roundsArg = process.argv.indexOf("--rounds");
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 2;
const onlyArg = process.argv.indexOf("--only");
const ONLY = onlyArg > 0 ? process.argv[onlyArg + 1] : null;

interface Child {
  proc: ChildProcess;
  port: number;
  rss(): Promise<number>;
  stop(): void;
}

async function spawnServer(kind: "relay" | "baseline"): Promise<Child> {
  const proc = fork(fileURLToPath(new URL("./server-process.ts", import.meta.url)), [kind], {
    execArgv: ["--import", "tsx", "--expose-gc"],
    env: { ...process.env, TRELLIS_LOG_LEVEL: "silent" },
  });
  const port = await new Promise<number>((resolve, reject) => {
    proc.once("message", (m: { port: number }) => resolve(m.port));
    proc.once("exit", (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  return {
    proc,
    port,
    rss: () =>
      new Promise((resolve) => {
        proc.once("message", (m: { rss: number }) => resolve(m.rss));
        proc.send({ cmd: "rss" });
      }),
    stop: () => proc.kill(),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Connect in batches, so thousands of handshakes do not all time out at once
 * (and no more at once than the relay lets one address have under way).
 */
async function inBatches<T>(
  n: number,
  make: (i: number) => Promise<T>,
  batch = DEFAULT_LIMITS.maxHandshakesPerIp,
): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += batch) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, j) => make(i + j)))));
  }
  return out;
}

/** A load generator: `send` one packet on pair i; `onReceive` counts deliveries. */
interface Load {
  pairs: number;
  send(i: number): boolean;
  close(): void;
  received: number[];
}

async function relayLoad(port: number, pairs: number): Promise<Load> {
  const url = `ws://127.0.0.1:${port}/derp`;
  const received = new Array<number>(pairs).fill(0);
  const senders = await inBatches(pairs, async () =>
    DerpClient.connect({
      url,
      privateKey: generateKeyPair().privateKey,
      socketFactory: nodeSocketFactory,
      timeoutMs: 60_000,
    }),
  );
  const receivers = await inBatches(pairs, async (i) => {
    const c = await DerpClient.connect({
      url,
      privateKey: generateKeyPair().privateKey,
      socketFactory: nodeSocketFactory,
      timeoutMs: 60_000,
    });
    c.on({ packet: () => received[i]!++ });
    return c;
  });
  const packet = new Uint8Array(PACKET);
  return {
    pairs,
    received,
    send: (i) => senders[i]!.send(receivers[i]!.publicKey, packet),
    close: () => [...senders, ...receivers].forEach((c) => c.close()),
  };
}

async function baselineLoad(port: number, pairs: number): Promise<Load> {
  const received = new Array<number>(pairs).fill(0);
  const sockets = await inBatches(pairs, async (i) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    ws.on("message", () => received[i]!++);
    await new Promise((r, j) => {
      ws.once("open", r);
      ws.once("error", j);
    });
    return ws;
  });
  // The same bytes as a DERP send-packet frame: 5-byte header + 32-byte key + packet.
  const frame = new Uint8Array(5 + 32 + PACKET);
  return {
    pairs,
    received,
    send: (i) => {
      if (sockets[i]!.bufferedAmount > 4 * 1024 * 1024) return false;
      sockets[i]!.send(frame);
      return true;
    },
    close: () => sockets.forEach((s) => s.terminate()),
  };
}

/** Closed loop: each pair keeps WINDOW packets in flight; count deliveries over SECONDS. */
async function throughput(load: Load): Promise<{ pps: number; mbps: number }> {
  const sent = new Array<number>(load.pairs).fill(0);
  let running = true;
  const pump = () => {
    if (!running) return;
    for (let i = 0; i < load.pairs; i++) {
      while (sent[i]! - load.received[i]! < WINDOW) {
        if (!load.send(i)) break;
        sent[i]!++;
      }
    }
    setImmediate(pump);
  };
  pump();
  await sleep(500); // warm-up
  const total = () => load.received.reduce((a, b) => a + b, 0);
  const start = total();
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const n = total() - start;
  const secs = (performance.now() - t0) / 1000;
  running = false;
  await sleep(50);
  return { pps: n / secs, mbps: (n * PACKET) / secs / 1e6 };
}

async function latency(port: number, samples = 2000): Promise<{ p50: number; p99: number }> {
  const url = `ws://127.0.0.1:${port}/derp`;
  const [a, b] = await Promise.all(
    [0, 1].map(() =>
      DerpClient.connect({ url, privateKey: generateKeyPair().privateKey, socketFactory: nodeSocketFactory }),
    ),
  );
  let resolveOne: (() => void) | null = null;
  a!.on({ packet: () => resolveOne?.() });
  b!.on({ packet: (src, p) => b!.send(src, p) });
  const rtts: number[] = [];
  const packet = new Uint8Array(PACKET);
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    await new Promise<void>((r) => {
      resolveOne = r;
      a!.send(b!.publicKey, packet);
    });
    rtts.push(performance.now() - t0);
  }
  a!.close();
  b!.close();
  // A round trip crosses the relay twice; half of it is one pass.
  const oneWay = rtts.map((r) => (r / 2) * 1000).sort((x, y) => x - y);
  return { p50: oneWay[Math.floor(oneWay.length * 0.5)]!, p99: oneWay[Math.floor(oneWay.length * 0.99)]! };
}

async function idleRss(child: Child, clients = 1000): Promise<number> {
  const before = await child.rss();
  const url = `ws://127.0.0.1:${child.port}/derp`;
  const conns = await inBatches(clients, async () =>
    DerpClient.connect({
      url,
      privateKey: generateKeyPair().privateKey,
      socketFactory: nodeSocketFactory,
      timeoutMs: 60_000,
    }),
  );
  await sleep(500);
  const after = await child.rss();
  conns.forEach((c) => c.close());
  return (after - before) / 1e6;
}

/**
 * Trellis over Upgrade: DERP and derper on the same generator, taking turns
 * for ROUNDS rounds; each keeps its best round, the least disturbed by other
 * load on a shared machine.
 */
async function compareWithDerper(relay: Child, figures: Figures): Promise<void> {
  const derper = ensureDerper();
  if ("skipped" in derper) console.log(`# ${derper.skipped}`);
  else console.log(`# baseline: Tailscale's derper ${DERPER_VERSION}`);
  const d = "bin" in derper ? await startDerper(derper.bin) : null;
  try {
    for (const pairs of [1, 10, 100]) {
      const opts = { pairs, window: UPGRADE_WINDOW, size: PACKET, seconds: SECONDS };
      let best = 0;
      let bestDerper = 0;
      let cpu: number | null = null;
      let cpuDerper: number | null = null;
      const least = (a: number | null, b: number | null) =>
        a === null ? b : b === null ? a : Math.min(a, b);
      for (let round = 0; round < ROUNDS; round++) {
        const t = await closedLoop(relay.port, { ...opts, pid: relay.proc.pid });
        if (t.stalls) console.log(`# trellis ${pairs} pairs: ${t.stalls} windows lost`);
        best = Math.max(best, t.pps);
        cpu = least(cpu, t.cpuUsPerPacket);
        await sleep(300);
        if (!d) continue;
        const b = await closedLoop(d.port, { ...opts, pid: d.proc.pid });
        if (b.stalls) console.log(`# derper ${pairs} pairs: ${b.stalls} windows lost`);
        bestDerper = Math.max(bestDerper, b.pps);
        cpuDerper = least(cpuDerper, b.cpuUsPerPacket);
        await sleep(300);
      }
      figures[`upgrade_pps_${pairs}_pairs`] = best;
      if (cpu !== null) figures[`upgrade_cpu_us_per_packet_${pairs}_pairs`] = cpu;
      if (d) {
        figures[`derper_pps_${pairs}_pairs`] = bestDerper;
        figures[`ratio_derper_${pairs}_pairs`] = best / bestDerper;
        if (cpuDerper !== null) figures[`derper_cpu_us_per_packet_${pairs}_pairs`] = cpuDerper;
      }
    }
    // Overload: senders push as fast as their sockets take bytes. Trellis
    // back-pressures (delivers what was sent, slows the senders); keep it so.
    const over = { pairs: 10, size: PACKET, seconds: SECONDS };
    const t = await openLoop(relay.port, over);
    figures.overload_delivered_pps_10_pairs = t.deliveredPps;
    figures.overload_loss_10_pairs = t.loss;
    if (d) {
      await sleep(300);
      const b = await openLoop(d.port, over);
      figures.derper_overload_delivered_pps_10_pairs = b.deliveredPps;
      figures.derper_overload_loss_10_pairs = b.loss;
    }
  } finally {
    d?.stop();
  }
}

const figures: Figures = {};
const relay = await spawnServer("relay");
const baseline = ONLY ? null : await spawnServer("baseline");
try {
  if (!ONLY) {
    for (const pairs of [2, 100, 1000]) {
      const load = await relayLoad(relay.port, pairs);
      const r = await throughput(load);
      load.close();
      figures[`pps_${pairs}_pairs`] = r.pps;
      figures[`mbps_${pairs}_pairs`] = r.mbps;
      if (pairs === 100 && baseline) {
        const bl = await baselineLoad(baseline.port, pairs);
        const b = await throughput(bl);
        bl.close();
        figures.baseline_pps_100_pairs = b.pps;
        figures.ratio_100_pairs = r.pps / b.pps;
      }
      await sleep(300);
    }
    const lat = await latency(relay.port);
    figures.p50_latency_us = lat.p50;
    figures.p99_latency_us = lat.p99;
    figures.rss_mb_per_1000_idle = await idleRss(relay);
  }
  if (!ONLY || ONLY === "upgrade") await compareWithDerper(relay, figures);
} finally {
  relay.stop();
  baseline?.stop();
}
report("relay", figures, json);
process.exit(0);
