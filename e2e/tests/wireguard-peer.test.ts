// Plain WireGuard peers, end to end: an admin adds a "WireGuard peer"
// machine from a public key through the admin API, downloads its wg-quick
// file, and wireguard-go — Debian's and the newest built from the Go module
// proxy — configured from that file alone, in a namespace of its own whose
// only way in is the gateway's UDP port, pings a LAN host behind the
// gateway's approved subnet route and runs iperf3 both ways through it.
// A policy that takes the LAN away stops it (the gateway's filter drops the
// packets); giving it back lets it through again. Through the gateway it
// also reaches another tailnet machine, and that machine reaches it, as far
// as the policy lets each.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWgQuick, wgQuickConfig, type MachineInfo, type WireGuardPeerConfig } from "@trellis/proto";
import {
  NEWEST_WG_GO_DIR,
  newestWireguardGo,
  startWireguardGo,
  wgKeypair,
  wireguardGoAvailable,
  type WireguardGo,
} from "@trellis/gateway/testing/wireguard-go";
import { nodeEngine } from "@trellis/client/node";
import type { NodeEngine } from "@trellis/client";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { api, firstAdmin, type Caller } from "../src/console";
import { ARTIFACTS, hasChromium, launchChromium } from "../src/browser";
import { cli, stopDaemon } from "../src/gateway";
import {
  attachToGateway,
  canUseNetns,
  createGatewayTopology,
  type AttachedHost,
  type GatewayTopology,
} from "../src/netns";
import { ROOT, startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until as untilWithin } from "../src/wait";
import { tearDown } from "../src/teardown";

const until = <T>(what: string, fn: () => T | Promise<T>) => untilWithin(what, fn, 45_000);

const canRun =
  canUseNetns &&
  existsSync("/dev/net/tun") &&
  existsSync(join(ROOT, "gateway/build/Release/trellis_tun.node")) &&
  wireguardGoAvailable().ok &&
  existsSync("/usr/bin/iperf3");
if (!canRun) {
  console.warn(
    "skipping plain WireGuard peers: needs root, ip netns, nft, the TUN addon, wireguard-go, wg and iperf3",
  );
}

/** The newest wireguard-go is built with Go from the Go module proxy (once per machine, then reused). */
const canBuildNewest =
  existsSync(join(NEWEST_WG_GO_DIR, "bin", "wireguard")) ||
  existsSync("/usr/local/go/bin/go") ||
  (process.env.PATH ?? "").split(":").some((d) => d && existsSync(join(d, "go")));
if (canRun && !canBuildNewest) console.warn("skipping the newest wireguard-go: Go is not installed");

const data = tempDataDir();
const work = mkdtempSync(join(tmpdir(), "trellis-wgpeer-"));
const stateDir = join(work, "state");
let topo: GatewayTopology;
let site: AttachedHost;
let trellis: RunningTrellis;
let url: string;
let admin: Caller;
let gatewayId: string;
let iperfServer: ChildProcess | undefined;
let siteServer: ChildProcess | undefined;
let tailNode: NodeEngine | undefined;
const tunnels: WireguardGo[] = [];

const policy = (lanAllowed: boolean, lanPrefix: string, nodeToWg: boolean) =>
  JSON.stringify({
    tagOwners: {
      "tag:gw": ["autogroup:admin"],
      "tag:wg": ["autogroup:admin"],
      "tag:node": ["autogroup:admin"],
    },
    acls: [
      lanAllowed
        ? { action: "accept", src: ["tag:wg"], dst: [`${lanPrefix}:*`, "tag:gw:*"] }
        : { action: "accept", src: ["tag:wg"], dst: ["tag:gw:*"] },
      // The internet, through the gateway once it is an approved exit node.
      { action: "accept", src: ["tag:wg"], dst: ["autogroup:internet:*"] },
      // Another tailnet machine: the plain peers reach it through their gateway…
      { action: "accept", src: ["tag:wg"], dst: ["tag:node:*"] },
      // …and it reaches them, while this rule stands.
      ...(nodeToWg ? [{ action: "accept", src: ["tag:node"], dst: ["tag:wg:*"] }] : []),
    ],
  });

