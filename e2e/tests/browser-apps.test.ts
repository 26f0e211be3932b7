// The browser apps as a member uses them, in Debian's Chromium behind a NAT,
// against real servers in an office namespace (OpenSSH, TigerVNC) that the
// tailnet reaches through a node of the engine's Node flavour forwarding
// its ports: SSH from the page with a password and with a key made in the
// browser, `uname -a` seen in the terminal, a resize the shell notices, a
// changed host key refused with the warning; the VNC screen drawn on the
// viewer's canvas; the office web app rendered whole from its own origin
// (styles, image, script, WebSocket, form, cookies); the request panel; and
// with a policy that allows only port 80, the open SSH session ends, SSH is
// not offered and a forced attempt names the rule.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import type { NodeEngine } from "@trellis/client";
import { ARTIFACTS, hasChromium } from "../src/browser";
import { canUseNetns } from "../src/netns";
import { shown, terminalText, typeInTerminal, vncCentreIs } from "../src/apps";
import { canRunOffice, forwardOffice, startOffice, type Office } from "../src/office";
import { startBrowserTailnet, until, type BrowserTailnet } from "../src/tailnet";

let net: BrowserTailnet;
let office: Office;
let gateway: NodeEngine;
const can = canUseNetns && hasChromium && canRunOffice;
if (!can) console.warn("skipping the browser apps: they need root, Chromium, sshd and Xvnc");

/** The office's ports, served on the forwarding node's tailnet address. */
const FORWARDED = [22, 80, 5900];

beforeAll(async () => {
  if (!can) return;
  office = await startOffice();
  net = await startBrowserTailnet();
  gateway = await net.nodePeer("office");
  forwardOffice(gateway, office, FORWARDED);
}, 240_000);
afterAll(async () => {
  await net?.close();
  await office?.close();
});

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function terminalSize(page: Page): Promise<{ cols: number; rows: number }> {
  return page.evaluate(() => {
    const terms = (window as unknown as { trellisTerminals: Record<string, { cols: number; rows: number }> })
      .trellisTerminals;
    const ids = Object.keys(terms);
    const t = terms[ids[ids.length - 1]!]!;
    return { cols: t.cols, rows: t.rows };
  });
}

