// Two gateways, each behind a masquerading NAT of its own, find a direct
// UDP path to each other: each learns its public endpoint from the relay's
// STUN server and publishes it through the control server; pings to the
// peer's endpoints plus a "call me maybe" over the relay open both NATs at
// once. When a NAT drops UDP the relay carries on without a lost ping, and
// when UDP returns, so does the direct path. Everything as a user runs it:
// `trellis up`, `trellis ping`, `trellis status --json`, `trellis netcheck`.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPreAuthKey } from "@trellis/control";
import { openDatabase, type Database } from "@trellis/db";
import { cli, stopDaemon } from "../src/gateway";
import { canUseNetns, createDoubleNatTopology, type DoubleNatTopology } from "../src/netns";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until } from "../src/wait";
import { tearDown } from "../src/teardown";

/** The native data plane's addon (built by setup when cargo is here; TUN mode then runs on it). */
const NATIVE_ADDON = fileURLToPath(
  new URL("../../gateway/build/Release/trellis_dataplane.node", import.meta.url),
);

if (!canUseNetns) console.warn("skipping NAT traversal: needs root, ip netns and nft");

for (const mode of ["userspace", "tun"] as const) {
  const data = tempDataDir();
  const work = mkdtempSync(join(tmpdir(), `trellis-nat-${mode}-`));
  const keyFile = join(work, "auth.key");
  const dirA = join(work, "a");
  const dirB = join(work, "b");
  let topo: DoubleNatTopology;
  let trellis: RunningTrellis;
  let db: Database;
  let url: string;

  interface PeerStatus {
    name: string;
    path: string;
    pathDetail: string;
  }

  async function peerOf(dir: string, ns: string, name: string): Promise<PeerStatus | undefined> {
    const r = await cli(["status", "--json", "--state-dir", dir], ns, 15_000);
    if (r.code !== 0) throw new Error(`trellis status failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { peers: PeerStatus[] }).peers.find((p) => p.name === name);
  }

  /** Ping until `pred` holds for the peer's status (pings keep traffic, and so path upkeep, going). */
  async function pingUntil(what: string, pred: (p: PeerStatus) => boolean, ms = 45_000): Promise<PeerStatus> {
    let last: unknown = null;
    try {
      return await until(
        what,
        async () => {
          const ping = await cli(["ping", "gw-b", "--timeout", "3", "--state-dir", dirA], topo.a.ns, 15_000);
          const p = await peerOf(dirA, topo.a.ns, "gw-b");
          last = { ping: ping.stdout || ping.stderr, peer: p };
          return ping.code === 0 && p && pred(p) ? p : null;
        },
        ms,
      );
    } catch (err) {
      const b = await cli(["status", "--json", "--state-dir", dirB], topo.b.ns, 15_000);
      throw new Error(`${(err as Error).message}; last seen at A: ${JSON.stringify(last)}; B: ${b.stdout}`, {
        cause: err,
      });
    }
  }

  describe.skipIf(!canUseNetns)(`NAT traversal between gateways (${mode})`, () => {
    beforeAll(async () => {
      topo = createDoubleNatTopology();
      trellis = await startTrellis({ dataDir: data.dir, env: { HOST: topo.hostIp } });
      url = trellis.url.replace("127.0.0.1", topo.hostIp);
      db = await openDatabase(`file:${join(data.dir, "trellis.db")}`);
      const key = (await createPreAuthKey(db, { tags: ["tag:node"], reusable: true }, "local")).key;
      writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
      for (const [dir, host, name] of [
        [dirA, topo.a, "gw-a"],
        [dirB, topo.b, "gw-b"],
      ] as const) {
        const up = await cli(
          [
            "up",
            "--login-server",
            url,
            "--auth-key",
            `file:${keyFile}`,
            "--hostname",
            name,
            ...(mode === "userspace" ? ["--userspace"] : []),
            "--state-dir",
            dir,
          ],
          host.ns,
        );
        expect(up.code, up.stderr).toBe(0);
      }
    }, 180_000);

    afterAll(
      () =>
        tearDown(
          ...streamProcesses.splice(0).map((p) => () => p.kill("SIGKILL")),
          ...[dirA, dirB].map((dir) => () => stopDaemon(dir)),
          () => topo?.remove(),
          () => db?.close(),
          () => trellis?.stop(),
          () => data.remove(),
          () => rmSync(work, { recursive: true, force: true }),
        ),
      60_000,
    );

    it("learns the public endpoint behind the NAT from STUN (netcheck)", async () => {
      const r = await until("a netcheck with UDP", async () => {
        const res = await cli(["netcheck", "--json", "--state-dir", dirA], topo.a.ns, 30_000);
        if (res.code !== 0) return null;
        const report = JSON.parse(res.stdout) as {
          udp: boolean;
          stun: { mapped: string | null }[];
          endpoints: string[];
        };
        return report.udp ? report : null;
      });
      // The STUN server saw the NAT's public address, not the private one.
      expect(r.stun[0]!.mapped).toMatch(new RegExp(`^${topo.a.publicIp.replaceAll(".", "\\.")}:\\d+$`));
      expect(r.endpoints).toContain(r.stun[0]!.mapped);
      const text = await cli(["netcheck", "--state-dir", dirA], topo.a.ns, 30_000);
      expect(text.stdout).toMatch(/UDP: true/);
      expect(text.stdout).toMatch(/Relay latencies/);
    });

    it("goes direct through both NATs, falls back to the relay when UDP is dropped, and returns", async () => {
      let stream: Awaited<ReturnType<typeof openStream>> | null = null;
      const direct = await pingUntil("a direct path from A to B", (p) => p.path === "direct");
      // Through B's NAT: the path is B's public address.
      expect(direct.pathDetail).toMatch(new RegExp(`^UDP ${topo.b.publicIp.replaceAll(".", "\\.")}:\\d+`));
      const back = await peerOf(dirB, topo.b.ns, "gw-a");
      expect(back?.path).toBe("direct");
      const status = await cli(["status", "--state-dir", dirA], topo.a.ns);
      expect(status.stdout).toMatch(/gw-b .* direct/);
      if (mode === "tun") {
        // The host's own traffic crosses the direct path: on the native data
        // plane (when its addon is built here) the addon's threads carry it.
        const st = JSON.parse((await cli(["status", "--json", "--state-dir", dirA], topo.a.ns)).stdout) as {
          dataplane: string | null;
          self: { addresses: string[] };
        };
        expect(st.dataplane).toBe(existsSync(NATIVE_ADDON) ? "native" : "wasm");
        const bStatus = JSON.parse(
          (await cli(["status", "--json", "--state-dir", dirB], topo.b.ns)).stdout,
        ) as {
          self: { addresses: string[] };
        };
        const bV4 = bStatus.self.addresses.find((a) => !a.includes(":"))!.split("/")[0]!;
        const kernelPing = execFileSync(
          "ip",
          ["netns", "exec", topo.a.ns, "ping", "-c", "5", "-i", "0.2", "-W", "3", bV4],
          {
            encoding: "utf8",
            timeout: 30_000,
          },
        );
        expect(kernelPing).toMatch(/5 packets transmitted, 5 received/);
        // An open TCP connection across the tunnel, kept through the cut and the return.
        stream = await openStream(topo.a.ns, topo.b.ns, bV4);
        await until("the TCP stream echoing", () => stream!.echoed() > 5, 20_000);
      }

      const block = topo.a.blockUdp();
      try {
        const relayed = await pingUntil("the relay taking over", (p) => p.path === "relay");
        expect(relayed.pathDetail).toMatch(/relay region 1/);
        // Every ping is still answered while UDP is dropped.
        for (let i = 0; i < 3; i++) {
          const ping = await cli(["ping", "gw-b", "--timeout", "5", "--state-dir", dirA], topo.a.ns);
          expect(ping.stdout).toMatch(/via relay/);
        }
      } finally {
        block.remove();
      }
      await pingUntil("the direct path again", (p) => p.path === "direct");
      if (stream) {
        const before = stream.echoed();
        await until("the TCP stream echoing on the direct path", () => stream!.echoed() > before + 5, 20_000);
        const end = await stream.finish();
        expect(end, "the TCP connection through the path changes").toMatch(/^OK sent=(\d+) echoed=\1$/);
      }
    }, 180_000);

    it("with IPv6 routed to both hosts, stays direct over IPv6 when IPv4 UDP is dropped", async () => {
      const v6 = topo.addIpv6();
      // Each side publishes its IPv6 endpoint (endpoints are refreshed every 25 s) and learns the other's.
      await until(
        "the IPv6 endpoints in the peers' maps",
        async () => {
          const r = await cli(["status", "--json", "--state-dir", dirA], topo.a.ns, 15_000);
          const s = JSON.parse(r.stdout) as { udp: { endpoints: string[] } | null };
          const ping = await cli(["ping", "gw-b", "--timeout", "3", "--state-dir", dirA], topo.a.ns, 15_000);
          return ping.code === 0 && s.udp?.endpoints.some((e) => e.startsWith(`[${v6.a}]:`));
        },
        60_000,
      );
      const block = topo.a.blockUdp("ip");
      try {
        const direct = await pingUntil(
          "a direct path over IPv6",
          (p) => p.path === "direct" && p.pathDetail.includes(`[${v6.b}]:`),
          90_000,
        );
        expect(direct.pathDetail).toMatch(/^UDP \[fd77:/);
        const back = await peerOf(dirB, topo.b.ns, "gw-a");
        expect(back?.path).toBe("direct");
      } finally {
        block.remove();
      }
    }, 180_000);
  });
}

/**
 * A TCP echo server in `serverNs` on `ip`:7777 and, in `clientNs`, a client
 * writing a numbered line every 100 ms over one connection and counting the
 * echoes. `finish()` stops the writing, waits for what is in flight, and
 * returns "OK sent=N echoed=N" — or the error that ended the connection.
 */
/** Processes of openStream, killed by afterAll whatever happened. */
const streamProcesses: ChildProcess[] = [];

async function openStream(clientNs: string, serverNs: string, ip: string) {
  const server: ChildProcess = spawn(
    "ip",
    [
      "netns",
      "exec",
      serverNs,
      process.execPath,
      "-e",
      `require("net").createServer((c) => c.pipe(c)).listen(7777, ${JSON.stringify(ip)}, () => console.log("listening"))`,
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  streamProcesses.push(server);
  // The client connects once: on a loaded machine the server's Node can take longer to start than the client's.
  let serverOut = "";
  server.stdout!.on("data", (d: Buffer) => (serverOut += d.toString()));
  await until("the echo server listening", () => serverOut.includes("listening"), 20_000);
  const client: ChildProcess = spawn(
    "ip",
    [
      "netns",
      "exec",
      clientNs,
      process.execPath,
      "-e",
      `const c = require("net").connect(7777, ${JSON.stringify(ip)});
       let sent = 0, echoed = 0, buf = "", failed = null, timer = null;
       const start = () => { timer = setInterval(() => { c.write(sent++ + "\\n"); }, 100); };
       c.on("connect", start);
       c.on("data", (d) => { buf += d; const lines = buf.split("\\n"); buf = lines.pop(); echoed += lines.length; process.stdout.write("E" + echoed + "\\n"); });
       c.on("error", (e) => { failed = e.message; console.log("BROKEN " + e.message); });
       c.on("close", () => { if (!failed) console.log("BROKEN closed"); });
       process.stdin.on("data", () => { clearInterval(timer); setTimeout(() => { console.log(failed ? "BROKEN " + failed : "OK sent=" + sent + " echoed=" + echoed); process.exit(0); }, 3000); });`,
    ],
    { stdio: ["pipe", "pipe", "ignore"] },
  );
  streamProcesses.push(client);
  let out = "";
  client.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const echoed = () => Number(/E(\d+)\n(?!.*E\d)/s.exec(out)?.[1] ?? 0);
  return {
    echoed,
    async finish(): Promise<string> {
      const exited = new Promise<void>((r) => client.once("exit", () => r()));
      client.stdin!.write("stop\n");
      const timer = setTimeout(() => client.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
      server.kill("SIGKILL");
      return out
        .split("\n")
        .filter((l) => /^(OK|BROKEN)/.test(l))
        .join(" | ");
    },
  };
}
