// The user journeys, end to end, as people use Trellis, in one world made by
// createJourneyTopology (e2e/src/netns.ts): the server (`npm start`'s
// script: control plane, relay, STUN) and an OpenID provider on the
// "internet"; two homes behind NATs of their own, each with Debian's
// Chromium; the office's gateway behind the office NAT with the office LAN
// behind it (OpenSSH, a web app and a VNC server on a host that has no route
// to anything but the LAN); and a second server behind a NAT of its own.
//
//   1. A new admin finishes first-run setup, makes an auth key, installs the
//      gateway with the install script and the printed `trellis up …`
//      (advertising the office LAN) and approves the route.
//   2. A member signs in through OIDC, opens the office host's SSH from the
//      list of machines on Connect (by its address on the gateway's route),
//      runs a command, opens the office web app and its VNC screen.
//   6. The server is killed mid-session and started again: the member's open
//      SSH session keeps working, and the page shows the control server away
//      and back.
//   4. Admin and member, two browsers of two users behind two NATs, ping
//      each other over a direct WebRTC path; with UDP blocked at the
//      member's router they carry on through the relay (and so does the
//      member's SSH session to the office); direct again after.
//   5. The second server reaches the office gateway directly through both
//      NATs after hole punching: `trellis status` says direct.
//   3. The admin tightens the policy (the member may reach only port 80): the
//      open SSH session is cut, a new one is refused with the rule named, a
//      forced connection to port 22 is dropped at the gateway and counted,
//      and the web app still works.
//
// The order is the order one afternoon would take: the outage (6) needs the
// SSH session of 2 still open, and the tightened policy (3) ends it.
// Screenshots land in e2e/artifacts/journey-*.png.
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Page } from "playwright-core";
import type { BrowserNodeClient } from "@trellis/client/browser";
import { runInTerminal, shown, terminalText, vncCentreIs } from "../src/apps";
import { ARTIFACTS, CHROMIUM, hasChromium, launchChromium } from "../src/browser";
import { cli, stopDaemon } from "../src/gateway";
import { canUseNetns, createJourneyTopology, type JourneyTopology, type NattedHost } from "../src/netns";
import { canRunOffice, startOffice, type Office } from "../src/office";
import { oidcLogin, startOidcProvider, type RunningOidc } from "../src/oidc";
import { freePort, ROOT, startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until } from "../src/wait";
import { tearDown } from "../src/teardown";

const can =
  canUseNetns &&
  hasChromium &&
  canRunOffice &&
  existsSync("/dev/net/tun") &&
  existsSync(join(ROOT, "gateway/build/Release/trellis_tun.node"));
if (!can)
  console.warn(
    "skipping the user journeys: they need root, ip netns, nft, sshd, Xvnc, Chromium and the TUN addon",
  );

const ADMIN = { name: "Ada Admin", email: "ada@example.com", password: "correct horse battery staple" };
const MEMBER = { login: "mia", email: "mia@example.com", name: "Mia Member" };
const VIEWPORT = { width: 1280, height: 860 };

const data = tempDataDir();
const work = mkdtempSync(join(tmpdir(), "trellis-journeys-"));
/** Where install.sh stages what it installs (no systemd here to start a unit). */
const staged = join(work, "root");
const gatewayState = join(work, "office-gateway");
const serverState = join(work, "ops-server");
let topo: JourneyTopology;
let office: Office;
let oidc: RunningOidc;
let trellis: RunningTrellis;
let trellisEnv: Record<string, string>;
let port: number;
let url: string;
let appsUrl: string;
const closers: (() => Promise<void>)[] = [];
let admin: Page;
let memberContext: BrowserContext;
let member: Page;
let memberSsh: Page;
let gatewayName = "";

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `journey-${name}.png`), fullPage: true });
}

