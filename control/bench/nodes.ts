// The simulated nodes of `npm run bench -- control`, in their own process
// (forked by control.ts): they register over HTTP with signed requests, hold
// their map streams open over HTTP, and record when each event arrives. The
// server's process then holds only what a real control server holds, and
// the nodes' reading and parsing is not charged to it.
//
// Each simulated node is a ControlClient, as every real node is: its map
// stream read by the client's own Server-Sent Events reader, at its raw
// level (events counted and timed, seq checked, JSON not parsed: a node's
// time to parse an event is not the server's propagation).
//
// Driven over the fork's IPC channel: control.ts sends a Command, this
// process answers each with one Reply. Times are absolute (timeOrigin + now),
// comparable between the two processes of one machine.
import { x25519 } from "@noble/curves/ed25519.js";
import { Agent, setGlobalDispatcher } from "undici";
import { ControlClient, keyHolder, type MapStream } from "@trellis/client";

export type Command =
  | {
      cmd: "register";
      url: string;
      preAuthKeys: string[];
      nodes: number;
    }
  | { cmd: "open" }
  | { cmd: "reset" }
  | { cmd: "endpoints" }
  | { cmd: "quiet"; ms: number }
  | { cmd: "arrivals"; policyVersion: number; timeoutMs: number };

export type Reply =
  | { cmd: "register"; perS: number }
  | { cmd: "open"; fullBytes: number[]; rssMb: number }
  | { cmd: "reset" | "endpoints" }
  | { cmd: "quiet"; deltas: { bytes: number; peers: boolean }[] }
  | { cmd: "arrivals"; at: number[]; failed: number; rssMb: number }
  | { cmd: "error"; message: string };

const now = () => performance.timeOrigin + performance.now();

/** One node's stream: sizes and arrival times of its events (not their texts). */
class Consumer {
  fullBytes = 0;
  events: { at: number; bytes: number; peers: boolean; policyVersion: number | null }[] = [];
  failed: Error | null = null;
  constructor(stream: MapStream) {
    void this.read(stream);
  }
  private async read(stream: MapStream) {
    try {
      for await (const ev of stream.raw()) {
        if (ev.event !== "full" && ev.event !== "delta") continue;
        if (ev.event === "full") {
          this.fullBytes = ev.data.length;
          continue;
        }
        const version = /"policyVersion":(\d+)/.exec(ev.data);
        this.events.push({
          at: now(),
          bytes: ev.data.length,
          peers: ev.data.includes('"peers":'),
          policyVersion: version ? Number(version[1]) : null,
        });
      }
    } catch (err) {
      this.failed = err instanceof Error ? err : new Error(String(err));
    }
  }
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Every stream is its own connection, as every node is its own client; none
// times out while it idles between events.
setGlobalDispatcher(
  new Agent({ connections: null, bodyTimeout: 0, headersTimeout: 600_000, keepAliveTimeout: 600_000 }),
);

let clients: ControlClient[] = [];
let consumers: Consumer[] = [];

async function quiet(ms: number) {
  let last = -1;
  for (;;) {
    const total = consumers.reduce((n, c) => n + c.events.length, 0);
    if (total === last) return;
    last = total;
    await sleep(ms);
  }
}

async function run(c: Command): Promise<Reply> {
  switch (c.cmd) {
    case "register": {
      clients = Array.from(
        { length: c.nodes },
        () => new ControlClient({ baseUrl: c.url, key: keyHolder(x25519.utils.randomSecretKey()) }),
      );
      const t0 = performance.now();
      await pool(clients, 16, async (client, i) => {
        await client.register({
          preAuthKey: c.preAuthKeys[i % c.preAuthKeys.length]!,
          hostname: `node-${i}`,
          os: "linux",
        });
      });
      return { cmd: "register", perS: c.nodes / ((performance.now() - t0) / 1000) };
    }
    case "open": {
      consumers = new Array(clients.length);
      await pool(clients, 16, async (client, i) => {
        consumers[i] = new Consumer(await client.openMap({ idleTimeoutMs: 0 }));
      });
      // Every node has its full map before the figures are taken.
      const deadline = Date.now() + 600_000;
      while (consumers.some((x) => x.fullBytes === 0 && !x.failed) && Date.now() < deadline) await sleep(100);
      const failed = consumers.find((x) => x.failed);
      if (failed) throw failed.failed!;
      await quiet(500);
      return {
        cmd: "open",
        fullBytes: consumers.map((x) => x.fullBytes),
        rssMb: process.memoryUsage().rss / 1e6,
      };
    }
    case "reset":
      for (const x of consumers) x.events = [];
      return { cmd: "reset" };
    case "endpoints":
      await clients[0]!.updateEndpoints({ endpoints: ["192.0.2.1:41641"] });
      return { cmd: "endpoints" };
    case "quiet":
      await quiet(c.ms);
      return {
        cmd: "quiet",
        deltas: consumers.flatMap((x) => x.events.map((e) => ({ bytes: e.bytes, peers: e.peers }))),
      };
    case "arrivals": {
      const deadline = Date.now() + c.timeoutMs;
      const at: number[] = [];
      for (;;) {
        at.length = 0;
        for (const x of consumers) {
          const e = x.events.find((ev) => ev.policyVersion === c.policyVersion);
          if (e) at.push(e.at);
        }
        if (at.length === consumers.length || Date.now() > deadline) break;
        await sleep(50);
      }
      return {
        cmd: "arrivals",
        at,
        failed: consumers.filter((x) => x.failed).length,
        rssMb: process.memoryUsage().rss / 1e6,
      };
    }
  }
}

process.on("message", (c: Command) => {
  run(c).then(
    (r) => process.send!(r),
    (err: unknown) =>
      process.send!({ cmd: "error", message: err instanceof Error ? err.message : String(err) }),
  );
});
process.on("disconnect", () => process.exit(0));
