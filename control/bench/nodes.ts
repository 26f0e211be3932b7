// The simulated nodes of `npm run bench -- control`, in their own process
// (forked by control.ts): they register over HTTP with signed requests, hold
// their map streams open over HTTP, and record when each event arrives. The
// server's process then holds only what a real control server holds, and
// the nodes' reading and parsing is not charged to it.
//
// Driven over the fork's IPC channel: control.ts sends a Command, this
// process answers each with one Reply. Times are absolute (timeOrigin + now),
// comparable between the two processes of one machine.
import { Agent, request as httpRequest, type IncomingMessage } from "node:http";
import { x25519 } from "@noble/curves/ed25519.js";
import { ControlSigner } from "@trellis/client/signer";

export type Command =
  | {
      cmd: "register";
      url: string;
      /** "controlkey:…", as GET /api/v1/control-key gives it. */ controlKey: string;
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
  | { cmd: "arrivals"; at: number[] }
  | { cmd: "error"; message: string };

const now = () => performance.timeOrigin + performance.now();

/**
 * One node's stream: sizes and arrival times of its events, parsed as
 * Server-Sent Events straight off the socket (node:http, no web streams: the
 * simulated nodes' own costs are kept low, since their time to read an event
 * counts in its arrival). It keeps what the figures need, not the texts.
 */
class Consumer {
  fullBytes = 0;
  events: { at: number; bytes: number; peers: boolean; policyVersion: number | null }[] = [];
  failed: Error | null = null;
  private buf = "";
  constructor(res: IncomingMessage) {
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => this.take(chunk));
    res.on("error", (err) => (this.failed = err));
  }
  private take(chunk: string) {
    const at = now();
    this.buf += chunk;
    let end: number;
    while ((end = this.buf.indexOf("\n\n")) >= 0) {
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      const d = block.indexOf("\ndata: ");
      if (d < 0) continue; // a heartbeat (comment)
      const data = block.slice(d + 7);
      if (this.fullBytes === 0) {
        this.fullBytes = data.length;
        continue;
      }
      const version = /"policyVersion":(\d+)/.exec(data);
      this.events.push({
        at,
        bytes: data.length,
        peers: data.includes('"peers":'),
        policyVersion: version ? Number(version[1]) : null,
      });
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

let url = "";
let signers: ControlSigner[] = [];
let consumers: Consumer[] = [];

// Every stream is its own connection, as every node is its own client.
const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

/** A signed request; resolves with the response once its headers are in (a non-2xx is an error). */
function request(s: ControlSigner, method: string, path: string, body = ""): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url + path,
      {
        method,
        agent,
        headers: { authorization: s.sign(method, path, body), "content-type": "application/json" },
      },
      (res) => {
        if ((res.statusCode ?? 0) < 300) return resolve(res);
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => reject(new Error(`${method} ${path}: HTTP ${res.statusCode} ${text}`)));
      },
    );
    req.on("error", reject);
    req.end(method === "GET" ? undefined : body);
  });
}

/** Read a response to its end. */
const drain = (res: IncomingMessage) =>
  new Promise<void>((resolve, reject) => {
    res.on("error", reject);
    res.on("end", resolve);
    res.resume();
  });

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
      url = c.url;
      signers = Array.from(
        { length: c.nodes },
        () => new ControlSigner(x25519.utils.randomSecretKey(), c.controlKey),
      );
      const t0 = performance.now();
      await pool(signers, 16, async (s, i) => {
        const body = JSON.stringify({
          preAuthKey: c.preAuthKeys[i % c.preAuthKeys.length]!,
          hostname: `node-${i}`,
          os: "linux",
        });
        await drain(await request(s, "POST", "/api/v1/register", body));
      });
      return { cmd: "register", perS: c.nodes / ((performance.now() - t0) / 1000) };
    }
    case "open": {
      consumers = new Array(signers.length);
      await pool(signers, 16, async (s, i) => {
        consumers[i] = new Consumer(await request(s, "GET", "/api/v1/map"));
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
      await drain(
        await request(
          signers[0]!,
          "POST",
          "/api/v1/endpoints",
          JSON.stringify({ endpoints: ["192.0.2.1:41641"] }),
        ),
      );
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
      return { cmd: "arrivals", at };
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
