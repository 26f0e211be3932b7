import { randomBytes, randomInt } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { tunAvailable } from "../tun";
import {
  createLinkedNamespaces,
  execIn,
  hasCommand,
  netnsAvailable,
  spawnIn,
  type LinkedNamespaces,
} from "../testing/netns";
import { nativeAvailable } from "./native";
import {
  newestWireguardGo,
  startWireguardGo,
  wgKeypair,
  wgPresharedKey,
  wireguardGoAvailable,
  type WireguardGo,
} from "../testing/wireguard-go";

// Interop: Debian's wireguard-go in one network namespace, a Trellis peer (the
// WASM device over a UDP socket and a TUN device, in Node) in another. Both
// sides initiate, ping crosses both ways, iperf3 runs 30 s through the tunnel,
// and a rekey happens (the Trellis side's clock is moved past REKEY_AFTER_TIME;
// nothing in wireguard-go is shortened).

function skipReason(): string | undefined {
  for (const check of [netnsAvailable(), wireguardGoAvailable(), tunAvailable()]) {
    if (!check.ok) return check.reason;
  }
  const missing = ["iperf3", "ping"].filter((c) => !hasCommand(c));
  return missing.length ? `not installed: ${missing.join(", ")}` : undefined;
}
const reason = skipReason();
if (reason) console.warn(`skipping wireguard-go interop: ${reason}`);

const PEER_SCRIPT = fileURLToPath(new URL("../testing/trellis-peer.ts", import.meta.url));
const REKEY_AFTER_TIME = 120_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface TrellisPeer {
  child: ChildProcess;
  request<T>(msg: object): Promise<T>;
  stop(): Promise<void>;
}

