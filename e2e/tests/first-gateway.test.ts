// A new admin's first gateway, as the console tells them to do it: finish
// first-run setup in Chromium, generate a pre-auth key, run the `trellis up
// …` command the Keys page prints — exactly as printed, on a server (a
// network namespace, TUN mode, as root) — see the machine appear on
// Machines without a reload, advertise the office LAN with `trellis set`,
// approve the route on the machine's page, and reach a LAN host, which has
// no route back to the tailnet, through the gateway: its web app in the
// admin's own browser, and ping from another node.
// Screenshots land in e2e/artifacts.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { nodeEngine } from "@trellis/client/node";
import type { NodeEngine } from "@trellis/client";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { ARTIFACTS, hasChromium, launchChromium } from "../src/browser";
import { cli, stopDaemon, TRELLIS } from "../src/gateway";
import { canUseNetns, createGatewayTopology, type GatewayTopology } from "../src/netns";
import { ROOT, startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until } from "../src/wait";

const canRun =
  canUseNetns &&
  hasChromium &&
  existsSync("/dev/net/tun") &&
  existsSync(join(ROOT, "gateway/build/Release/trellis_tun.node"));
if (!canRun)
  console.warn("skipping the first gateway journey: needs root, ip netns, nft, the TUN addon and Chromium");

const PASSWORD = "correct horse battery staple";
const data = tempDataDir();
const work = mkdtempSync(join(tmpdir(), "trellis-first-gw-"));
const stateDir = join(work, "state");
let topo: GatewayTopology;
let trellis: RunningTrellis;
let url: string;
let closeBrowser: (() => Promise<void>) | undefined;
let page: Page;
let peer: NodeEngine | undefined;
let lanWeb: ChildProcess | undefined;

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `first-gateway-${name}.png`), fullPage: true });
}

