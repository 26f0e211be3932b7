// npm run bench -- browser [--json] [--mb N] [--runs R]
// The browser node in Debian's Chromium behind a NAT (the e2e tailnet:
// e2e/src/tailnet.ts; needs root for its network namespaces):
//  - first_ping_ms: page load → Connect → the first ping reply from a Node
//    peer (navigation start to reply, as the page's clock has it);
//  - TCP throughput, page → Node peer, through the tunnel (the page's
//    transferred stream → the engine's worker → WireGuard → the path → the
//    peer's WireGuard and userspace stack) over a WebRTC data channel and over
//    the relay, each next to the same two ends without Trellis: a raw
//    reliable data channel from the page, and a raw WebSocket from a shared
//    worker (where the engine's own socket is; see rawWebSocketServer) to the
//    peer's process; and that raw WebSocket again through a process that only
//    passes its messages on (relay_hop_*: the floor of any relayed path; see
//    wsForwarder);
//  - worker_call_ms: one page → worker → page call (the hop every app call takes).
// MB = 10^6 bytes; each throughput is the best of R runs of N MB, after
// --warmup W unmeasured runs (1). --cpu also prints, per run, the CPU time
// each process (renderers by thread) spent per MB, from /proc.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { RTCPeerConnection } from "node-datachannel/polyfill";
import type { NodeEngine } from "@trellis/client";
import type { BrowserNodeClient } from "@trellis/client/browser";
import { report, type Figures } from "../../scripts/lib/bench";
import { cpuPerMB, cpuSnapshot } from "./cpu";
import { hasChromium } from "../src/browser";
import { canUseNetns } from "../src/netns";
import { startBrowserTailnet, until } from "../src/tailnet";
import type { Page } from "playwright-core";

const json = process.argv.includes("--json");
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MB = arg("--mb", 24);
const RUNS = arg("--runs", 2);
const WARMUP = arg("--warmup", 1);
const CPU = process.argv.includes("--cpu");
const BYTES = MB * 1e6;
const PORT = 5001;

if (!canUseNetns || !hasChromium) {
  console.error("bench browser needs root (network namespaces, nftables) and Chromium (/usr/bin/chromium)");
  process.exit(2);
}

/** A sink on `e`'s stack: reads an 8-byte length, then that many bytes, then answers one byte. */
function sink(e: NodeEngine): void {
  e.listenTcp(PORT, (c) => {
    void (async () => {
      const reader = c.readable.getReader();
      let expected = -1;
      let got = 0;
      let head = new Uint8Array(0);
      while (expected < 0 || got < expected) {
        const r = await reader.read();
        if (r.done) return;
        let chunk = r.value;
        if (expected < 0) {
          const joined = new Uint8Array(head.length + chunk.length);
          joined.set(head);
          joined.set(chunk, head.length);
          if (joined.length < 8) {
            head = joined;
            continue;
          }
          expected = Number(new DataView(joined.buffer).getBigUint64(0));
          chunk = joined.subarray(8);
        }
        got += chunk.length;
      }
      const w = c.writable.getWriter();
      await w.write(Uint8Array.of(1));
      await w.close();
    })().catch((err: unknown) => console.error("sink:", err));
  });
}

type Win = { trellisNode: BrowserNodeClient };

/** MB/s of `bytes` written by the page through the tunnel to `host`'s sink. */
async function tunnel(page: Page, host: string): Promise<number> {
  return page.evaluate(
    async ({ host, port, bytes }) => {
      const node = (window as unknown as Win).trellisNode;
      const c = await node.connectTcp(host, port, 10_000);
      const w = c.writable.getWriter();
      const r = c.readable.getReader();
      const head = new Uint8Array(8);
      new DataView(head.buffer).setBigUint64(0, BigInt(bytes));
      const chunk = new Uint8Array(64 * 1024).fill(7);
      const t0 = performance.now();
      void w.write(head);
      for (let sent = 0; sent < bytes;) {
        const n = Math.min(chunk.length, bytes - sent);
        await w.ready;
        void w.write(n === chunk.length ? chunk : chunk.subarray(0, n));
        sent += n;
      }
      const ack = await r.read();
      const secs = (performance.now() - t0) / 1000;
      if (ack.done) throw new Error("the sink closed without an answer");
      await w.close().catch(() => undefined);
      return bytes / secs / 1e6;
    },
    { host, port: PORT, bytes: BYTES },
  );
}