/** Run a command in a namespace; never rejects on a non-zero exit. */
function inNs(ns: string, cmd: string, args: string[], timeoutMs = 60_000) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    execFile(
      "ip",
      ["netns", "exec", ns, cmd, ...args],
      { timeout: timeoutMs, killSignal: "SIGKILL", encoding: "utf8", maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const e = err as { killed?: boolean; code?: unknown } | null;
        if (e?.killed) return reject(new Error(`timed out: ${cmd} ${args.join(" ")}\n${stdout}\n${stderr}`));
        if (e && typeof e.code !== "number") return reject(err);
        resolve({ code: typeof e?.code === "number" ? e.code : 0, stdout, stderr });
      },
    );
  });
}

async function setPolicy(lanAllowed: boolean, nodeToWg = true): Promise<void> {
  const r = await api(url, admin, "PUT", "/api/v1/policy", {
    text: policy(lanAllowed, topo.lanPrefix, nodeToWg),
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
}

interface IperfResult {
  end: { sum_received: { bytes: number; bits_per_second: number } };
}

/** iperf3 from the site to the LAN host (`reverse`: the LAN host sends), 2 s; the bytes that arrived (the rate is logged). */
async function iperf(reverse: boolean, what: string): Promise<number> {
  const args = ["-c", topo.lanHostIp, "-t", "2", "-J", ...(reverse ? ["-R"] : [])];
  const r = await inNs(site.ns, "iperf3", args, 30_000);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const got = (JSON.parse(r.stdout) as IperfResult).end.sum_received;
  console.log(
    `${what}, ${reverse ? "LAN → peer" : "peer → LAN"}: ${(got.bits_per_second / 1e6).toFixed(0)} Mbit/s`,
  );
  return got.bytes;
}

/** What these tests read of the gateway's `trellis status --json`. */
interface GatewayStatus {
  dataplane: string | null;
  drops: Record<string, number>;
  forwarding: { routes: string[] } | null;
  peers: { name: string; path: string; pathDetail: string; rxBytes: number }[];
}

async function gatewayStatus(): Promise<GatewayStatus> {
  const r = await cli(["status", "--json", "--state-dir", stateDir], topo.name);
  return JSON.parse(r.stdout) as GatewayStatus;
}

/** The gateway's filter drops (`filter_no_rule`). */
async function gatewayDrops(): Promise<number> {
  return (await gatewayStatus()).drops.filter_no_rule ?? 0;
}

/** The gateway's data plane now (native or wasm). */
async function dataplane(): Promise<string | null> {
  return (await gatewayStatus()).dataplane;
}

/** `trellis up` for the gateway (again: the same machine), on `plane`. */
async function gatewayUp(keyFile: string | null, plane: "native" | "wasm"): Promise<void> {
  const up = await cli(
    [
      "up",
      "--login-server",
      url,
      ...(keyFile ? ["--auth-key", `file:${keyFile}`] : []),
      "--hostname",
      "office-gw",
      "--advertise-routes",
      topo.lanPrefix,
      "--dataplane",
      plane,
      "--state-dir",
      stateDir,
    ],
    topo.name,
    90_000,
  );
  expect(up.code, up.stderr).toBe(0);
}

describe.skipIf(!canRun)("plain WireGuard peers through a gateway", () => {
  beforeAll(async () => {
    topo = createGatewayTopology();
    site = attachToGateway(topo, "site");
    trellis = await startTrellis({ dataDir: data.dir, env: { HOST: topo.hostIp } });
    url = trellis.url.replace("127.0.0.1", topo.hostIp);
    admin = await firstAdmin(url, trellis.setupLink());
    await setPolicy(true);

    // The gateway: `trellis up` in TUN mode with the LAN advertised, the route approved.
    const key = await api(url, admin, "POST", "/api/v1/keys", { tags: ["tag:gw"] });
    expect(key.status, JSON.stringify(key.body)).toBe(201);
    const keyFile = join(work, "auth.key");
    writeFileSync(keyFile, `${key.body.key as string}\n`, { mode: 0o600 });
    await gatewayUp(keyFile, "native");
    const gw = await until("the gateway in Machines with its UDP endpoints", async () => {
      const r = await api(url, admin, "GET", "/api/v1/machines?q=office-gw");
      const m = (r.body.items as MachineInfo[]).find((x) => x.name === "office-gw");
      return m && m.endpoints.length > 0 ? m : undefined;
    });
    gatewayId = gw.id;
    const routes = await api(url, admin, "POST", `/api/v1/machines/${gatewayId}/routes`, {
      routes: [topo.lanPrefix],
    });
    expect(routes.status, JSON.stringify(routes.body)).toBe(200);
    await until("the gateway forwarding the LAN", async () => {
      return (await gatewayStatus()).forwarding?.routes.includes(topo.lanPrefix);
    });
    iperfServer = spawn("ip", ["netns", "exec", topo.lanNs, "iperf3", "-s", "-B", topo.lanHostIp], {
      stdio: "ignore",
    });
  }, 240_000);

  afterAll(
    () =>
      tearDown(
        () => tailNode?.close(),
        () => siteServer?.kill("SIGKILL"),
        ...tunnels.map((t) => () => t.stop()),
        () => iperfServer?.kill("SIGKILL"),
        () => stopDaemon(stateDir),
        () => site?.remove(),
        () => topo?.remove(),
        () => trellis?.stop(),
        () => data.remove(),
        () => rmSync(work, { recursive: true, force: true }),
      ),
    60_000,
  );

  /**
   * A plain WireGuard peer made through the API from a fresh key pair of its own (its public
   * key pasted), and its wg-quick file from the API with the private key put in as the console
   * does for a pair it made.
   */
  async function fileFromApi(name: string, exitNode = false): Promise<string> {
    const pair = wgKeypair();
    const created = await api(url, admin, "POST", "/api/v1/machines/wireguard", {
      name,
      gatewayId,
      publicKey: pair.publicKey,
      tags: ["tag:wg"],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const machine = created.body as MachineInfo;
    expect(machine.wireguard).toEqual({ gatewayId });
    const file = await api(
      url,
      admin,
      "GET",
      `/api/v1/machines/${machine.id}/wireguard?endpoint=${site.gatewayIp}:41641${exitNode ? "&exitNode=true" : ""}`,
    );
    expect(file.status, JSON.stringify(file.body)).toBe(200);
    const conf = file.body as WireGuardPeerConfig;
    expect(conf.allowedIPs).toContain(topo.lanPrefix);
    expect(conf.config).not.toContain(pair.privateKey);
    return wgQuickConfig({
      name: conf.name,
      addresses: conf.addresses,
      gatewayName: conf.gateway.name,
      gatewayPublicKey: conf.gateway.publicKey,
      endpoint: conf.gateway.endpoint,
      allowedIPs: conf.allowedIPs,
      persistentKeepalive: conf.persistentKeepalive,
      publicKey: conf.publicKey,
      privateKey: pair.privateKey,
    });
  }

  /**
   * wireguard-go in the site, configured from the wg-quick file `text` alone, pings the LAN
   * host and runs iperf3 both ways through the gateway.
   */
  async function peerReachesLan(name: string, text: string, binary: string | undefined, what: string) {
    // One tunnel at a time in the site (each routes the same prefixes): the last one stops.
    await tunnels.at(-1)?.stop();
    writeFileSync(join(work, `${name}.conf`), text, { mode: 0o600 });
    const wgq = parseWgQuick(text);
    const [v4, ...more] = wgq.addresses;
    const ifname = `wgp${process.pid % 10000}${tunnels.length}`;
    const tunnel = await startWireguardGo({
      ns: site.ns,
      ifname,
      binary,
      privateKey: wgq.privateKey!,
      listenPort: 0,
      address: v4!,
      peers: wgq.peers.map((p) => ({
        publicKey: p.publicKey,
        endpoint: p.endpoint ?? undefined,
        allowedIps: p.allowedIPs,
        persistentKeepalive: p.persistentKeepalive ?? undefined,
      })),
    });
    tunnels.push(tunnel);
    for (const a of more) await inNs(site.ns, "ip", ["addr", "add", a, "dev", ifname]);

    // Ping the LAN host, which has no route to the tailnet: the gateway masquerades.
    await until("a ping from the WireGuard peer answered by the LAN host", async () => {
      const r = await inNs(site.ns, "ping", ["-c", "1", "-W", "1", topo.lanHostIp], 10_000);
      return r.code === 0;
    });
    expect(await tunnel.latestHandshake(wgq.peers[0]!.publicKey)).toBeGreaterThan(0);
    const ping = await inNs(site.ns, "ping", ["-c", "3", "-i", "0.2", "-W", "2", topo.lanHostIp]);
    expect(ping.stdout).toMatch(/3 received/);
    // And the gateway itself, by its tailnet address.
    const gwAddr = (await api(url, admin, "GET", `/api/v1/machines/${gatewayId}`)).body as MachineInfo;
    expect((await inNs(site.ns, "ping", ["-c", "1", "-W", "2", gwAddr.ipv4!])).code).toBe(0);
    const ping6 = await inNs(site.ns, "ping", ["-6", "-c", "1", "-W", "2", gwAddr.ipv6!]);
    expect(ping6.code, ping6.stdout + ping6.stderr).toBe(0);

    expect(await iperf(false, what)).toBeGreaterThan(0);
    expect(await iperf(true, what)).toBeGreaterThan(0);

    // The gateway shows the peer on a direct UDP path from the site's address.
    const st = await gatewayStatus();
    const me = st.peers.find((p) => p.name === name);
    expect(me, JSON.stringify(st.peers)).toMatchObject({ path: "direct" });
    expect(me!.pathDetail).toContain(site.ip);
    expect(me!.rxBytes).toBeGreaterThan(0);
    // The gateway reports its handshakes: the console shows the peer online, last seen just now.
    const seen = await until("the peer online in Machines", async () => {
      const r = await api(url, admin, "GET", `/api/v1/machines?q=${name}`);
      return (r.body.items as MachineInfo[]).find((x) => x.name === name && x.online);
    });
    expect(Date.now() - Date.parse(seen.lastSeen!)).toBeLessThan(120_000);
  }

  it("Debian's wireguard-go, configured from the console's wg-quick file, reaches the LAN through the native data plane: ping and iperf3 both ways", async () => {
    expect(await dataplane()).toBe("native");
    await peerReachesLan(
      "site-wg-1",
      await fileFromApi("site-wg-1"),
      undefined,
      "Debian's wireguard-go, native data plane",
    );
  }, 180_000);

  it("reaches another tailnet machine through the gateway, which reaches it back, as the policy says", async () => {
    // A machine of the tailnet elsewhere: the Node engine in this process (userspace stack, relay path).
    const key = await api(url, admin, "POST", "/api/v1/keys", { tags: ["tag:node"] });
    expect(key.status, JSON.stringify(key.body)).toBe(201);
    tailNode = nodeEngine({
      baseUrl: url,
      privateKey: generateKeyPair().privateKey,
      register: { preAuthKey: key.body.key as string, hostname: "tail-node", os: "linux" },
      webrtc: false,
    });
    await tailNode.start();
    const nodeIp = tailNode.netmap!.node.addresses[0]!.split("/")[0]!;
    const wgIp = await until(
      "site-wg-1 in tail-node's map",
      () => tailNode!.netmap?.peers.find((p) => p.name === "site-wg-1")?.addresses[0]?.split("/")[0],
    );

    // The plain peer pings the machine: its gateway forwards, the machine's filter admits it.
    await until("a ping from the plain peer answered by tail-node", async () => {
      const r = await inNs(site.ns, "ping", ["-c", "1", "-W", "1", nodeIp], 10_000);
      return r.code === 0;
    });
    // The machine pings the plain peer by name, and opens a TCP connection to a server on it.
    const ping = await until("tail-node's ping answered by the plain peer", () =>
      tailNode!.ping("site-wg-1", { timeoutMs: 2000 }).catch(() => null),
    );
    expect(ping).toMatchObject({ peer: "site-wg-1", address: wgIp });
    siteServer = spawn(
      "ip",
      [
        "netns",
        "exec",
        site.ns,
        process.execPath,
        "-e",
        `require("http").createServer((q, s) => s.end("hello from the site")).listen(8099, "${wgIp}")`,
      ],
      { stdio: "ignore" },
    );
    const body = await until("an HTTP answer from the plain peer", async () => {
      const c = await tailNode!.connectTcp("site-wg-1", 8099, { timeoutMs: 3000 }).catch(() => null);
      if (!c) return undefined;
      const w = c.writable.getWriter();
      await w.write(new TextEncoder().encode("GET / HTTP/1.0\r\nHost: site\r\n\r\n"));
      let text = "";
      const r = c.readable.getReader();
      for (;;) {
        const { value, done } = await r.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      return text;
    });
    expect(body).toContain("hello from the site");
    const seen = tailNode.status().peers.find((p) => p.name === "site-wg-1");
    expect(seen).toMatchObject({ pathDetail: "plain WireGuard peer, through office-gw", online: true });
    expect((await gatewayStatus()).forwarding?.routes).toContain(`${wgIp}/32`);

    // Without the rule that lets the machine reach the plain peer, the gateway drops its pings.
    const dropsBefore = await gatewayDrops();
    await setPolicy(true, false);
    await until("tail-node's pings to the plain peer dropped", async () => {
      const r = await tailNode!.ping(wgIp, { timeoutMs: 1500 }).then(
        () => false,
        () => true,
      );
      return r && (await gatewayDrops()) > dropsBefore;
    });
    // The other way still works (the gateway lets the replies back through).
    expect((await inNs(site.ns, "ping", ["-c", "1", "-W", "2", nodeIp])).code).toBe(0);
    await setPolicy(true);
  }, 180_000);

  it("uses the gateway as its exit node when its file says so", async () => {
    // "The internet": an address only the gateway can reach (on the LAN host, routed by the gateway alone).
    const internetIp = "198.18.77.1";
    await inNs(topo.lanNs, "ip", ["addr", "add", `${internetIp}/32`, "dev", topo.lanLink.lan]);
    await inNs(topo.name, "ip", ["route", "add", `${internetIp}/32`, "dev", topo.lanLink.gateway]);
    const set = await cli(["set", "--advertise-exit-node", "--state-dir", stateDir], topo.name);
    expect(set.code, set.stderr).toBe(0);
    const approved = await api(url, admin, "POST", `/api/v1/machines/${gatewayId}/routes`, {
      routes: [topo.lanPrefix, "0.0.0.0/0", "::/0"],
    });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    await until("the gateway serving the exit routes", async () => {
      return (await gatewayStatus()).forwarding?.routes.includes("0.0.0.0/0");
    });

    const text = await fileFromApi("site-wg-exit", true);
    expect(parseWgQuick(text).peers[0]!.allowedIPs).toEqual(expect.arrayContaining(["0.0.0.0/0", "::/0"]));
    await peerReachesLan("site-wg-exit", text, undefined, "Debian's wireguard-go, exit node, native");
    // Its default route is the tunnel (a route per allowed IP): the internet host answers through the gateway.
    await until("a ping to the internet answered through the exit node", async () => {
      const r = await inNs(site.ns, "ping", ["-c", "1", "-W", "1", internetIp], 10_000);
      return r.code === 0;
    });
    // A file without the exit routes does not get there.
    await peerReachesLan("site-wg-noexit", await fileFromApi("site-wg-noexit"), undefined, "no exit node");
    const r = await inNs(site.ns, "ping", ["-c", "1", "-W", "1", internetIp], 10_000);
    expect(r.code).not.toBe(0);
  }, 180_000);

  it.skipIf(!canBuildNewest)(
    "the newest wireguard-go does the same",
    async () => {
      await peerReachesLan(
        "site-wg-2",
        await fileFromApi("site-wg-2"),
        newestWireguardGo(),
        "newest wireguard-go, native data plane",
      );
    },
    300_000,
  );

  it.skipIf(!hasChromium)(
    "an admin adds one in the console with a key pair made in the browser; the file it shows works as it is",
    async () => {
      const { browser, close } = await launchChromium();
      try {
        const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        const [cookieName, ...value] = admin.cookie!.split("=");
        await ctx.addCookies([{ name: cookieName!, value: value.join("="), url }]);
        const page = await ctx.newPage();
        const sent: string[] = [];
        const fileRequests: string[] = [];
        page.on("request", (r) => {
          if (r.method() !== "GET") sent.push(r.postData() ?? "");
          else if (/\/api\/v1\/machines\/[^/]+\/wireguard/.test(r.url())) fileRequests.push(r.url());
        });
        await page.goto(`${url}/machines`);
        await page.getByTestId("add-wireguard-peer").click();
        await page.getByLabel("Name").fill("site-wg-console");
        await page.locator("select[name=gatewayId]").selectOption({ label: "office-gw" });
        await page.locator("select[name=endpoint]").selectOption(`${site.gatewayIp}:41641`);
        await page.getByLabel("tag:wg").check();
        // The gateway is an approved exit node now: the form offers it (left unchecked here).
        await page.getByText("Send all its traffic through office-gw").waitFor();
        await page.getByRole("button", { name: "Add peer" }).click();
        const text =
          (await page.getByTestId("wireguard-config").innerText({ timeout: 15_000 })).trim() + "\n";
        await page.screenshot({ path: join(ARTIFACTS, "wireguard-peer-added.png"), fullPage: true });
        // The file names the endpoint chosen in the form.
        expect(fileRequests.at(-1)).toContain(`endpoint=${encodeURIComponent(`${site.gatewayIp}:41641`)}`);
        expect(parseWgQuick(text).peers[0]!.endpoint).toBe(`${site.gatewayIp}:41641`);
        const privateKey = parseWgQuick(text).privateKey;
        expect(privateKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
        // Only the public key went to the server.
        expect(sent.join("\n")).not.toContain(privateKey!);
        expect(sent.join("\n")).toContain('"name":"site-wg-console"');
        await peerReachesLan(
          "site-wg-console",
          text,
          undefined,
          "console-made file, Debian's wireguard-go, native",
        );
        // Its page shows the file as the server knows it: with no private key in it.
        await page.getByRole("button", { name: "Done" }).click();
        // Online now (its gateway reported the handshake), reached through its gateway.
        await page.reload();
        const row = page.getByTestId("machine-row-site-wg-console");
        await row.getByText("Online").waitFor();
        expect(await row.getByTestId("machine-path").innerText()).toBe("through its gateway");
        await row.getByRole("link").first().click();
        const card = page.getByTestId("wireguard-peer");
        const onPage = await card.getByTestId("wireguard-config").innerText();
        expect(onPage).toContain("# PrivateKey = <the private key of");
        expect(onPage).not.toContain(privateKey!);
        await card.getByRole("link", { name: "office-gw", exact: true }).waitFor();
        expect(onPage).not.toContain("0.0.0.0/0");
        await page.screenshot({ path: join(ARTIFACTS, "wireguard-peer-machine.png"), fullPage: true });
        // And the file with the gateway as exit node, one click away.
        await card.getByTestId("wireguard-exit-toggle").click();
        await page.waitForURL(/\?exit=1$/);
        expect(await page.getByTestId("wireguard-config").innerText()).toMatch(
          /AllowedIPs = 0\.0\.0\.0\/0, ::\/0, /,
        );
      } finally {
        await close();
      }
    },
    180_000,
  );

  it("and so does Debian's through the gateway's WASM data plane", async () => {
    await gatewayUp(null, "wasm");
    expect(await dataplane()).toBe("wasm");
    await peerReachesLan(
      "site-wg-3",
      await fileFromApi("site-wg-3"),
      undefined,
      "Debian's wireguard-go, WASM data plane",
    );
  }, 180_000);

  it("follows the policy: without the LAN in it the last peer no longer reaches the LAN, and does again when it is back", async () => {
    await setPolicy(false);
    const blocked = await until("the gateway dropping the peer's packets to the LAN", async () => {
      const r = await inNs(site.ns, "ping", ["-c", "2", "-i", "0.3", "-W", "1", topo.lanHostIp], 10_000);
      return r.code !== 0 ? r : undefined;
    });
    expect(blocked.stdout).toMatch(/0 received/);
    expect(await gatewayDrops()).toBeGreaterThan(0);
    await setPolicy(true);
    await until("the LAN reachable again", async () => {
      const r = await inNs(site.ns, "ping", ["-c", "1", "-W", "1", topo.lanHostIp], 10_000);
      return r.code === 0;
    });
  }, 120_000);

  it("removing the machine in the console cuts the peer off", async () => {
    const r = await api(url, admin, "GET", "/api/v1/machines?q=site-wg-3");
    const m = (r.body.items as MachineInfo[]).find((x) => x.name === "site-wg-3")!;
    expect((await api(url, admin, "DELETE", `/api/v1/machines/${m.id}`)).status).toBe(204);
    await until("the gateway forgetting the peer", async () => {
      return !(await gatewayStatus()).peers.some((p) => p.name === "site-wg-3");
    });
    // Its session went with it: nothing it sends is taken any more.
    const r2 = await inNs(site.ns, "ping", ["-c", "2", "-i", "0.3", "-W", "1", topo.lanHostIp], 10_000);
    expect(r2.stdout).toMatch(/ 0 received/);
  }, 120_000);
});
