// npm run bench -- tunnel [--json] [--seconds S] [--rounds N] [--no-wasm]
// iperf3 through a WireGuard tunnel between two network namespaces linked by
// a veth pair, both ends the same implementation, TUN devices at MTU 1420:
//   trellis       two Trellis peers on the native data plane (gateway/dataplane)
//   wireguard_go  two of the newest wireguard-go, built from the Go module proxy
//   wasm          two Trellis peers on the WASM data plane (the portable fallback)
// Same namespaces, same run, taking turns round by round; per implementation
// and round: TCP one way and the other way (S seconds each, default 10), and
// UDP with 1,400-byte payloads at an unlimited rate (packets/s that reached
// the receiver, from its byte count). CPU-seconds per GB: the tunnel processes' own CPU time (both ends,
// every thread, from /proc/PID/stat) over the TCP runs, per GB that arrived.
// Figures are means over rounds; ratios are Trellis over wireguard-go.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { report, type Figures } from "../../scripts/lib/bench";
import { nativeAvailable } from "../src/dataplane/native";
import { tunAvailable } from "../src/tun";
import { createLinkedNamespaces, execIn, hasCommand, netnsAvailable, spawnIn } from "../src/testing/netns";
import {
  newestWireguardGo,
  startWireguardGo,
  wgKeypair,
  type WireguardGo,
} from "../src/testing/wireguard-go";

const json = process.argv.includes("--json");
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = Math.max(10, arg("--seconds", 10));
const UDP_SECONDS = Math.max(5, Math.round(SECONDS / 2));
const ROUNDS = Math.max(1, arg("--rounds", 2));
const WITH_WASM = !process.argv.includes("--no-wasm");
const MTU = 1420;
const UDP_PAYLOAD = 1400;
const PEER_SCRIPT = fileURLToPath(new URL("../src/testing/trellis-peer.ts", import.meta.url));
const CLK_TCK = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Impl = "trellis" | "wireguard_go" | "wasm";

interface Tunnel {
  /** Tunnel addresses of the two ends. */
  ipA: string;
  ipB: string;
  pids(): number[];
  stop(): Promise<void>;
}

function fail(msg: string): never {
  console.error(`bench tunnel: ${msg}`);
  process.exit(1);
}

for (const c of [netnsAvailable(), tunAvailable(), nativeAvailable()] as { ok: boolean; reason?: string }[])
  if (!c.ok) fail(c.reason ?? "unavailable");
for (const cmd of ["iperf3", "wg"]) if (!hasCommand(cmd)) fail(`${cmd} is not installed`);
let wgGo: string;
try {
  wgGo = newestWireguardGo();
} catch (err) {
  fail((err as Error).message);
}

/** CPU seconds (user + system, every thread) of a process so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 (utime, stime), counted from after "pid (comm)".
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

async function trellisPeer(
  ns: string,
  dataplane: "native" | "wasm",
  cfg: object,
): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const child = spawnIn(ns, process.execPath, [
    "--import",
    "tsx",
    PEER_SCRIPT,
    JSON.stringify({ ...cfg, dataplane, mtu: MTU }),
  ]);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`trellis peer did not start: ${stderr}`)), 20_000);
    lines.once("line", () => {
      clearTimeout(t);
      resolve();
    });
    child.once("exit", (code) => reject(new Error(`trellis peer exited with ${code}: ${stderr}`)));
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    child,
    async stop() {
      if (child.exitCode !== null) return;
      child.stdin!.write('{"cmd":"stop"}\n');
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Both ends of one implementation's tunnel in nsA and nsB. */
async function openTunnel(
  impl: Impl,
  net: ReturnType<typeof createLinkedNamespaces>,
  n: number,
): Promise<Tunnel> {
  const ka = wgKeypair();
  const kb = wgKeypair();
  const ipA = `100.64.${n}.1`;
  const ipB = `100.64.${n}.2`;
  const tag = randomBytes(3).toString("hex");
  const port = 51820 + n;
  if (impl === "wireguard_go") {
    const ends: WireguardGo[] = [];
    try {
      for (const [ns, me, other, addr, peerAddr, ep] of [
        [net.nsA, ka, kb, ipA, ipB, net.ipB],
        [net.nsB, kb, ka, ipB, ipA, net.ipA],
      ] as const) {
        ends.push(
          await startWireguardGo({
            ns,
            ifname: `trbw${tag}${ends.length}`,
            privateKey: me.privateKey,
            listenPort: port,
            address: `${addr}/32`,
            binary: wgGo,
            mtu: MTU,
            peers: [
              { publicKey: other.publicKey, endpoint: `${ep}:${port}`, allowedIps: [`${peerAddr}/32`] },
            ],
          }),
        );
      }
    } catch (err) {
      for (const e of ends) await e.stop();
      throw err;
    }
    return {
      ipA,
      ipB,
      pids: () => ends.map((e) => e.process.pid!),
      stop: async () => {
        for (const e of ends) await e.stop();
      },
    };
  }
  const dataplane = impl === "trellis" ? "native" : "wasm";
  const ends: Awaited<ReturnType<typeof trellisPeer>>[] = [];
  try {
    for (const [ns, me, other, addr, peerAddr, host, ep] of [
      [net.nsA, ka, kb, ipA, ipB, net.ipA, net.ipB],
      [net.nsB, kb, ka, ipB, ipA, net.ipB, net.ipA],
    ] as const) {
      ends.push(
        await trellisPeer(ns, dataplane, {
          privateKey: me.privateKey,
          listen: { host, port },
          ifname: `trbt${tag}${ends.length}`,
          address: `${addr}/32`,
          peers: [{ publicKey: other.publicKey, endpoint: `${ep}:${port}`, allowedIps: [`${peerAddr}/32`] }],
        }),
      );
    }
  } catch (err) {
    for (const e of ends) await e.stop();
    throw err;
  }
  return {
    ipA,
    ipB,
    pids: () => ends.map((e) => e.child.pid!),
    stop: async () => {
      for (const e of ends) await e.stop();
    },
  };
}