/** Run a shell command line as an admin would paste it, on the server (the gateway namespace). */
function paste(line: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      "ip",
      ["netns", "exec", topo.name, "sh", "-c", line],
      {
        timeout: 90_000,
        killSignal: "SIGKILL",
        encoding: "utf8",
        env: {
          ...process.env,
          PATH: `${join(work, "bin")}:${process.env.PATH}`,
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

/** Generate a key on the Keys page; the key and the command printed with it. */
async function generateKey(): Promise<{ key: string; command: string }> {
  await page.goto(url + "/keys");
  await page.getByTestId("generate-key").click();
  await page.getByRole("button", { name: "Generate key" }).click();
  await page.getByTestId("new-key-command").waitFor({ timeout: 15_000 });
  return {
    key: (await page.getByTestId("new-key-value").innerText()).trim(),
    command: (await page.getByTestId("new-key-command").innerText()).trim(),
  };
}

describe.skipIf(!canRun)("a new admin's first gateway", () => {
  beforeAll(async () => {
    topo = createGatewayTopology();
    // `trellis` on the PATH as the install script puts it there: a wrapper around the checkout's.
    mkdirSync(join(work, "bin"));
    writeFileSync(join(work, "bin", "trellis"), `#!/bin/sh\nexec ${TRELLIS} "$@"\n`, { mode: 0o755 });
    trellis = await startTrellis({ dataDir: data.dir, env: { HOST: topo.hostIp } });
    url = trellis.url.replace("127.0.0.1", topo.hostIp);
    // The console at a LAN address over plain http is not a secure context, where browsers
    // keep no Web Crypto (and so no node key); a real deployment serves https. Here Chromium
    // is told to treat the console and its web-apps origin as secure.
    const apps = `http://${topo.hostIp}:${trellis.appsPort}`;
    const { browser, close } = await launchChromium({
      extraArgs: [`--unsafely-treat-insecure-origin-as-secure=${url},${apps}`],
    });
    closeBrowser = close;
    page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
  }, 180_000);

  afterAll(async () => {
    const errors: unknown[] = [];
    peer?.close();
    lanWeb?.kill("SIGKILL");
    await stopDaemon(stateDir).catch((err: unknown) => errors.push(err));
    await closeBrowser?.();
    try {
      topo?.remove();
    } catch (err) {
      errors.push(err);
    }
    await trellis?.stop();
    data.remove();
    rmSync(work, { recursive: true, force: true });
    if (errors.length) throw new AggregateError(errors, "cleanup failed");
  }, 60_000);

  it("sets up, runs the printed command, approves the LAN route, and reaches the LAN through the gateway", async () => {
    // First-run setup logs the admin in.
    await page.goto(trellis.setupLink()!.replace("127.0.0.1", topo.hostIp));
    await page.getByLabel("Name").fill("Ada Admin");
    await page.getByLabel("Email").fill("ada@example.com");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: /create admin account/i }).click();
    await page.waitForURL(/\/machines/, { timeout: 15_000 });
    await page.getByTestId("machines-empty").waitFor();

    // Keys: a key, and the command to use it.
    const { command } = await generateKey();
    expect(command).toMatch(/^trellis up --login-server http:\/\/\S+ --auth-key trellis-auth-\S+$/);
    await shot("key");

    // On the server, exactly as printed; Machines shows it without a reload.
    await page.goto(url + "/machines");
    await page.getByTestId("machines-empty").waitFor();
    const up = await paste(command);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^Up: this machine is (\S+) \(/);
    const name = /^Up: this machine is (\S+) \(/.exec(up.stdout)![1]!;
    await page.getByTestId(`machine-row-${name}`).waitFor({ timeout: 15_000 });

    // The office LAN, advertised without a new machine, approved on its page.
    const set = await paste(`trellis set --advertise-routes ${topo.lanPrefix}`);
    expect(set.code, set.stderr).toBe(0);
    await page.getByTestId(`machine-row-${name}`).getByTestId("routes-need-approval").first().waitFor({
      timeout: 15_000,
    });
    await shot("machines");
    await page.getByTestId(`machine-row-${name}`).getByRole("link").first().click();
    await page.getByTestId("machine-name").waitFor();
    await page.getByTestId(`route-${topo.lanPrefix}`).check();
    await page.getByRole("button", { name: "Save routes" }).click();
    await until("the gateway forwarding the route", async () => {
      const r = await cli(["status", "--json", "--state-dir", stateDir], topo.name);
      const s = JSON.parse(r.stdout) as { forwarding: { routes: string[] } | null };
      return s.forwarding?.routes.includes(topo.lanPrefix);
    });
    await shot("machine-route-approved");

    // The admin's own browser opens the LAN host's web app through the gateway (the access check
    // answers for an address behind an approved route); the host has no route to the tailnet.
    lanWeb = spawn(
      "ip",
      [
        "netns",
        "exec",
        topo.lanNs,
        process.execPath,
        "-e",
        `require("node:http").createServer((q, r) => { r.setHeader("content-type", "text/html"); r.end("<h1 id=hello>office intranet</h1>"); }).listen(8080, "${topo.lanHostIp}")`,
      ],
      { stdio: "ignore" },
    );
    await page.goto(`${url}/web/${topo.lanHostIp}:8080/`);
    try {
      await page
        .frameLocator("[data-testid=web-frame]")
        .locator("#hello")
        .getByText("office intranet")
        .waitFor({ timeout: 60_000 });
    } catch (err) {
      await shot("lan-web-app-failed");
      throw new Error(
        `the LAN web app did not render; the page shows: ${await page.locator("main").innerText()}`,
        {
          cause: err,
        },
      );
    }
    await shot("lan-web-app");

    // Another node (with a key of its own: the default key is single-use) reaches the LAN host
    // through the gateway; the host has no route to the tailnet.
    const { key } = await generateKey();
    peer = nodeEngine({
      baseUrl: url,
      privateKey: generateKeyPair().privateKey,
      register: { preAuthKey: key, hostname: "laptop", os: "linux" },
      webrtc: false,
    });
    await peer.start();
    await until("the route in the laptop's map", () =>
      peer!.netmap?.peers.find((p) => p.name === name)?.allowedIPs.includes(topo.lanPrefix),
    );
    const pong = await until("the LAN host's ping reply", () =>
      peer!.ping(topo.lanHostIp, { timeoutMs: 3000 }).catch(() => null),
    );
    expect(pong).toMatchObject({ address: topo.lanHostIp, peer: null });
  }, 240_000);
});