/** Answers the page's offer for the raw data channel being measured (signalling through Playwright). */
let answerer: ((offer: string) => Promise<string>) | null = null;

/** MB/s of a raw reliable data channel, page → this process (node-datachannel), on the same network path. */
async function rawDataChannel(page: Page): Promise<number> {
  const pc = new RTCPeerConnection({ iceServers: [] });
  let got = 0;
  pc.ondatachannel = (e) => {
    const dc = e.channel;
    dc.binaryType = "arraybuffer";
    dc.onmessage = (m: MessageEvent) => {
      got += (m.data as ArrayBuffer).byteLength;
      if (got >= BYTES) dc.send(new Uint8Array([1]));
    };
  };
  const gathered = (p: RTCPeerConnection) =>
    p.iceGatheringState === "complete"
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          p.onicegatheringstatechange = () => p.iceGatheringState === "complete" && resolve();
        });
  answerer = async (offer: string) => {
    await pc.setRemoteDescription({ type: "offer", sdp: offer });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    return pc.localDescription!.sdp;
  };
  try {
    return await page.evaluate(async (bytes) => {
      const pc = new RTCPeerConnection();
      const dc = pc.createDataChannel("raw");
      dc.binaryType = "arraybuffer";
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise<void>((resolve) => {
        if (pc.iceGatheringState === "complete") resolve();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
      });
      const answer = await (window as unknown as { benchAnswer(o: string): Promise<string> }).benchAnswer(
        pc.localDescription!.sdp,
      );
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      await new Promise<void>((resolve, reject) => {
        dc.onopen = () => resolve();
        setTimeout(() => reject(new Error("raw data channel did not open")), 15_000);
      });
      const chunk = new Uint8Array(16 * 1024).fill(7);
      const done = new Promise<void>((resolve) => (dc.onmessage = () => resolve()));
      dc.bufferedAmountLowThreshold = 1 << 20;
      const t0 = performance.now();
      for (let sent = 0; sent < bytes; sent += chunk.length) {
        if (dc.bufferedAmount > 4 << 20) {
          await new Promise<void>((resolve) => (dc.onbufferedamountlow = () => resolve()));
        }
        dc.send(chunk);
      }
      await done;
      const secs = (performance.now() - t0) / 1000;
      pc.close();
      return bytes / secs / 1e6;
    }, BYTES);
  } finally {
    pc.close();
  }
}

/**
 * The raw WebSocket's sender, run in a shared worker: it sends `bytes` in
 * 64 KiB messages and answers its port with MB/s once the peer has them all.
 */
const RAW_WS_WORKER = `
onconnect = (ev) => {
  const port = ev.ports[0];
  port.onmessage = async (m) => {
    const { url, bytes } = m.data;
    try {
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error("raw WebSocket failed"));
      });
      const chunk = new Uint8Array(64 * 1024).fill(7);
      const done = new Promise((resolve) => (ws.onmessage = resolve));
      const t0 = performance.now();
      for (let sent = 0; sent < bytes; sent += chunk.length) {
        while (ws.bufferedAmount > 4 << 20) await new Promise((r) => setTimeout(r, 1));
        ws.send(chunk);
      }
      await done;
      const secs = (performance.now() - t0) / 1000;
      ws.close();
      port.postMessage({ mbps: bytes / secs / 1e6 });
    } catch (err) {
      port.postMessage({ error: String(err) });
    }
  };
};
`;

/**
 * A raw WebSocket from the user's browser to this process, on the tunnel's
 * network path. Its sender runs in a shared worker, like the engine's own
 * socket, because Playwright records every WebSocket frame a page or a
 * dedicated worker sends (DevTools' Network domain, each payload base64-encoded
 * to this process) and does not attach to shared workers: sent from the page
 * the same socket measured ~95 MB/s, from a shared worker ~300. The worker's
 * script and a page to start it are served by the WebSocket's own HTTP server
 * (the console's policy allows no script from elsewhere; a public page may
 * not open sockets to this private address).
 */