interface IperfResult {
  /** Receiver's bits per second. */
  bps: number;
  /** Receiver's bytes. */
  bytes: number;
  /** UDP: packets the receiver got per second. */
  pps: number;
}

async function iperf(
  net: ReturnType<typeof createLinkedNamespaces>,
  t: Tunnel,
  mode: "tcp" | "tcp-reverse" | "udp",
): Promise<IperfResult> {
  const server = spawnIn(net.nsA, "iperf3", ["-s", "-1", "--forceflush", "-B", t.ipA]);
  let out = "";
  server.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  server.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  try {
    for (const deadline = Date.now() + 15_000; !/Server listening/.test(out);) {
      if (Date.now() > deadline || server.exitCode !== null)
        throw new Error(`iperf3 server did not start: ${out}`);
      await sleep(50);
    }
    const secs = mode === "udp" ? UDP_SECONDS : SECONDS;
    const args = ["-c", t.ipA, "-t", String(secs), "-J"];
    if (mode === "tcp-reverse") args.push("-R");
    if (mode === "udp") args.push("-u", "-b", "0", "-l", String(UDP_PAYLOAD));
    const { stdout } = await execIn(net.nsB, "iperf3", args, { timeoutMs: (secs + 30) * 1000 });
    // The receiver's side: what arrived (a UDP sender at full rate loses much on the way).
    const r = JSON.parse(stdout) as {
      end: { sum_received: { bits_per_second: number; bytes: number; seconds: number } };
    };
    const s = r.end.sum_received;
    return {
      bps: s.bits_per_second,
      bytes: s.bytes,
      pps: mode === "udp" ? s.bytes / UDP_PAYLOAD / s.seconds : 0,
    };
  } finally {
    server.kill("SIGKILL");
  }
}

interface Sample {
  mbps: number[];
  pps: number[];
  cpuS: number;
  bytes: number;
}

const impls: Impl[] = ["wireguard_go", "trellis", ...(WITH_WASM ? (["wasm"] as const) : [])];
const samples = new Map<Impl, Sample>(impls.map((i) => [i, { mbps: [], pps: [], cpuS: 0, bytes: 0 }]));
const net = createLinkedNamespaces();
const cleanup = () => {
  try {
    net.remove();
  } catch (err) {
    console.error(`bench tunnel: cleanup: ${(err as Error).message}`);
  }
};
process.once("SIGINT", () => {
  cleanup();
  process.exit(130);
});
console.log(
  `# ${SECONDS} s TCP each way and ${UDP_SECONDS} s UDP per implementation and round, ${ROUNDS} rounds, MTU ${MTU}`,
);
console.log(`# baseline: the newest wireguard-go (${wgGo}) on both ends`);
try {
  let n = 10;
  for (let round = 1; round <= ROUNDS; round++) {
    for (const impl of impls) {
      const t = await openTunnel(impl, net, n++);
      const s = samples.get(impl)!;
      try {
        // Wait for the handshake: a few pings until one answers.
        for (let i = 0; ; i++) {
          const r = await execIn(net.nsB, "ping", ["-c", "1", "-W", "1", t.ipA], { timeoutMs: 5000 }).then(
            () => true,
            () => false,
          );
          if (r) break;
          if (i > 20) throw new Error(`${impl}: the tunnel did not come up`);
        }
        for (const mode of ["tcp", "tcp-reverse"] as const) {
          const before = t.pids().reduce((a, p) => a + cpuSeconds(p), 0);
          const r = await iperf(net, t, mode);
          const after = t.pids().reduce((a, p) => a + cpuSeconds(p), 0);
          s.mbps.push(r.bps / 1e6);
          s.cpuS += after - before;
          s.bytes += r.bytes;
          console.log(
            `# round ${round} ${impl} ${mode}: ${(r.bps / 1e6).toFixed(0)} Mbit/s, ${(((after - before) / r.bytes) * 1e9).toFixed(2)} CPU-s/GB`,
          );
        }
        const u = await iperf(net, t, "udp");
        s.pps.push(u.pps);
        console.log(
          `# round ${round} ${impl} udp: ${u.pps.toFixed(0)} packets/s received (1,400-byte payloads)`,
        );
      } finally {
        await t.stop();
      }
    }
  }
} finally {
  cleanup();
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const fig = (impl: Impl) => {
  const s = samples.get(impl)!;
  return {
    mbps: mean(s.mbps),
    pps: mean(s.pps),
    cpu: s.bytes > 0 ? (s.cpuS / s.bytes) * 1e9 : null,
  };
};
const tr = fig("trellis");
const wg = fig("wireguard_go");
const wa = WITH_WASM ? fig("wasm") : null;
const ratio = (a: number | null, b: number | null) => (a !== null && b ? a / b : null);
const figures: Figures = {
  trellis_Mbps: tr.mbps,
  wireguard_go_Mbps: wg.mbps,
  ratio: ratio(tr.mbps, wg.mbps),
  trellis_udp_pps: tr.pps,
  wireguard_go_udp_pps: wg.pps,
  trellis_cpu_s_per_GB: tr.cpu,
  wireguard_go_cpu_s_per_GB: wg.cpu,
  wasm_Mbps: wa?.mbps ?? null,
  wasm_ratio: ratio(wa?.mbps ?? null, wg.mbps),
  wasm_udp_pps: wa?.pps ?? null,
  wasm_cpu_s_per_GB: wa?.cpu ?? null,
};
report("tunnel", figures, json);
