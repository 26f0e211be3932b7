// npm run bench -- browser-apps [--json] [--mb N]
// The browser apps in Debian's Chromium behind a NAT, against the office
// namespace (OpenSSH, a web app) reached through a forwarding Node peer
// (e2e/src/office.ts; needs root):
//  - ssh_prompt_ms: click on Connect → the shell's prompt in the terminal
//    (host key already pinned, password sign-in);
//  - web_first_paint_ms: opening /web/office:80/ → the app's heading
//    rendered in its frame (service worker installed: a second visit);
//    web_first_paint_cold_ms the same on the very first visit;
//  - sw_download_MBps: an N MB download fetched by the app's page through
//    the service worker, next to tcp_download_MBps: the same download read
//    by the console page from a raw tailnet TCP stream (same run, same path
//    below the HTTP layer); sw_ratio is their ratio.
// MB = 10^6 bytes; each download is the best of 2.
import type { Frame, Page } from "playwright-core";
import type { BrowserNodeClient } from "@trellis/client/browser";
import { report, type Figures } from "../../scripts/lib/bench";
import { hasChromium } from "../src/browser";
import { canUseNetns } from "../src/netns";
import { terminalText } from "../src/apps";
import { canRunOffice, forwardOffice, startOffice } from "../src/office";
import { startBrowserTailnet, until } from "../src/tailnet";

const json = process.argv.includes("--json");
const i = process.argv.indexOf("--mb");
const MB = i > 0 ? Number(process.argv[i + 1]) : 20;

if (!canUseNetns || !hasChromium || !canRunOffice) {
  console.error("bench browser-apps needs root, Chromium (/usr/bin/chromium), sshd and Xvnc");
  process.exit(2);
}

async function sshPrompt(
  page: Page,
  url: string,
  user: string,
  password: string,
  trust: boolean,
): Promise<number> {
  await page.goto(`${url}/ssh/office?user=${user}`);
  await page.getByTestId("ssh-password").fill(password);
  const t0 = Date.now();
  await page.getByTestId("ssh-connect").click();
  if (trust) await page.getByTestId("ssh-hostkey-trust").click({ timeout: 15_000 });
  await until("the shell prompt", async () => /\$\s*$/m.test(await terminalText(page)), 15_000);
  return Date.now() - t0;
}

async function firstPaint(page: Page, url: string): Promise<number> {
  const t0 = Date.now();
  await page.goto(`${url}/web/office:80/`);
  const loaded = Date.now() - t0;
  await page.getByTestId("web-app").waitFor({ timeout: 30_000 });
  const gate = Date.now() - t0;
  await page.frameLocator("[data-testid=web-frame]").locator("h1").waitFor({ timeout: 30_000 });
  if (!json)
    console.error(
      `  first paint: page loaded ${loaded} ms, tailnet and policy checked ${gate} ms, app painted ${Date.now() - t0} ms`,
    );
  return Date.now() - t0;
}

/** MB/s of the app page fetching /big through the service worker. */
function swDownload(frame: Frame): Promise<number> {
  return frame.evaluate(async (mb) => {
    const t = performance.now();
    const res = await fetch(`/big?mb=${mb}`);
    const reader = res.body!.getReader();
    let n = 0;
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      n += r.value.length;
    }
    if (n !== mb * 1024 * 1024) throw new Error(`got ${n} bytes`);
    return n / ((performance.now() - t) / 1000) / 1e6;
  }, MB);
}

/** MB/s of the console page reading the same download from a raw tailnet TCP stream. */
function tcpDownload(page: Page): Promise<number> {
  return page.evaluate(async (mb) => {
    const node = (window as unknown as { trellisNode: BrowserNodeClient }).trellisNode;
    const t = performance.now();
    const c = await node.connectTcp("office", 80, 10_000);
    const w = c.writable.getWriter();
    await w.write(
      new TextEncoder().encode(`GET /big?mb=${mb} HTTP/1.1\r\nHost: office\r\nConnection: close\r\n\r\n`),
    );
    const reader = c.readable.getReader();
    let n = 0;
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      n += r.value.length;
    }
    if (n < mb * 1024 * 1024) throw new Error(`got ${n} bytes`);
    return n / ((performance.now() - t) / 1000) / 1e6;
  }, MB);
}

const office = await startOffice();
const net = await startBrowserTailnet();
try {
  forwardOffice(await net.nodePeer("office"), office, [22, 80]);
  const page = await net.userPage("bench@example.com");
  await page.context().addInitScript("globalThis.__name = (f) => f;");
  await page.getByTestId("connect-button").click();
  await page.locator("[data-testid=connect][data-phase=connected]").waitFor({ timeout: 30_000 });

  await sshPrompt(page, net.url, office.sshUser, office.sshPassword, true);
  const sshMs = await sshPrompt(page, net.url, office.sshUser, office.sshPassword, false);
  const coldPaint = await firstPaint(page, net.url);
  const warmPaint = await firstPaint(page, net.url);
  const frame = page.frames().find((f) => f.url().startsWith(`${net.appsUrl}/office:80/`))!;
  let sw = 0;
  let tcp = 0;
  for (let r = 0; r < 2; r++) {
    const s = await swDownload(frame);
    const t = await tcpDownload(page);
    if (!json)
      console.error(`  run ${r + 1}: service worker ${s.toFixed(2)} MB/s, raw TCP ${t.toFixed(2)} MB/s`);
    sw = Math.max(sw, s);
    tcp = Math.max(tcp, t);
  }
  const figures: Figures = {
    ssh_prompt_ms: sshMs,
    web_first_paint_ms: warmPaint,
    web_first_paint_cold_ms: coldPaint,
    sw_download_MBps: sw,
    tcp_download_MBps: tcp,
    sw_ratio: sw / tcp,
  };
  report("browser-apps", figures, json);
} finally {
  await net.close();
  await office.close();
}