/** Debian's Chromium inside `home` (behind its NAT), treating the console's origins as secure. */
async function browserAt(home: NattedHost): Promise<Browser> {
  const { browser, close } = await launchChromium({
    executablePath: topo.execIn(home.ns, CHROMIUM),
    // Plain http at a LAN address is not a secure context, where browsers keep no Web Crypto
    // (and so no node key); a real deployment serves https.
    extraArgs: [`--unsafely-treat-insecure-origin-as-secure=${url},${appsUrl}`],
  });
  closers.push(close);
  return browser;
}

/** A command line as an admin pastes it on a server (namespace `ns`), with the installed `trellis` on the PATH. */
function paste(
  ns: string,
  line: string,
  stateDir: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      "ip",
      ["netns", "exec", ns, "sh", "-c", line],
      {
        timeout: 90_000,
        killSignal: "SIGKILL",
        encoding: "utf8",
        env: {
          ...process.env,
          PATH: `${join(staged, "usr/local/bin")}:${process.env.PATH}`,
          TRELLIS_STATE_DIR: stateDir,
        },
      },
      (err, stdout, stderr) => {
        const e = err as { killed?: boolean; code?: unknown } | null;
        if (e?.killed) return reject(new Error(`timed out: ${line}\n${stdout}\n${stderr}`));
        if (e && typeof e.code !== "number") return reject(err);
        resolve({ code: typeof e?.code === "number" ? e.code : 0, stdout, stderr });
      },
    );
  });
}

/** Generate a key on the Keys page; the command printed with it. */
async function printedCommand(): Promise<string> {
  await admin.goto(url + "/keys");
  await admin.getByTestId("generate-key").click();
  await admin.getByRole("button", { name: "Generate key" }).click();
  await admin.getByTestId("new-key-command").waitFor({ timeout: 15_000 });
  return (await admin.getByTestId("new-key-command").innerText()).trim();
}

/** The path the Connect page shows for a peer ("direct", "relay" or "none"). */
function shownPath(page: Page, peer: string): Promise<string | null> {
  return page.locator(`[data-testid=connect-path][data-peer="${peer}"]`).getAttribute("data-path");
}

/** Ping `peer` from the Connect page until it shows `path` (pings keep the path upkeep going); the last result. */
async function pingUntilPath(
  page: Page,
  peer: string,
  path: "direct" | "relay",
  ms = 60_000,
): Promise<string> {
  const row = page.locator("tr", { has: page.getByText(peer, { exact: true }) });
  let last = "";
  await until(
    `${peer} ${path} on ${page.url()}`,
    async () => {
      await row.getByTestId("connect-ping").click();
      await until("the ping's answer", async () => {
        const t = await row.getByTestId("connect-ping-result").innerText();
        return t && t !== "…" ? t : null;
      });
      last = await row.getByTestId("connect-ping-result").innerText();
      const want = path === "direct" ? /via direct path$/ : /via relay$/;
      return want.test(last) && (await shownPath(page, peer)) === path;
    },
    ms,
  );
  return last;
}

interface GatewayStatus {
  peers: { name: string; path: string; pathDetail: string }[];
  forwarding: { routes: string[] } | null;
  drops: Record<string, number>;
}