describe.skipIf(!can)("browser apps", () => {
  let alice: Page;

  it("opens SSH from the page with a password, after the user trusts the host key, and runs a command", async () => {
    alice = await net.userPage("alice@example.com");
    // The Connect page offers SSH and VNC for the office (the policy allows everything).
    await alice.getByTestId("connect-button").click();
    const apps = alice.locator('[data-testid=connect-apps][data-machine="office"]');
    await apps.getByTestId("connect-ssh").waitFor({ timeout: 30_000 });
    expect(await apps.getByTestId("connect-vnc").count()).toBe(1);

    const t0 = Date.now();
    await alice.goto(`${net.url}/ssh/office?user=${office.sshUser}`);
    await alice.getByTestId("ssh-signin").waitFor({ timeout: 30_000 });
    expect(await alice.getByTestId("ssh-user").inputValue()).toBe(office.sshUser);
    await alice.getByTestId("ssh-password").fill(office.sshPassword);
    await alice.getByTestId("ssh-connect").click();
    // First use: the page shows the host key and waits for the user.
    const shown = await alice.getByTestId("ssh-hostkey-fingerprint").innerText({ timeout: 15_000 });
    expect(office.hostKeyFingerprints().some((f) => shown.includes(f))).toBe(true);
    await alice.getByTestId("ssh-hostkey-trust").click();
    await alice.getByTestId("ssh-terminal").waitFor({ timeout: 15_000 });
    await until("the shell prompt", async () => /\$\s*$/m.test(await terminalText(alice)), 15_000);
    process.stderr.write(`ssh prompt ${Date.now() - t0} ms after opening /ssh/office\n`);

    await typeInTerminal(alice, "uname -a");
    await until(
      "uname's output",
      async () => /Linux \S+ .*GNU\/Linux/.test(await terminalText(alice)),
      10_000,
    );

    // A smaller window: the terminal refits and the shell learns its new size.
    const before = await terminalSize(alice);
    await alice.setViewportSize({ width: 900, height: 600 });
    await until("the terminal refitted", async () => (await terminalSize(alice)).cols < before.cols, 10_000);
    const after = await terminalSize(alice);
    await typeInTerminal(alice, "stty size");
    await until(
      "stty reporting the new size",
      async () => (await terminalText(alice)).includes(`${after.rows} ${after.cols}`),
      10_000,
    );
    await shot(alice, "browser-apps-ssh");
  });

  it("signs in with a key made in the browser, and refuses a changed host key with a warning", async () => {
    await alice.getByTestId("ssh-new-tab").click();
    await alice.getByTestId("ssh-method-key").check();
    await alice.getByTestId("ssh-generate").click();
    const line = await alice.getByTestId("ssh-public-key").innerText({ timeout: 10_000 });
    expect(line).toMatch(/^ecdsa-sha2-nistp256 AAAA/);
    office.authorizeKey(line);
    await alice.getByTestId("ssh-connect").click();
    // The host key is pinned now: no question, straight to the shell.
    await until(
      "a second terminal",
      async () => (await alice.getByTestId("ssh-session").count()) === 2,
      15_000,
    );
    await until("the shell prompt", async () => /\$\s*$/m.test(await terminalText(alice)), 15_000);
    await typeInTerminal(alice, "echo key-login-$((20+22)) $(whoami)");
    await until(
      "the command's output",
      async () => (await terminalText(alice)).includes(`key-login-42 ${office.sshUser}`),
      10_000,
    );

    // The server's host keys change: the next connection stops before signing in.
    await office.rotateHostKeys();
    await alice.getByTestId("ssh-new-tab").click();
    await alice.getByTestId("ssh-connect").click();
    const warning = alice.getByTestId("ssh-hostkey-changed");
    await warning.waitFor({ timeout: 15_000 });
    expect(await warning.innerText()).toMatch(/host key of office has changed/);
    expect(await alice.getByTestId("ssh-session").count()).toBe(2);
    await shot(alice, "browser-apps-ssh-hostkey-changed");
  });

  it("shows the office's VNC screen on the viewer's canvas", async () => {
    await alice.goto(`${net.url}/vnc/office`);
    await alice.locator("[data-testid=vnc][data-phase=connected]").waitFor({ timeout: 30_000 });
    expect(await alice.getByTestId("vnc-status").innerText()).toMatch(/Connected: office/);
    // The root window is solid #2a7ab0: the canvas shows it (not blank, not black).
    await until("the screen drawn", () => vncCentreIs(alice, [0x2a, 0x7a, 0xb0]), 15_000);
    const size = await alice.evaluate(() => {
      const c = document.querySelector<HTMLCanvasElement>("[data-testid=vnc-screen] canvas")!;
      return { w: c.width, h: c.height };
    });
    expect(size).toEqual({ w: office.vnc.width, h: office.vnc.height });
    await shot(alice, "browser-apps-vnc");

    // Nothing listens on 5901: the viewer says so in words.
    await alice.goto(`${net.url}/vnc/office?port=5901`);
    await expect
      .poll(() => alice.getByTestId("vnc-status").innerText(), { timeout: 15_000 })
      .toBe("office refused the connection on port 5901: nothing listens there.");
  });

  it("leaves a Disconnect made in another tab alone: the open app says so and joins again only when asked", async () => {
    const viewer = await alice.context().newPage();
    try {
      await viewer.goto(`${net.url}/vnc/office`);
      await viewer.locator("[data-testid=vnc][data-phase=connected]").waitFor({ timeout: 30_000 });
      await alice.goto(`${net.url}/connect`);
      await alice.locator("[data-testid=connect][data-phase=connected]").waitFor({ timeout: 15_000 });
      await alice.getByRole("button", { name: "Disconnect" }).click();
      const stopped = viewer.getByTestId("vnc-stopped");
      await stopped.waitFor({ timeout: 15_000 });
      expect(await stopped.innerText()).toMatch(/disconnected from the tailnet \(in another tab\)/);
      await shot(viewer, "browser-apps-stopped");
      // The node stays disconnected: the open app did not undo the user's choice.
      await new Promise((r) => setTimeout(r, 3000));
      expect(await alice.getByTestId("connect").getAttribute("data-phase")).toBe("idle");
      await viewer.getByRole("button", { name: "Join the tailnet again" }).click();
      await viewer.locator("[data-testid=vnc][data-phase=connected]").waitFor({ timeout: 30_000 });
      await alice.locator("[data-testid=connect][data-phase=connected]").waitFor({ timeout: 15_000 });
    } finally {
      await viewer.close();
    }
  });

  it("sends HTTP requests from the request panel: a page, a form POST answered 303, and a download", async () => {
    await alice.goto(`${net.url}/http/office?port=80&path=/`);
    await alice.getByTestId("http-send").click();
    await expect.poll(() => alice.getByTestId("http-status").innerText(), { timeout: 15_000 }).toBe("200 OK");
    expect(await alice.getByTestId("http-response-body").innerText()).toContain("<h1>Office wiki</h1>");

    await alice.getByTestId("http-method").selectOption("POST");
    await alice.getByTestId("http-path").fill("/submit");
    await alice.getByTestId("http-body").fill("name=Ada");
    await alice.getByTestId("http-send").click();
    await expect
      .poll(() => alice.getByTestId("http-status").innerText(), { timeout: 15_000 })
      .toBe("303 See Other");
    const result = await alice.getByTestId("http-result").innerText();
    expect(result).toContain("/thanks?name=Ada");
    expect(result).toContain("app_session=s1");

    await alice.getByTestId("http-method").selectOption("GET");
    await alice.getByTestId("http-path").fill("/big?mb=2");
    await alice.getByTestId("http-send").click();
    await expect
      .poll(() => alice.getByTestId("http-result").innerText(), { timeout: 30_000 })
      .toMatch(/2(\.0)? MiB[\s\S]*more not shown/);
    await shot(alice, "browser-apps-http");
  });

  it("renders the office web app on its own origin: styles, image, script with JSON and a WebSocket, a form's redirect, its own cookies", async () => {
    const t0 = Date.now();
    await alice.goto(`${net.url}/web/office:80/`);
    const frame = alice.frameLocator("[data-testid=web-frame]");
    await frame.locator("h1").waitFor({ timeout: 30_000 });
    process.stderr.write(`web app first paint ${Date.now() - t0} ms after opening /web/office:80/\n`);
    expect(await frame.locator("h1").innerText()).toBe("Office wiki");
    // The stylesheet applied, the image decoded, the script fetched JSON and echoed over a WebSocket.
    expect(await frame.locator("h1").evaluate((e) => getComputedStyle(e).color)).toBe("rgb(10, 120, 60)");
    await expect
      .poll(() => frame.locator("#logo").evaluate((e) => (e as HTMLImageElement).naturalWidth), {
        timeout: 10_000,
      })
      .toBe(1);
    await expect.poll(() => frame.locator("#data").innerText(), { timeout: 10_000 }).toBe("answer 42");
    await expect
      .poll(() => frame.locator("#ws").innerText(), { timeout: 15_000 })
      .toBe("echo: ping over the tailnet");

    // The form posts, the app answers 303, the frame follows it inside the app, and the address follows.
    await frame.locator("#name").fill("Ada");
    await frame.locator("#send").click();
    await expect.poll(() => frame.locator("#thanks").innerText(), { timeout: 15_000 }).toBe("Thanks, Ada");
    await expect.poll(() => alice.url(), { timeout: 5000 }).toBe(`${net.url}/web/office:80/thanks?name=Ada`);

    // The app's cookie went to its own jar and comes back to it, never to the browser's jars.
    await alice.goto(`${net.url}/web/office:80/whoami`);
    await expect
      .poll(() => alice.frameLocator("[data-testid=web-frame]").locator("#cookie").innerText(), {
        timeout: 15_000,
      })
      .toBe("cookie: app_session=s1");
    const browserCookies = await alice.context().cookies([net.url, net.appsUrl]);
    expect(browserCookies.map((c) => c.name)).not.toContain("app_session");

    // The app runs on the apps origin and cannot reach into the console's page.
    const appFrame = alice.frames().find((f) => f.url().startsWith(`${net.appsUrl}/office:80/`))!;
    expect(await appFrame.evaluate(() => location.origin)).toBe(net.appsUrl);
    expect(
      await appFrame.evaluate(() => {
        try {
          return window.parent.document.title;
        } catch {
          return "blocked";
        }
      }),
    ).toBe("blocked");
    await alice.goto(`${net.url}/web/office:80/`);
    await alice.frameLocator("[data-testid=web-frame]").locator("#data").getByText("answer 42").waitFor();
    await shot(alice, "browser-apps-web");
  });

  it("with a policy that allows only port 80, ends the open SSH session, offers no SSH and refuses a forced attempt with the rule named", async () => {
    // An open session first, with the browser's key (the page picks it when it holds one); the
    // server's keys changed earlier: forget the pinned one and trust the new.
    await alice.goto(`${net.url}/ssh/office?user=${office.sshUser}`);
    await alice.getByTestId("ssh-connect").click();
    await alice.getByTestId("ssh-hostkey-forget").click({ timeout: 15_000 });
    await alice.getByTestId("ssh-connect").click();
    await alice.getByTestId("ssh-hostkey-trust").click({ timeout: 15_000 });
    await until("the shell prompt", async () => /\$\s*$/m.test(await terminalText(alice)), 15_000);

    await net.savePolicy({
      tagOwners: { "tag:server": [], "tag:locked": [] },
      acls: [{ action: "accept", src: ["*"], dst: ["*:80"] }],
    });
    await alice.goto(`${net.url}/connect`);
    await alice
      .getByTestId("connect-peers")
      .getByText("office", { exact: true })
      .waitFor({ timeout: 30_000 });
    // The row's access check answers: the web port is offered, SSH and VNC are not.
    const apps = alice.locator('[data-testid=connect-apps][data-machine="office"]');
    await until("the access check", async () => (await apps.getAttribute("data-ssh")) === "no", 30_000);
    expect(await apps.getAttribute("data-vnc")).toBe("no");
    expect(await apps.getAttribute("data-web")).toBe("80");
    expect(await apps.locator("a").allInnerTexts()).toEqual(["Web"]);

    await alice.goto(`${net.url}/ssh/office`);
    const denied = alice.getByTestId("ssh-denied");
    await shown(alice, "ssh-denied", "browser-apps");
    const text = await denied.innerText();
    expect(text).toMatch(/do not allow SSH from this browser to office/);
    expect(text).toMatch(/→ office port 22\/tcp: denied/);
    expect(text).toContain('{"action": "accept", "src": ["alice@example.com"], "dst": ["office:22"]}');
    await shot(alice, "browser-apps-ssh-denied");

    // Port 80 still works.
    await alice.goto(`${net.url}/http/office?port=80&path=/api/data.json`);
    await shown(alice, "http-send", "browser-apps");
    await alice.getByTestId("http-send").click();
    await expect
      .poll(() => alice.getByTestId("http-response-body").innerText(), { timeout: 15_000 })
      .toBe('{"answer":42,"from":"office"}');
  });
});
