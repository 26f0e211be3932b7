// The gateway as a user runs it: `trellis up --login-server URL --auth-key
// KEY` against the real server, the daemon started in the background, and a
// Node-engine peer in this process reaching it. Userspace mode runs anywhere;
// TUN mode runs as root inside a network namespace this test creates (the
// kernel there answers the peer's pings through the TUN device).
import { execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPreAuthKey } from "@trellis/control";
import { nodeEngine } from "@trellis/client/node";
import type { NodeEngine } from "@trellis/client";
import { openDatabase, type Database } from "@trellis/db";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { api, type Caller, firstAdmin } from "../src/console";
import { cli, stopDaemon, TRELLIS } from "../src/gateway";
import { canUseNetns, createGatewayTopology, type GatewayTopology } from "../src/netns";
import { ROOT, startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until as untilWithin } from "../src/wait";
import { tearDown } from "../src/teardown";

/** Waits here cross a daemon start and network namespaces: 30 s. */
const until = <T>(what: string, fn: () => T | Promise<T>) => untilWithin(what, fn, 30_000);

/** The native data plane's addon (TUN mode runs on it when it is built). */
const NATIVE_ADDON = join(ROOT, "gateway/build/Release/trellis_dataplane.node");
const canUseTun =
  canUseNetns &&
  existsSync("/dev/net/tun") &&
  existsSync(join(ROOT, "gateway/build/Release/trellis_tun.node"));
if (!canUseTun)
  console.warn("skipping the gateway's TUN journey: needs root, ip netns, nft and the TUN addon");

const data = tempDataDir();
const work = mkdtempSync(join(tmpdir(), "trellis-gw-"));
const keyFile = join(work, "auth.key");
const badKeyFile = join(work, "bad.key");
let trellis: RunningTrellis;
let url: string;
let db: Database;
const engines: NodeEngine[] = [];
const stateDirs: string[] = [];
let echo: Server | undefined;
let ns: GatewayTopology | undefined;

function stateDir(): string {
  const dir = mkdtempSync(join(work, "state-"));
  stateDirs.push(dir);
  return dir;
}

beforeAll(async () => {
  if (canUseTun) ns = createGatewayTopology();
  trellis = await startTrellis({ dataDir: data.dir, env: ns ? { HOST: ns.hostIp } : {} });
  url = ns ? trellis.url.replace("127.0.0.1", ns.hostIp) : trellis.url;
  db = await openDatabase(`file:${join(data.dir, "trellis.db")}`);
  const key = (await createPreAuthKey(db, { tags: ["tag:node"], reusable: true }, "local")).key;
  writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
  writeFileSync(badKeyFile, `tskey-auth-${"x".repeat(40)}\n`, { mode: 0o600 });
}, 180_000);

afterAll(
  () =>
    tearDown(
      ...engines.map((e) => () => e.close()),
      ...stateDirs.map((dir) => () => stopDaemon(dir)),
      () => ns?.remove(),
      () => echo?.close(),
      () => db?.close(),
      () => trellis?.stop(),
      () => data.remove(),
      () => rmSync(work, { recursive: true, force: true }),
    ),
  60_000,
);

let adminCaller: Promise<Caller> | undefined;
/** The server's first admin, made once through the setup link (the link works once). */
function admin(): Promise<Caller> {
  adminCaller ??= firstAdmin(url, trellis.setupLink());
  return adminCaller;
}

interface Machine {
  id: string;
  name: string;
  hostname: string;
  advertisedRoutes: string[];
  exitNodeAdvertised: boolean;
}
/** The console's machines whose name starts with `name`. */
async function machines(name: string): Promise<Machine[]> {
  const r = await api(url, await admin(), "GET", `/api/v1/machines?q=${name}`);
  expect(r.status).toBe(200);
  return (r.body.items as Machine[]).filter((m) => m.name.startsWith(name));
}