async function rawWebSocketServer(
  page: Page,
  hostIp: string,
): Promise<{ url: string; run: (url: string) => Promise<number>; close: () => void }> {
  const server = createServer((req, res) => {
    if (req.url === "/raw-ws.js")
      res.writeHead(200, { "content-type": "text/javascript" }).end(RAW_WS_WORKER);
    else
      res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>raw WebSocket</title>");
  });
  server.listen(0, hostIp);
  await once(server, "listening");
  const wss = new WebSocketServer({ server });
  wss.on("connection", (ws) => {
    let got = 0;
    ws.on("message", (d: Buffer) => {
      got += d.length;
      if (got >= BYTES) ws.send(Uint8Array.of(1));
    });
  });
  const origin = `${hostIp}:${(server.address() as AddressInfo).port}`;
  await page.goto(`http://${origin}/`);
  const run = async (url: string) => {
    const r = await page.evaluate(
      ({ url, bytes }) =>
        new Promise<{ mbps?: number; error?: string }>((resolve) => {
          const port = new SharedWorker("/raw-ws.js").port;
          port.onmessage = (m: MessageEvent) => {
            port.close();
            resolve(m.data as { mbps?: number; error?: string });
          };
          port.postMessage({ url, bytes });
        }),
      { url, bytes: BYTES },
    );
    if (r.mbps === undefined) throw new Error(r.error ?? "the raw WebSocket's worker gave no figure");
    return r.mbps;
  };
  return {
    url: `ws://${origin}/`,
    run,
    close: () => {
      wss.close();
      server.close();
    },
  };
}

/**
 * A process that does nothing but pass WebSocket messages on, both ways, to
 * `target`: the least any relay must do (receive from one socket, send on
 * another), with no frames to parse, no keys, no routing. The raw WebSocket
 * sent through it is the ceiling of any relayed path on this machine, however
 * cheap its tunnel; the relay tunnel is measured against it too. It buffers
 * without bound while `target` is slower, as a relay may not: at most one
 * run's bytes.
 */
const FORWARDER = `// trellis-ws-forwarder (e2e/bench/cpu.ts counts its CPU by this line)
import { WebSocket, WebSocketServer } from "ws";
const [host, target] = process.argv.slice(1);
const wss = new WebSocketServer({ host, port: 0 });
wss.on("listening", () => process.stdout.write(wss.address().port + "\\n"));
// The benchmark holds its stdin: when the benchmark is gone, so is this.
process.stdin.on("end", () => process.exit(0)).resume();
wss.on("connection", (from) => {
  const to = new WebSocket(target);
  const early = [];
  to.on("open", () => { for (const m of early.splice(0)) to.send(m); });
  from.on("message", (m) => (to.readyState === WebSocket.OPEN ? to.send(m) : early.push(m)));
  to.on("message", (m) => from.send(m));
  from.on("close", () => to.close());
  to.on("close", () => from.close());
  to.on("error", () => from.terminate());
});
`;

async function wsForwarder(hostIp: string, target: string): Promise<{ url: string; close: () => void }> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", FORWARDER, hostIp, target], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("the WebSocket forwarder did not start in 10 s")),
      10_000,
    );
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`the WebSocket forwarder exited (${code})`)));
    child.stdout.once("data", (d: Buffer) => {
      clearTimeout(timer);
      resolve(Number(d.toString().trim()));
    });
  });
  return { url: `ws://${hostIp}:${port}/`, close: () => child.kill() };
}

async function best(what: string, run: () => Promise<number>): Promise<number> {
  // Unmeasured first: the first megabytes through a path run in JavaScript
  // not yet optimised by the JIT (in the page, the worker and both Node ends).
  for (let i = 0; i < WARMUP; i++) await run();
  let top = 0;
  for (let i = 0; i < RUNS; i++) {
    const before = CPU ? cpuSnapshot() : null;
    const v = await run();
    if (!json) console.error(`  ${what} run ${i + 1}: ${v.toFixed(2)} MB/s`);
    if (before) console.error(`    ${cpuPerMB(before, cpuSnapshot(), MB)}`);
    top = Math.max(top, v);
  }
  return top;
}