async function startTrellisPeer(ns: string, cfg: object): Promise<TrellisPeer> {
  const child = spawnIn(ns, process.execPath, ["--import", "tsx", PEER_SCRIPT, JSON.stringify(cfg)]);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  lines.on("line", (l) => waiting.shift()?.(l));
  const next = (what: string) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`trellis peer: no ${what} within 20 s\n${stderr}`)),
        20_000,
      );
      waiting.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  await next("ready line");
  return {
    child,
    async request<T>(msg: object): Promise<T> {
      const reply = next(JSON.stringify(msg));
      child.stdin!.write(JSON.stringify(msg) + "\n");
      return JSON.parse(await reply) as T;
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.stdin!.write('{"cmd":"stop"}\n');
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

interface Stats {
  stats: {
    peers: { handshakes: number; has_session: boolean; rx_bytes: number; tx_bytes: number }[];
    drops: Record<string, number>;
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function topology(opts: { wgGoKnowsEndpoint: boolean; dataplane?: "native"; binary?: string }) {
  const net: LinkedNamespaces = createLinkedNamespaces();
  cleanups.push(() => net.remove());
  const n = randomInt(0, 256);
  const goIp = `100.64.${n}.1`;
  const trellisIp = `100.64.${n}.2`;
  const goKey = wgKeypair();
  const trellisKey = wgKeypair();
  const psk = wgPresharedKey();
  const wg: WireguardGo = await startWireguardGo({
    ns: net.nsA,
    ifname: `trlg${randomBytes(3).toString("hex")}`,
    privateKey: goKey.privateKey,
    listenPort: 51820,
    address: `${goIp}/32`,
    binary: opts.binary,
    peers: [
      {
        publicKey: trellisKey.publicKey,
        presharedKey: psk,
        allowedIps: [`${trellisIp}/32`],
        ...(opts.wgGoKnowsEndpoint ? { endpoint: `${net.ipB}:51821` } : {}),
      },
    ],
  });
  cleanups.push(() => wg.stop());
  const peer = await startTrellisPeer(net.nsB, {
    dataplane: opts.dataplane,
    privateKey: trellisKey.privateKey,
    listen: { host: net.ipB, port: 51821 },
    ifname: `trlt${randomBytes(3).toString("hex")}`,
    address: `${trellisIp}/32`,
    peers: [
      {
        publicKey: goKey.publicKey,
        presharedKey: psk,
        // Without an endpoint the Trellis side cannot initiate: wireguard-go must.
        ...(opts.wgGoKnowsEndpoint ? {} : { endpoint: `${net.ipA}:51820` }),
        allowedIps: [`${goIp}/32`],
      },
    ],
  });
  cleanups.push(() => peer.stop());
  return { net, wg, peer, goIp, trellisIp, trellisKey };
}

async function ping(ns: string, dst: string, count = 3) {
  const { stdout } = await execIn(ns, "ping", ["-c", String(count), "-i", "0.2", "-W", "3", dst], {
    timeoutMs: 30_000,
  });
  return stdout;
}

/** iperf3 TCP from `clientNs` to `serverIp` (listening in `serverNs`) for `seconds`; per-second rates. */
async function iperf(serverNs: string, clientNs: string, serverIp: string, seconds: number, reverse = false) {
  const server = spawnIn(serverNs, "iperf3", ["-s", "-1", "--forceflush", "-B", serverIp]);
  cleanups.push(() => {
    server.kill("SIGKILL");
  });
  let out = "";
  server.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  server.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  for (const deadline = Date.now() + 15_000; !/Server listening/.test(out);) {
    if (Date.now() > deadline || server.exitCode !== null)
      throw new Error(`iperf3 server did not start: ${out}`);
    await sleep(50);
  }
  const { stdout } = await execIn(
    clientNs,
    "iperf3",
    ["-c", serverIp, "-t", String(seconds), "-J", ...(reverse ? ["-R"] : [])],
    { timeoutMs: (seconds + 30) * 1000 },
  );
  const report = JSON.parse(stdout) as {
    intervals: { sum: { bits_per_second: number } }[];
    end: { sum_received: { bits_per_second: number } };
  };
  return {
    perSecond: report.intervals.map((i) => i.sum.bits_per_second),
    bps: report.end.sum_received.bits_per_second,
  };
}

/** The newest wireguard-go when Go can build it here, else Debian's. */
function referenceBinary(): string | undefined {
  try {
    return newestWireguardGo();
  } catch (err) {
    console.warn(`using Debian's wireguard-go: ${(err as Error).message}`);
    return undefined;
  }
}

const nativeReason =
  reason ?? (nativeAvailable().ok ? undefined : (nativeAvailable() as { reason: string }).reason);
if (!reason && nativeReason) console.warn(`skipping the native data plane's interop: ${nativeReason}`);

// The native data plane (gateway/dataplane) against wireguard-go: the same
// checks, with the WireGuard traffic moved by the addon's threads (TUN
// batches, recvmmsg/sendmmsg) rather than JS. Its clock is the real one, so
// the rekey is not forced here (the WASM test above covers the crate's rekey).
describe.skipIf(nativeReason !== undefined)("native data plane interop with wireguard-go", () => {
  it("Trellis initiates; ping both ways; iperf3 TCP both directions without a stall, all on the native path", async () => {
    const t = await topology({ wgGoKnowsEndpoint: false, dataplane: "native", binary: referenceBinary() });
    expect(await ping(t.net.nsB, t.goIp)).toMatch(/3 packets transmitted, 3 received/);
    expect(await ping(t.net.nsA, t.trellisIp)).toMatch(/3 packets transmitted, 3 received/);
    expect(await t.wg.latestHandshake(t.trellisKey.publicKey)).toBeGreaterThan(0);
    for (const reverse of [false, true]) {
      const r = await iperf(t.net.nsA, t.net.nsB, t.goIp, 10, reverse);
      console.log(
        `iperf3 native Trellis ${reverse ? "<-" : "->"} wireguard-go: ${(r.bps / 1e6).toFixed(1)} Mbit/s, ` +
          `slowest second ${(Math.min(...r.perSecond) / 1e6).toFixed(1)} Mbit/s`,
      );
      expect(r.perSecond.length).toBeGreaterThanOrEqual(9);
      expect(Math.min(...r.perSecond)).toBeGreaterThan(0);
    }
    const s = await t.peer.request<Stats & { stats: { native: Record<string, number> } }>({ cmd: "stats" });
    expect(s.stats.peers[0]!.handshakes).toBe(1);
    // The bulk went through the threads: far more datagrams than JS ever saw.
    expect(s.stats.native.udp_tx).toBeGreaterThan(10_000);
    expect(s.stats.native.tun_tx).toBeGreaterThan(10_000);
    expect(s.stats.drops.decrypt_failed).toBe(0);
  }, 120_000);

  it("wireguard-go initiates from an endpoint the native side was not told; ping both ways", async () => {
    const t = await topology({ wgGoKnowsEndpoint: true, dataplane: "native", binary: referenceBinary() });
    expect(await ping(t.net.nsA, t.trellisIp)).toMatch(/3 packets transmitted, 3 received/);
    expect(await ping(t.net.nsB, t.goIp)).toMatch(/3 packets transmitted, 3 received/);
    const s = await t.peer.request<Stats>({ cmd: "stats" });
    expect(s.stats.peers[0]).toMatchObject({ handshakes: 1, has_session: true });
  }, 60_000);
});

describe.skipIf(reason !== undefined)("interop with wireguard-go", () => {
  it("Trellis initiates; ping both ways; 30 s of iperf3 TCP without a stall; rekey after REKEY_AFTER_TIME", async () => {
    const t = await topology({ wgGoKnowsEndpoint: false });
    expect(await ping(t.net.nsB, t.goIp)).toMatch(/3 packets transmitted, 3 received/);
    expect(await ping(t.net.nsA, t.trellisIp)).toMatch(/3 packets transmitted, 3 received/);
    const first = await t.wg.latestHandshake(t.trellisKey.publicKey);
    expect(first).toBeGreaterThan(0);
    let s = await t.peer.request<Stats>({ cmd: "stats" });
    expect(s.stats.peers[0]!.handshakes).toBe(1);

    // 30 s of TCP through the tunnel, Trellis → wireguard-go.
    // --forceflush: into a pipe, iperf3 would buffer "Server listening" away.
    const server = spawnIn(t.net.nsA, "iperf3", ["-s", "-1", "--forceflush", "-B", t.goIp]);
    cleanups.push(() => {
      server.kill("SIGKILL");
    });
    let out = "";
    server.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    server.stderr?.on("data", (c: Buffer) => (out += c.toString()));
    for (const deadline = Date.now() + 15_000; !/Server listening/.test(out);) {
      if (Date.now() > deadline || server.exitCode !== null)
        throw new Error(`iperf3 server did not start: ${out}`);
      await sleep(50);
    }
    const { stdout } = await execIn(t.net.nsB, "iperf3", ["-c", t.goIp, "-t", "30", "-J"], {
      timeoutMs: 60_000,
    });
    const report = JSON.parse(stdout) as {
      intervals: { sum: { bits_per_second: number } }[];
      end: { sum_received: { bits_per_second: number } };
    };
    const perSecond = report.intervals.map((i) => i.sum.bits_per_second);
    console.log(
      `iperf3 through the Trellis/wireguard-go tunnel: ${(report.end.sum_received.bits_per_second / 1e6).toFixed(1)} Mbit/s, ` +
        `slowest second ${(Math.min(...perSecond) / 1e6).toFixed(1)} Mbit/s`,
    );
    expect(perSecond.length).toBeGreaterThanOrEqual(29);
    expect(Math.min(...perSecond)).toBeGreaterThan(0);
    expect(report.end.sum_received.bits_per_second).toBeGreaterThan(1e6);

    // Rekey: move the Trellis clock past REKEY_AFTER_TIME; its next packet
    // starts a new handshake, which wireguard-go answers.
    await t.peer.request({ cmd: "advance", ms: REKEY_AFTER_TIME + 1000 });
    await sleep(1100); // wireguard-go records handshake times in whole seconds
    expect(await ping(t.net.nsB, t.goIp, 2)).toMatch(/2 packets transmitted, 2 received/);
    s = await t.peer.request<Stats>({ cmd: "stats" });
    expect(s.stats.peers[0]!.handshakes).toBe(2);
    const deadline = Date.now() + 5000;
    let second = first;
    while (second === first && Date.now() < deadline) {
      await sleep(200);
      second = await t.wg.latestHandshake(t.trellisKey.publicKey);
    }
    expect(second).toBeGreaterThan(first);
    expect(await ping(t.net.nsA, t.trellisIp, 2)).toMatch(/2 packets transmitted, 2 received/);
  }, 150_000);

  it("wireguard-go initiates; ping both ways", async () => {
    const t = await topology({ wgGoKnowsEndpoint: true });
    expect(await ping(t.net.nsA, t.trellisIp)).toMatch(/3 packets transmitted, 3 received/);
    expect(await ping(t.net.nsB, t.goIp)).toMatch(/3 packets transmitted, 3 received/);
    const s = await t.peer.request<Stats>({ cmd: "stats" });
    expect(s.stats.peers[0]).toMatchObject({ handshakes: 1, has_session: true });
    expect(await t.wg.latestHandshake(t.trellisKey.publicKey)).toBeGreaterThan(0);
  }, 60_000);
});