async function peer(hostname: string, routableIPs: string[] = []): Promise<NodeEngine> {
  const e = nodeEngine({
    baseUrl: url,
    privateKey: generateKeyPair().privateKey,
    register: { preAuthKey: readFileSync(keyFile, "utf8").trim(), hostname, os: "linux", routableIPs },
    webrtc: false,
  });
  engines.push(e);
  await e.start();
  return e;
}

describe("trellis up in userspace mode", () => {
  let dir: string;
  let p: NodeEngine;

  it("registers, prints the machine and its addresses, and says advertised routes await approval", async () => {
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo!.listen(0, "127.0.0.1", r));
    const port = (echo.address() as { port: number }).port;
    dir = stateDir();
    const up = await cli([
      "up",
      "--login-server",
      url,
      "--auth-key",
      `file:${keyFile}`,
      "--hostname",
      "gw-user",
      "--userspace",
      "--forward-tcp",
      String(port),
      "--advertise-routes",
      "10.77.250.0/24",
      "--state-dir",
      dir,
    ]);
    expect(up.stderr).toMatch(/started the daemon/);
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/this machine is gw-user/);
    expect(up.stdout).toMatch(/addresses: 100\.64\.\d+\.\d+, fd7a:115c:a1e0:/);
    expect(up.stdout).toMatch(/awaiting approval in the console: 10\.77\.250\.0\/24/);
    expect(up.stdout).toContain(`${url}/machines`);
    // The auth key is in no file of the state directory and never in the daemon's log.
    const key = readFileSync(keyFile, "utf8").trim();
    expect(readFileSync(join(dir, "prefs.json"), "utf8")).not.toContain(key);
    expect(readFileSync(join(dir, "trellisd.log"), "utf8")).not.toContain(key);

    p = await peer("peer-one");
    const status = await until("the peer in trellis status --json", async () => {
      const r = await cli(["status", "--json", "--state-dir", dir]);
      expect(r.code).toBe(0);
      const s = JSON.parse(r.stdout) as { state: string; peers: { name: string }[] };
      return s.peers.some((x) => x.name === "peer-one") ? s : null;
    });
    expect(status.state).toBe("running");

    // The peer reaches the gateway's stack: ping, and TCP to a forwarded port.
    const pong = await until("a ping reply from the gateway", () =>
      p.ping("gw-user", { timeoutMs: 3000 }).catch(() => null),
    );
    expect(pong.path).toBe("relay");
    const conn = await p.connectTcp("gw-user", port);
    const writer = conn.writable.getWriter();
    const reader = conn.readable.getReader();
    const payload = new TextEncoder().encode("hello through the tailnet");
    await writer.write(payload);
    let got = "";
    while (got.length < payload.length) {
      const r = await reader.read();
      if (r.done) break;
      got += new TextDecoder().decode(r.value);
    }
    expect(got).toBe("hello through the tailnet");
    reader.releaseLock();
    writer.releaseLock();
    await conn.close();

    const ping = await cli(["ping", "peer-one", "--state-dir", dir]);
    expect(ping.code).toBe(0);
    expect(ping.stdout).toMatch(/^pong from peer-one \(100\.64\.\d+\.\d+\) via (relay|direct) in \d+ ms/);

    const human = await cli(["status", "--state-dir", dir]);
    expect(human.stdout).toMatch(/peer {3}peer-one .* (relay|direct)/);
    const after = JSON.parse((await cli(["status", "--json", "--state-dir", dir])).stdout) as {
      peers: { name: string; rxBytes: number; lastHandshake: number | null }[];
    };
    const entry = after.peers.find((x) => x.name === "peer-one")!;
    expect(entry.rxBytes).toBeGreaterThan(0);
    expect(entry.lastHandshake).not.toBeNull();
  });

  it("set changes the running node's routes, exit node and hostname: the same machine, re-registered", async () => {
    const [before] = await machines("gw-user");
    expect(before).toMatchObject({ advertisedRoutes: ["10.77.250.0/24"], exitNodeAdvertised: false });
    const set = await cli([
      "set",
      "--advertise-routes",
      "10.77.250.0/24,10.77.251.0/24",
      "--advertise-exit-node",
      "--state-dir",
      dir,
    ]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain("advertised routes: 10.77.250.0/24, 10.77.251.0/24");
    expect(set.stdout).toContain("exit node:         advertised");
    expect(set.stdout).toMatch(
      /awaiting approval in the console: 0\.0\.0\.0\/0, 10\.77\.250\.0\/24, 10\.77\.251\.0\/24, ::\/0/,
    );
    // The console shows the new routes on the same machine; no other machine appeared.
    const after = await machines("gw-user");
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({
      id: before!.id,
      name: "gw-user",
      advertisedRoutes: ["0.0.0.0/0", "10.77.250.0/24", "10.77.251.0/24", "::/0"],
      exitNodeAdvertised: true,
    });
    // The node's own map and its prefs (kept for the next daemon) say the same.
    const s = JSON.parse((await cli(["status", "--json", "--state-dir", dir])).stdout) as {
      state: string;
      advertisedRoutes: string[];
      prefs: { advertiseRoutes: string[]; advertiseExitNode: boolean; forwardTcp: number[] };
    };
    expect(s.state).toBe("running");
    expect(s.advertisedRoutes).toEqual(after[0]!.advertisedRoutes);
    expect(s.prefs).toMatchObject({
      advertiseRoutes: ["10.77.250.0/24", "10.77.251.0/24"],
      advertiseExitNode: true,
    });
    expect(s.prefs.forwardTcp).toHaveLength(1); // what set was not given stays
    expect(JSON.parse(readFileSync(join(dir, "prefs.json"), "utf8")).prefs.advertiseExitNode).toBe(true);

    // A route the server refuses changes nothing, and says why.
    const refused = await cli(["set", "--advertise-routes", "100.64.0.0/24", "--state-dir", dir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/trellis set: the control server refused the new settings: .*tailnet/);
    expect(JSON.parse(readFileSync(join(dir, "prefs.json"), "utf8")).prefs.advertiseRoutes).toEqual([
      "10.77.250.0/24",
      "10.77.251.0/24",
    ]);

    // Withdraw everything and rename: still the same machine (its DNS name stays).
    const back = await cli([
      "set",
      "--advertise-routes=",
      "--advertise-exit-node=false",
      "--hostname",
      "gw-user-renamed",
      "--state-dir",
      dir,
    ]);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain("advertised routes: none");
    expect(await machines("gw-user")).toMatchObject([
      {
        id: before!.id,
        name: "gw-user",
        hostname: "gw-user-renamed",
        advertisedRoutes: [],
        exitNodeAdvertised: false,
      },
    ]);
    // The node still carries traffic: its engine kept running.
    expect(await p.ping("gw-user", { timeoutMs: 5000 })).toMatchObject({ peer: "gw-user" });
  });

  it("refuses a bad auth key with a clear message, and the daemon stays healthy", async () => {
    const other = stateDir();
    const bad = await cli([
      "up",
      "--login-server",
      url,
      "--auth-key",
      `file:${badKeyFile}`,
      "--userspace",
      "--state-dir",
      other,
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /trellis up: the control server refused the registration: .*\(invalid_preauth_key\)/,
    );
    const status = await cli(["status", "--state-dir", other]);
    expect(status).toMatchObject({ code: 0, stdout: "Stopped (not logged in)\n" });
  });

  it("says so when the control server cannot be reached", async () => {
    const other = stateDir();
    const r = await cli([
      "up",
      "--login-server",
      "http://127.0.0.1:9",
      "--auth-key",
      `file:${keyFile}`,
      "--userspace",
      "--state-dir",
      other,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/trellis up: could not reach the control server at http:\/\/127\.0\.0\.1:9/);
  });

  it("down stops the node and keeps the daemon; logout forgets the key", async () => {
    const down = await cli(["down", "--state-dir", dir]);
    expect(down.code).toBe(0);
    const s = JSON.parse((await cli(["status", "--json", "--state-dir", dir])).stdout) as { state: string };
    expect(s.state).toBe("stopped");
    expect((await cli(["ping", "peer-one", "--state-dir", dir])).stderr).toMatch(/not up/);
    expect((await cli(["set", "--accept-routes", "--state-dir", dir])).stderr).toMatch(
      /trellis set: the node is down: trellis up brings it up/,
    );
    const logout = await cli(["logout", "--state-dir", dir]);
    expect(logout.code).toBe(0);
    expect(existsSync(join(dir, "node.key"))).toBe(false);
    expect((await cli(["status", "--state-dir", dir])).stdout).toBe("Stopped (not logged in)\n");
    // A new key without an auth key: told what to give.
    const again = await cli(["up", "--login-server", url, "--userspace", "--state-dir", dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/this node is not registered at .*: give --auth-key/);
  });
});

describe.skipIf(!canUseTun)("trellis up in TUN mode (root, in a network namespace)", () => {
  it("answers the tailnet's names with MagicDNS; --accept-dns points resolv.conf at it until down", async () => {
    const dir = stateDir();
    const nsName = ns!.name;
    // `ip netns exec` shows /etc/netns/<ns>/resolv.conf as /etc/resolv.conf: the daemon changes
    // that file, never the host's.
    const etc = join("/etc/netns", nsName);
    mkdirSync(etc, { recursive: true });
    const original = `nameserver ${ns!.hostIp}\n`;
    writeFileSync(join(etc, "resolv.conf"), original);
    try {
      await peer("peer-dns");
      const up = await cli(
        [
          "up",
          "--login-server",
          url,
          "--auth-key",
          `file:${keyFile}`,
          "--hostname",
          "gw-dns",
          "--accept-dns",
          "--state-dir",
          dir,
        ],
        nsName,
      );
      expect(up.code, up.stderr).toBe(0);
      const st = await until("MagicDNS configured", async () => {
        const r = await cli(["status", "--json", "--state-dir", dir], nsName);
        const s = JSON.parse(r.stdout) as {
          self: { addresses: string[] };
          dns: { resolver: string | null; systemConfigured: boolean; error: string | null } | null;
          peers: { name: string; addresses: string[] }[];
        };
        return s.dns?.systemConfigured && s.peers.some((p) => p.name === "peer-dns") ? s : null;
      });
      const self4 = st.self.addresses[0]!.split("/")[0]!;
      expect(st.dns).toEqual({ resolver: `${self4}:53`, systemConfigured: true, error: null });
      expect(readFileSync(join(etc, "resolv.conf"), "utf8")).toMatch(
        new RegExp(`^nameserver ${self4.replaceAll(".", "\\.")}$[\\s\\S]*^search trellis\\.internal`, "m"),
      );
      const peer4 = st.peers.find((p) => p.name === "peer-dns")!.addresses[0]!.split("/")[0]!;
      // The system's own resolver library, through resolv.conf: the full name and the short one.
      const getent = (name: string) =>
        execFileSync("ip", ["netns", "exec", nsName, "getent", "ahostsv4", name], {
          encoding: "utf8",
          timeout: 10_000,
        });
      expect(getent("peer-dns.trellis.internal")).toContain(peer4);
      expect(getent("peer-dns")).toContain(peer4);
      expect(() => getent("nobody-here.trellis.internal")).toThrow();

      const down = await cli(["down", "--state-dir", dir], nsName);
      expect(down.code, down.stderr).toBe(0);
      expect(readFileSync(join(etc, "resolv.conf"), "utf8")).toBe(original);
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  });

  it("routes the tailnet through trellis0: the kernel answers a peer's pings; down removes the device", async () => {
    const dir = stateDir();
    const nsName = ns!.name;
    const up = await cli(
      [
        "up",
        "--login-server",
        url,
        "--auth-key",
        `file:${keyFile}`,
        "--hostname",
        "gw-tun",
        "--state-dir",
        dir,
      ],
      nsName,
    );
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/TUN device trellis0/);
    // The native data plane when its addon is built here (CI builds it), the WASM engine otherwise.
    expect(up.stdout).toMatch(existsSync(NATIVE_ADDON) ? /\(native data plane\)/ : /\(wasm data plane\)/);
    const addrs = /addresses: (\S+), (\S+)/.exec(up.stdout)!;
    const [v4, v6] = [addrs[1]!, addrs[2]!];
    const link = execFileSync("ip", ["-n", nsName, "addr", "show", "dev", "trellis0"], { encoding: "utf8" });
    expect(link).toContain(`${v4}/32`);
    expect(link).toContain(`${v6}/128`);

    const p = await peer("peer-tun");
    await until("the gateway in the peer's map", () => p.netmap?.peers.some((x) => x.name === "gw-tun"));
    const pong = await until("the kernel's ping reply over IPv4", () =>
      p.ping(v4, { timeoutMs: 3000 }).catch(() => null),
    );
    expect(pong).toMatchObject({ peer: "gw-tun", address: v4 });
    const pong6 = await p.ping(v6, { timeoutMs: 5000 });
    expect(pong6).toMatchObject({ peer: "gw-tun", address: v6 });

    // The gateway pings the peer itself: its engine builds the echo (no stack in TUN mode).
    const ping = await cli(["ping", "peer-tun", "--state-dir", dir], nsName);
    expect(ping.code, ping.stderr).toBe(0);
    expect(ping.stdout).toMatch(/^pong from peer-tun \(100\.64\.\d+\.\d+\) via relay in \d+ ms/);

    // --accept-routes: a peer's approved subnet route is routed into trellis0, and taken out again.
    const subnet = "10.77.252.0/24";
    await peer("peer-subnet", [subnet]);
    const [router] = await machines("peer-subnet");
    const approve = await api(url, await admin(), "POST", `/api/v1/machines/${router!.id}/routes`, {
      routes: [subnet],
    });
    expect(approve.status).toBe(200);
    const route = () =>
      execFileSync("ip", ["-n", nsName, "route", "show", subnet], { encoding: "utf8" }).trim();
    expect(route()).toBe("");
    const accept = await cli(["set", "--accept-routes", "--state-dir", dir], nsName);
    expect(accept.code, accept.stderr).toBe(0);
    expect(accept.stdout).toContain("accept routes:     yes");
    await until("the peer's route on trellis0", () => route().includes("dev trellis0"));
    const st = JSON.parse((await cli(["status", "--json", "--state-dir", dir], nsName)).stdout) as {
      acceptedRoutes: { routes: string[]; error: string | null };
    };
    expect(st.acceptedRoutes).toEqual({ routes: [subnet], error: null });
    const off = await cli(["set", "--accept-routes=false", "--state-dir", dir], nsName);
    expect(off.code, off.stderr).toBe(0);
    expect(route()).toBe("");

    const down = await cli(["down", "--state-dir", dir], nsName);
    expect(down.code).toBe(0);
    const links = execFileSync("ip", ["-n", nsName, "-o", "link", "show"], { encoding: "utf8" });
    expect(links).not.toContain("trellis0");

    // A clean shutdown removes the socket and the pid file.
    expect(await stopDaemon(dir)).toBe("exited");
    expect(existsSync(join(dir, "trellisd.sock"))).toBe(false);
    expect(existsSync(join(dir, "trellisd.pid"))).toBe(false);
  });

  it("forwards an approved advertised route with masquerade; SIGTERM removes everything it added", async () => {
    const { name: nsName, lanNs, lanPrefix, lanHostIp } = ns!;
    const dir = stateDir();
    // The gateway namespace's own forwarding switch (each namespace has one).
    const forwarding = () =>
      execFileSync("ip", ["netns", "exec", nsName, "cat", "/proc/sys/net/ipv4/ip_forward"], {
        encoding: "utf8",
      }).trim();
    expect(forwarding()).toBe("0");
    const up = await cli(
      [
        "up",
        "--login-server",
        url,
        "--auth-key",
        `file:${keyFile}`,
        "--hostname",
        "gw-router",
        "--advertise-routes",
        lanPrefix,
        "--state-dir",
        dir,
      ],
      nsName,
    );
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`awaiting approval in the console: ${lanPrefix}`);

    // An admin approves the route in the console's API.
    const [machine] = await machines("gw-router");
    const approved = await api(url, await admin(), "POST", `/api/v1/machines/${machine!.id}/routes`, {
      routes: [lanPrefix],
    });
    expect(approved.status).toBe(200);

    await until("the route forwarded at the gateway", async () => {
      const r = await cli(["status", "--json", "--state-dir", dir], nsName);
      const s = JSON.parse(r.stdout) as { forwarding: { routes: string[]; error: string | null } | null };
      expect(s.forwarding?.error ?? null).toBeNull();
      return s.forwarding?.routes.includes(lanPrefix);
    });
    expect(forwarding()).toBe("1");
    const table = execFileSync("ip", ["netns", "exec", nsName, "nft", "list", "table", "inet", "trellis"], {
      encoding: "utf8",
    });
    expect(table).toMatch(/masquerade/);

    // A peer reaches the LAN host, which has no route to the tailnet: the answer comes back masqueraded.
    const p = await peer("peer-lan");
    await until("the route in the peer's map", () =>
      p.netmap?.peers.find((x) => x.name === "gw-router")?.allowedIPs.includes(lanPrefix),
    );
    const pong = await until("a ping reply from the LAN host", () =>
      p.ping(lanHostIp, { timeoutMs: 3000 }).catch(() => null),
    );
    expect(pong.address).toBe(lanHostIp);
    expect(() => execFileSync("ip", ["-n", lanNs, "route", "get", "100.64.0.1"], { stdio: "pipe" })).toThrow(
      /unreachable/,
    );

    // SIGTERM while up: the daemon removes the table, the device and its routes, and puts forwarding back.
    expect(await stopDaemon(dir)).toBe("exited");
    expect(() =>
      execFileSync("ip", ["netns", "exec", nsName, "nft", "list", "table", "inet", "trellis"], {
        stdio: "pipe",
      }),
    ).toThrow();
    expect(execFileSync("ip", ["-n", nsName, "-o", "link", "show"], { encoding: "utf8" })).not.toContain(
      "trellis0",
    );
    expect(forwarding()).toBe("0");
  });
});

describe.skipIf(!canUseTun)(
  "trellis up --userspace serving a subnet route (unprivileged, in a network namespace)",
  () => {
    it("reaches the LAN with its own sockets: TCP, UDP and ping; a closed port resets; no device, no rule, no root", async () => {
      const { name: nsName, lanNs } = ns!;
      // A LAN of its own beside the TUN tests' (whose route stays approved): 10.88.N.0/24.
      const n = Number(/10\.77\.(\d+)\./.exec(ns!.lanHostIp)![1]);
      const [lanPrefix, gwLanIp, lanHost] = [`10.88.${n}.0/24`, `10.88.${n}.1`, `10.88.${n}.2`];
      execFileSync("ip", ["-n", nsName, "addr", "add", `${gwLanIp}/24`, "dev", ns!.lanLink.gateway]);
      execFileSync("ip", ["-n", lanNs, "addr", "add", `${lanHost}/24`, "dev", ns!.lanLink.lan]);
      // The LAN host: TCP and UDP on port 7 say who they saw, then echo.
      const server = spawn(
        "ip",
        [
          "netns",
          "exec",
          lanNs,
          process.execPath,
          "-e",
          `const net = require("node:net"), dgram = require("node:dgram");
         net.createServer((s) => { s.write(s.remoteAddress + "\\n"); s.pipe(s); }).listen(7, "${lanHost}", () => {
           const u = dgram.createSocket("udp4");
           u.on("message", (m, r) => u.send(Buffer.concat([Buffer.from(r.address + ":"), m]), r.port, r.address));
           u.bind(7, "${lanHost}", () => console.log("listening"));
         });`,
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      try {
        await new Promise<void>((resolve, reject) => {
          server.stdout!.once("data", () => resolve());
          server.once("exit", (code) => reject(new Error(`the LAN server exited (${code})`)));
        });

        // The daemon runs as nobody, without capabilities; its state and its key file are nobody's.
        const NOBODY = 65534;
        const dir = stateDir();
        execFileSync("chown", [String(NOBODY), dir]);
        const key = join(dir, "auth.key");
        writeFileSync(key, readFileSync(keyFile), { mode: 0o600 });
        execFileSync("chown", [String(NOBODY), key]);
        execFileSync("chmod", ["0755", work]);
        // As Docker sets it for containers: unprivileged ICMP echo sockets, so the system's ping works as nobody.
        execFileSync("ip", [
          "netns",
          "exec",
          nsName,
          "sysctl",
          "-qw",
          "net.ipv4.ping_group_range=0 2147483647",
        ]);
        const up = await cli(
          [
            "up",
            "--login-server",
            url,
            "--auth-key",
            `file:${key}`,
            "--hostname",
            "gw-us-router",
            "--userspace",
            "--advertise-routes",
            lanPrefix,
            "--state-dir",
            dir,
          ],
          nsName,
          60_000,
          NOBODY,
        );
        expect(up.code, up.stderr).toBe(0);
        expect(up.stdout).toMatch(/mode: +userspace networking/);
        const pid = Number(readFileSync(join(dir, "trellisd.pid"), "utf8"));
        expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(new RegExp(`^Uid:\\s+${NOBODY}\\s`, "m"));

        // Not served before an admin approves it.
        const p = await peer("peer-us-lan");
        const early = await p.connectTcp(lanHost, 7, { timeoutMs: 1500 }).catch((e: Error) => e);
        expect(early).toBeInstanceOf(Error);
        const [machine] = await machines("gw-us-router");
        const approved = await api(url, await admin(), "POST", `/api/v1/machines/${machine!.id}/routes`, {
          routes: [lanPrefix],
        });
        expect(approved.status).toBe(200);
        await until("the route served in userspace", async () => {
          const r = await cli(["status", "--json", "--state-dir", dir], nsName, 60_000, NOBODY);
          const st = JSON.parse(r.stdout) as { mode: string; forwarding: { routes: string[] } | null };
          expect(st.mode).toBe("userspace");
          return st.forwarding?.routes.includes(lanPrefix);
        });
        await until("the route in the peer's map", () =>
          p.netmap?.peers.find((x) => x.name === "gw-us-router")?.allowedIPs.includes(lanPrefix),
        );

        // TCP: the LAN host sees the gateway's LAN address; 256 kB come back byte for byte.
        const conn = await until("a TCP connection to the LAN host", () =>
          p.connectTcp(lanHost, 7, { timeoutMs: 5000 }).catch(() => null),
        );
        const payload = new Uint8Array(256 * 1024).map((_, i) => (i * 31) % 251);
        const writer = conn.writable.getWriter();
        void writer.write(payload);
        const reader = conn.readable.getReader();
        const chunks: Uint8Array[] = [];
        let got = 0;
        const expected = gwLanIp.length + 1 + payload.length;
        while (got < expected) {
          const r = await reader.read();
          if (r.done) break;
          chunks.push(r.value);
          got += r.value.length;
        }
        const all = Buffer.concat(chunks);
        expect(all.subarray(0, gwLanIp.length + 1).toString()).toBe(`${gwLanIp}\n`);
        expect(Buffer.compare(all.subarray(gwLanIp.length + 1), Buffer.from(payload))).toBe(0);
        await writer.close();
        reader.releaseLock();

        // A port nobody listens on: refused at once (the gateway's dial failed), not a timeout.
        const refused = await p
          .connectTcp(lanHost, 9, { timeoutMs: 8000 })
          .catch((e: { code?: string }) => e);
        expect(refused).toMatchObject({ code: "refused" });

        // UDP: an answer comes back from the LAN host's address and port.
        const answers: { from: string; port: number; text: string }[] = [];
        const sock = p.bindUdp(0, (from, port, data) =>
          answers.push({ from, port, text: Buffer.from(data).toString() }),
        );
        await until("a UDP answer from the LAN host", () => {
          sock.send(lanHost, 7, new TextEncoder().encode("hello"));
          return answers.length > 0;
        });
        expect(answers[0]).toEqual({ from: lanHost, port: 7, text: `${gwLanIp}:hello` });
        sock.close();

        // ICMP echo: the LAN host answers; an address where nobody is does not (the stack never answers for it).
        const pong = await p.ping(lanHost, { timeoutMs: 5000 });
        expect(pong.address).toBe(lanHost);
        await expect(p.ping(`10.88.${n}.99`, { timeoutMs: 5000 })).rejects.toThrow();

        // Userspace mode touched nothing of the host's: no device, no nftables table, forwarding off.
        expect(execFileSync("ip", ["-n", nsName, "-o", "link", "show"], { encoding: "utf8" })).not.toMatch(
          /trellis/,
        );
        expect(() =>
          execFileSync("ip", ["netns", "exec", nsName, "nft", "list", "table", "inet", "trellis"], {
            stdio: "pipe",
          }),
        ).toThrow();

        // down: the route is no longer served.
        expect((await cli(["down", "--state-dir", dir], nsName, 60_000, NOBODY)).code).toBe(0);
        const after = await p.connectTcp(lanHost, 7, { timeoutMs: 1500 }).catch((e: Error) => e);
        expect(after).toBeInstanceOf(Error);
      } finally {
        server.kill("SIGKILL");
      }
    });
  },
);

/** A free TCP port on 127.0.0.1 (free when asked; the daemon takes it right after). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe("trellis daemon as its systemd unit runs it: --metrics", () => {
  it("serves Prometheus metrics of the running node at /metrics, and nothing else", async () => {
    const dir = stateDir();
    const port = await freePort();
    const log = openSync(join(dir, "daemon.out"), "a");
    // As gateway/packaging/trellis.service does, but unprivileged: the daemon first, then up.
    const child = spawn(TRELLIS, ["daemon", "--state-dir", dir, "--metrics", `127.0.0.1:${port}`], {
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    try {
      await until("the daemon's socket", async () => (await cli(["status", "--state-dir", dir])).code === 0);
      const up = await cli([
        "up",
        "--login-server",
        url,
        "--auth-key",
        `file:${keyFile}`,
        "--hostname",
        "gw-metrics",
        "--userspace",
        "--state-dir",
        dir,
      ]);
      expect(up.code, up.stderr).toBe(0);
      expect(up.stderr).not.toMatch(/started the daemon/);
      const p = await peer("peer-metrics");
      await until("a ping reply from the gateway", () =>
        p.ping("gw-metrics", { timeoutMs: 3000 }).catch(() => null),
      );

      const base = `http://127.0.0.1:${port}`;
      const text = await until("the peer's bytes in /metrics", async () => {
        const res = await fetch(`${base}/metrics`);
        expect(res.status).toBe(200);
        expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
        const t = await res.text();
        return /^trellis_peer_rx_bytes_total\{peer="peer-metrics"\} [1-9]/m.test(t) ? t : null;
      });
      expect(text).toContain('trellis_node_state{state="running"} 1');
      expect(text).toContain('trellis_control_state{state="connected"} 1');
      expect(text).toContain("trellis_relay_connected 1");
      expect(text).toMatch(/^trellis_peer_path\{peer="peer-metrics",path="(relay|direct)"\} 1$/m);
      expect(text).toMatch(/^trellis_peer_tx_bytes_total\{peer="peer-metrics"\} [1-9]/m);
      const hs = Number(
        /^trellis_peer_last_handshake_seconds\{peer="peer-metrics"\} (\S+)$/m.exec(text)?.[1],
      );
      expect(Math.abs(hs - Date.now() / 1000)).toBeLessThan(120);
      expect(text).toContain("# TYPE trellis_drops_total counter");
      expect(text).toContain("# TYPE trellis_process_cpu_seconds_total counter");
      expect((await fetch(`${base}/`)).status).toBe(404);
      expect((await fetch(`${base}/debug/pprof`)).status).toBe(404);
    } finally {
      child.kill("SIGTERM");
    }
  });
});