async function status(ns: string, stateDir: string): Promise<GatewayStatus> {
  const r = await cli(["status", "--json", "--state-dir", stateDir], ns, 15_000);
  if (r.code !== 0) throw new Error(`trellis status failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as GatewayStatus;
}

describe.skipIf(!can)("the user journeys", () => {
  beforeAll(async () => {
    topo = createJourneyTopology();
    office = await startOffice({ ns: topo.lanNs, ip: topo.lanHostIp });
    port = await freePort();
    url = `http://${topo.hostIp}:${port}`;
    oidc = await startOidcProvider({
      host: topo.hostIp,
      trellisUrl: url,
      accounts: { [MEMBER.login]: { email: MEMBER.email, name: MEMBER.name, groups: ["eng"] } },
    });
    trellisEnv = {
      HOST: topo.hostIp,
      TRELLIS_PUBLIC_URL: url,
      TRELLIS_OIDC_ISSUER: oidc.issuer,
      TRELLIS_OIDC_CLIENT_ID: oidc.clientId,
      TRELLIS_OIDC_CLIENT_SECRET: oidc.clientSecret,
      TRELLIS_OIDC_NAME: "Office SSO",
      // Fixed, as in a deployment: the restart in journey 6 keeps the web-apps origin.
      TRELLIS_APPS_PORT: String(await freePort()),
    };
    trellis = await startTrellis({ dataDir: data.dir, port, env: trellisEnv });
    appsUrl = `http://${topo.hostIp}:${trellis.appsPort}`;
    admin = await (await (await browserAt(topo.homes[0])).newContext({ viewport: VIEWPORT })).newPage();
    memberContext = await (await browserAt(topo.homes[1])).newContext({ viewport: VIEWPORT });
  }, 240_000);

  afterAll(
    () =>
      tearDown(
        ...[gatewayState, serverState].map((dir) => () => stopDaemon(dir)),
        ...closers,
        () => office?.close(),
        () => topo?.remove(),
        () => trellis?.stop(),
        () => oidc?.stop(),
        () => data.remove(),
        () => rmSync(work, { recursive: true, force: true }),
      ),
    90_000,
  );

  it("1: a new admin sets up, installs a gateway with the printed command and approves its route", async () => {
    // `npm start` on a fresh data directory printed a one-time setup link; it logs the admin in.
    const link = trellis.setupLink();
    expect(link, trellis.stdout()).toBeTruthy();
    await admin.goto(link!);
    await admin.getByLabel("Name").fill(ADMIN.name);
    await admin.getByLabel("Email").fill(ADMIN.email);
    await admin.getByLabel("Password").fill(ADMIN.password);
    await admin.getByRole("button", { name: /create admin account/i }).click();
    await admin.waitForURL(/\/machines/, { timeout: 15_000 });
    await shown(admin, "machines-empty", "journey");
    await shot(admin, "1-machines-empty");

    const command = await printedCommand();
    expect(command).toMatch(new RegExp(`^trellis up --login-server ${url} --auth-key trellis-auth-\\S+$`));
    await shot(admin, "1-key");

    // The install script as the README gives it. This container has no systemd, so it stages
    // its files (the `trellis` command, the unit) under a prefix without starting the unit;
    // `trellis up` then starts the daemon itself, as it does wherever none runs yet.
    mkdirSync(staged);
    const install = spawnSync(
      join(ROOT, "gateway/packaging/install.sh"),
      ["--prefix", staged, "--no-start", "--no-build"],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(install.status, install.stderr).toBe(0);
    expect(install.stdout).toContain(`installed ${join(staged, "usr/local/bin/trellis")}`);

    // On the office's server: the printed command, advertising the office LAN.
    await admin.goto(url + "/machines");
    await shown(admin, "machines-empty", "journey");
    const up = await paste(topo.gateway.ns, `${command} --advertise-routes ${topo.lanPrefix}`, gatewayState);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^Up: this machine is (\S+) \(/);
    gatewayName = /^Up: this machine is (\S+) \(/.exec(up.stdout)![1]!;
    expect(up.stdout).toContain(topo.lanPrefix);

    // Machines shows it without a reload, its route waiting; approved on its page.
    const row = admin.getByTestId(`machine-row-${gatewayName}`);
    await row.getByTestId("routes-need-approval").first().waitFor({ timeout: 15_000 });
    await shot(admin, "1-gateway-waiting");
    await row.getByRole("link").first().click();
    await shown(admin, "machine-name", "journey");
    await admin.getByTestId(`route-${topo.lanPrefix}`).check();
    await admin.getByRole("button", { name: "Save routes" }).click();
    await until("the gateway forwarding the office LAN", async () =>
      (await status(topo.gateway.ns, gatewayState)).forwarding?.routes.includes(topo.lanPrefix),
    );
    await shot(admin, "1-route-approved");
  }, 240_000);

  it("2: a member signs in through OIDC and opens the office host's SSH, web app and VNC through the gateway", async () => {
    member = await memberContext.newPage();
    await oidcLogin(member, url, oidc, MEMBER.login);
    await shot(member, "2-member-signed-in");

    // Connect: this browser joins; the gateway is listed with its route.
    await member.goto(url + "/connect");
    await member.getByTestId("connect-button").click();
    await member.locator("[data-testid=connect][data-phase=connected]").waitFor({ timeout: 30_000 });
    const host = member.locator(`[data-testid=route-host][data-machine="${gatewayName}"]`);
    await host.waitFor({ timeout: 30_000 });
    // An address off the route is refused in words, before anything is sent.
    await host.getByTestId("route-host-address").fill("192.0.2.7");
    await host.getByTestId("route-host-open").click();
    expect(await host.getByTestId("route-host-error").innerText()).toContain(
      `192.0.2.7 is not on ${gatewayName}'s routes (${topo.lanPrefix})`,
    );
    await host.getByTestId("route-host-address").fill(topo.lanHostIp);
    await host.getByTestId("route-host-open").click();
    const apps = host.getByTestId("route-host-apps");
    await until("the access check", async () => (await apps.getAttribute("data-ssh")) === "yes", 30_000);
    expect(await apps.getAttribute("data-vnc")).toBe("yes");
    await shot(member, "2-connect-office-host");

    // SSH, in a tab of its own: password, trust the host key on first use, a command.
    [memberSsh] = await Promise.all([
      memberContext.waitForEvent("page"),
      apps.getByTestId("route-host-ssh").click(),
    ]);
    await shown(memberSsh, "ssh-signin", "journey");
    await memberSsh.getByTestId("ssh-user").fill(office.sshUser);
    await memberSsh.getByTestId("ssh-password").fill(office.sshPassword);
    await memberSsh.getByTestId("ssh-connect").click();
    const fingerprint = await memberSsh.getByTestId("ssh-hostkey-fingerprint").innerText({ timeout: 30_000 });
    expect(office.hostKeyFingerprints().some((f) => fingerprint.includes(f))).toBe(true);
    await memberSsh.getByTestId("ssh-hostkey-trust").click();
    await until("the shell prompt", async () => /\$\s*$/m.test(await terminalText(memberSsh)), 30_000);
    await runInTerminal(
      memberSsh,
      "echo journey-$((6*7)) on $(hostname -I)",
      `journey-42 on ${topo.lanHostIp}`,
      15_000,
    );
    await shot(memberSsh, "2-ssh");

    // The office web app, rendered (its script fetched JSON through the tunnel).
    const [web] = await Promise.all([
      memberContext.waitForEvent("page"),
      apps.getByTestId("route-host-web").click(),
    ]);
    const frame = web.frameLocator("[data-testid=web-frame]");
    await frame.locator("h1").getByText("Office wiki").waitFor({ timeout: 60_000 });
    await expect.poll(() => frame.locator("#data").innerText(), { timeout: 15_000 }).toBe("answer 42");
    await shot(web, "2-web-app");
    await web.close();

    // VNC: the office's screen (a solid #2a7ab0) on the viewer's canvas.
    const [vnc] = await Promise.all([
      memberContext.waitForEvent("page"),
      apps.getByTestId("route-host-vnc").click(),
    ]);
    await vnc.locator("[data-testid=vnc][data-phase=connected]").waitFor({ timeout: 30_000 });
    await until("the screen drawn", () => vncCentreIs(vnc, [0x2a, 0x7a, 0xb0]), 15_000);
    await shot(vnc, "2-vnc");
    await vnc.close();
  }, 240_000);

  it("6: the server killed and restarted mid-session: the open SSH session keeps working, the page reconnects", async () => {
    // The member's node reaches the gateway directly (the relay lives in the server that dies).
    await member.bringToFront();
    await pingUntilPath(member, gatewayName, "direct");
    const control = member.getByTestId("connect-control");
    expect(await control.getAttribute("data-state")).toBe("connected");

    await trellis.crash();
    await until(
      "the page seeing the server gone",
      async () => (await control.getAttribute("data-state")) !== "connected",
      60_000,
    );
    expect(await control.innerText()).toMatch(/retrying|connecting/);
    await shot(member, "6-server-down");
    await memberSsh.bringToFront();
    await runInTerminal(memberSsh, "echo still-here-$((40+2))", "still-here-42", 20_000);
    await shot(memberSsh, "6-ssh-during-outage");

    trellis = await startTrellis({ dataDir: data.dir, port, env: trellisEnv });
    await member.bringToFront();
    await until(
      "the page reconnected",
      async () => (await control.getAttribute("data-state")) === "connected",
      90_000,
    );
    await shot(member, "6-server-back");
    await memberSsh.bringToFront();
    await runInTerminal(memberSsh, "echo after-$((40+2))", "after-42", 20_000);
    // The console works again for the admin, on the same session.
    await admin.goto(url + "/machines");
    await admin.getByTestId(`machine-row-${gatewayName}`).waitFor({ timeout: 15_000 });
  }, 240_000);

  it("4: two browsers of two users ping each other directly, through the relay while UDP is blocked, and directly again", async () => {
    await admin.goto(url + "/connect");
    await admin.getByTestId("connect-button").click();
    await admin.locator("[data-testid=connect][data-phase=connected]").waitFor({ timeout: 30_000 });
    const adminNode = (await admin.getByTestId("connect-name").innerText()).split(".")[0]!;
    await member.bringToFront();
    const memberNode = (await member.getByTestId("connect-name").innerText()).split(".")[0]!;
    await member
      .locator("tr", { has: member.getByText(adminNode, { exact: true }) })
      .waitFor({ timeout: 30_000 });

    expect(await pingUntilPath(member, adminNode, "direct")).toMatch(/^\d+ ms via direct path$/);
    await admin.bringToFront();
    expect(await pingUntilPath(admin, memberNode, "direct")).toMatch(/^\d+ ms via direct path$/);
    await shot(admin, "4-direct");

    // The member's home router drops all UDP (WebRTC's too): the relay carries the pings.
    const block = topo.homes[1].blockUdp();
    try {
      await member.bringToFront();
      expect(await pingUntilPath(member, adminNode, "relay")).toMatch(/^\d+ ms via relay$/);
      // The office too: the member's open SSH session to the LAN host carries on over the relay.
      await pingUntilPath(member, gatewayName, "relay");
      await shot(member, "4-relay");
      await memberSsh.bringToFront();
      await runInTerminal(memberSsh, "echo relayed-$((40+2))", "relayed-42", 20_000);
    } finally {
      block.remove();
    }
    await member.bringToFront();
    expect(await pingUntilPath(member, adminNode, "direct", 90_000)).toMatch(/^\d+ ms via direct path$/);
    await pingUntilPath(member, gatewayName, "direct", 90_000);
    await shot(member, "4-direct-again");
  }, 300_000);

  it("5: a server behind NAT reaches the office gateway directly after hole punching", async () => {
    const command = await printedCommand();
    const up = await paste(topo.server.ns, `${command} --hostname ops-server`, serverState);
    expect(up.code, up.stderr).toBe(0);
    let last = "";
    await until(
      "a direct path from the server to the gateway",
      async () => {
        const ping = await cli(
          ["ping", gatewayName, "--timeout", "3", "--state-dir", serverState],
          topo.server.ns,
        );
        last = ping.stdout || ping.stderr;
        return /via direct/.test(ping.stdout);
      },
      60_000,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; last ping: ${last}`, { cause: err });
    });
    const peer = (await status(topo.server.ns, serverState)).peers.find((p) => p.name === gatewayName)!;
    expect(peer.path).toBe("direct");
    // Through the office NAT: the path goes to its public address.
    expect(peer.pathDetail).toMatch(new RegExp(`^UDP ${topo.gateway.publicIp.replaceAll(".", "\\.")}:\\d+`));
    const text = await cli(["status", "--state-dir", serverState], topo.server.ns);
    expect(text.stdout).toMatch(new RegExp(`${gatewayName} .* direct`));
    const back = (await status(topo.gateway.ns, gatewayState)).peers.find((p) => p.name === "ops-server");
    expect(back?.path).toBe("direct");
  }, 180_000);

  it("3: the admin allows the member only port 80: the open SSH session is cut, a new one refused with the rule named, the web app still works", async () => {
    // The member's SSH session from journey 2 is still open.
    await memberSsh.bringToFront();
    await runInTerminal(memberSsh, "echo before-$((40+2))", "before-42", 20_000);

    await admin.bringToFront();
    await admin.goto(url + "/acls");
    await admin.locator("[data-testid=policy-editor][data-ready=true]").waitFor({ timeout: 20_000 });
    const policy = [
      "{",
      "  // Admins reach everything; engineers reach only the office web app.",
      `  "groups": {"group:eng": ["${MEMBER.email}"]},`,
      '  "acls": [',
      `    {"action": "accept", "src": ["${ADMIN.email}"], "dst": ["*:*"]},`,
      `    {"action": "accept", "src": ["group:eng"], "dst": ["${topo.lanPrefix}:80"]},`,
      "  ],",
      `  "tests": [{"src": "${MEMBER.email}", "accept": ["${topo.lanHostIp}:80"], "deny": ["${topo.lanHostIp}:22", "${topo.lanHostIp}:5900"]}],`,
      "}",
      "",
    ].join("\n");
    await admin.evaluate((text) => {
      (
        document.querySelector("[data-testid=policy-editor]") as unknown as { __setText(t: string): void }
      ).__setText(text);
    }, policy);
    await admin.getByRole("button", { name: "Save policy" }).click();
    await shown(admin, "policy-saved", "journey", 15_000);
    await shot(admin, "3-policy-saved");

    // The open session ends, saying why, and SSH is refused with the rule that would allow it.
    await memberSsh.bringToFront();
    await shown(memberSsh, "ssh-denied", "journey", 30_000);
    const denied = await memberSsh.getByTestId("ssh-denied").innerText();
    expect(denied).toMatch(/Its open sessions were closed/);
    expect(denied).toMatch(new RegExp(`port 22/tcp: denied`));
    expect(denied).toContain(
      `{"action": "accept", "src": ["${MEMBER.email}"], "dst": ["${topo.lanHostIp}:22"]}`,
    );
    await shot(memberSsh, "3-ssh-cut");
    await memberSsh.reload();
    await shown(memberSsh, "ssh-denied", "journey", 30_000);

    // Forced past the page: a connection to port 22 goes nowhere; the gateway drops and counts it.
    const before = (await status(topo.gateway.ns, gatewayState)).drops;
    const forced = await memberSsh.evaluate(async (ip) => {
      const node = (window as unknown as { trellisNode: BrowserNodeClient }).trellisNode;
      try {
        await node.connectTcp(ip, 22, 4000);
        return "connected";
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
    }, topo.lanHostIp);
    expect(forced).not.toBe("connected");
    const after = (await status(topo.gateway.ns, gatewayState)).drops;
    const total = (d: Record<string, number>) => Object.values(d).reduce((a, b) => a + b, 0);
    expect(total(after), JSON.stringify({ before, after })).toBeGreaterThan(total(before));

    // Port 80 still works: the web app renders.
    await memberSsh.goto(`${url}/web/${topo.lanHostIp}:80/`);
    try {
      await memberSsh
        .frameLocator("[data-testid=web-frame]")
        .locator("h1")
        .getByText("Office wiki")
        .waitFor({ timeout: 60_000 });
    } catch (err) {
      await shot(memberSsh, "3-web-failed");
      const main = await memberSsh.locator("main").innerText();
      const gw = await status(topo.gateway.ns, gatewayState);
      throw new Error(
        `the web app did not render; the page shows: ${main}; gateway drops ${JSON.stringify(gw.drops)}`,
        {
          cause: err,
        },
      );
    }
    await shot(memberSsh, "3-web-still-works");
  }, 240_000);
});