const net = await startBrowserTailnet();
try {
  const direct = await net.nodePeer("bench");
  const relayed = await net.nodePeer("bench-relay", { webrtc: false });
  sink(direct);
  sink(relayed);
  const page = await net.userPage("bench@example.com");
  // tsx compiles this file keeping function names, through a helper the page does not have.
  await page.context().addInitScript("globalThis.__name = (f) => f;");
  await page.exposeFunction("benchAnswer", (offer: string) => {
    if (!answerer) throw new Error("no raw data channel is being set up");
    return answerer(offer);
  });

  // Page load → Connect → first ping reply, on the page's clock (ms since navigation start).
  await page.goto(net.url + "/connect");
  const first = await page.evaluate(async () => {
    const until = async <T>(fn: () => T | undefined, ms: number, what: string): Promise<T> => {
      const end = performance.now() + ms;
      for (;;) {
        const v = fn();
        if (v) return v;
        if (performance.now() > end) {
          const n = (window as unknown as Win).trellisNode;
          throw new Error(
            `timed out waiting for ${what} (node: ${JSON.stringify(n?.current ?? null).slice(0, 600)})`,
          );
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const button = await until(
      () =>
        document.querySelector<HTMLButtonElement>("[data-testid=connect-button]:not([disabled])") ??
        undefined,
      15_000,
      "the Connect button",
    );
    const clickedAt = performance.now();
    button.click();
    const node = await until(
      () => {
        const n = (window as unknown as Win).trellisNode;
        return n?.current.phase === "connected" && n.current.map.peers.some((p) => p.name === "bench")
          ? n
          : undefined;
      },
      15_000,
      "the node to connect with the bench peer in its map",
    );
    const connectedAt = performance.now();
    for (;;) {
      try {
        const r = await node.ping("bench", 1000);
        return { clickedAt, connectedAt, repliedAt: performance.now(), path: r.path };
      } catch {
        if (performance.now() - clickedAt > 15_000) throw new Error("no ping reply in 15 s");
      }
    }
  });

  // One call through the worker and back, median of 200.
  const workerCallMs = await page.evaluate(async () => {
    const node = (window as unknown as Win).trellisNode;
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      await node.status();
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return times[100]!;
  });

  // The direct path first (traffic starts it).
  await until(
    "the direct path to bench",
    async () =>
      (await page.evaluate(
        async () => (await (window as unknown as Win).trellisNode.ping("bench", 1000)).path,
      )) === "direct",
    30_000,
  );
  const webrtcTunnel = await best("WebRTC tunnel", () => tunnel(page, "bench"));
  const webrtcRaw = await best("raw data channel", () => rawDataChannel(page));
  const relayTunnel = await best("relay tunnel", () => tunnel(page, "bench-relay"));
  const raw = await rawWebSocketServer(await page.context().newPage(), net.nat.hostIp);
  let relayRaw: number;
  let relayHop: number;
  try {
    relayRaw = await best("raw WebSocket", () => raw.run(raw.url));
    const fwd = await wsForwarder(net.nat.hostIp, raw.url);
    try {
      relayHop = await best("raw WebSocket through a forwarder", () => raw.run(fwd.url));
    } finally {
      fwd.close();
    }
  } finally {
    raw.close();
  }
  const pathToRelayed = await page.evaluate(
    async () => (await (window as unknown as Win).trellisNode.ping("bench-relay", 2000)).path,
  );
  if (pathToRelayed !== "relay")
    throw new Error(`bench-relay was reached over ${pathToRelayed}, not the relay`);

  const figures: Figures = {
    first_ping_ms: first.repliedAt,
    first_ping_after_click_ms: first.repliedAt - first.clickedAt,
    connected_after_click_ms: first.connectedAt - first.clickedAt,
    first_ping_direct: first.path === "direct" ? 1 : 0,
    worker_call_ms: workerCallMs,
    webrtc_tunnel_MBps: webrtcTunnel,
    webrtc_raw_MBps: webrtcRaw,
    webrtc_ratio: webrtcTunnel / webrtcRaw,
    relay_tunnel_MBps: relayTunnel,
    relay_raw_MBps: relayRaw,
    relay_ratio: relayTunnel / relayRaw,
    relay_hop_MBps: relayHop,
    relay_hop_ratio: relayHop / relayRaw,
    relay_ratio_vs_hop: relayTunnel / relayHop,
  };
  report("browser", figures, json);
} finally {
  await net.close();
}
