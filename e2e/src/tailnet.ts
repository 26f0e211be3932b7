// A tailnet for browser journeys and the browser benchmark: the Trellis
// server (control plane, embedded relay and STUN) on the host, Debian's
// Chromium in a client namespace behind a masquerading NAT (the shape of a
// laptop behind a home router), and nodes of the engine's Node flavour on
// the host. Chromium reaches the server on the host's veth address, which it
// is told to treat as a secure origin (WebCrypto and IndexedDB need one).
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page, Request } from "playwright-core";
import { nodeEngine } from "@trellis/client/node";
import type { NodeEngine } from "@trellis/client";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { CHROMIUM, launchChromium } from "./browser";
import { api, login, type Caller, firstAdmin } from "./console";
import { createNatTopology, type NatTopology } from "./netns";
import { startTrellis, tempDataDir, type RunningTrellis } from "./server";
import { until } from "./wait";

export const PASSWORD = "correct horse battery staple";

export interface BrowserTailnet {
  url: string;
  /** The web-apps origin (tailnet web apps render there, framed by the console). */
  appsUrl: string;
  trellis: RunningTrellis;
  nat: NatTopology;
  browser: Browser;
  admin: Caller;
  /**
   * A member (invited, with a password) in a fresh browser profile, logged
   * in, on `/connect`; `prepare` runs on the profile before the page opens.
   */
  userPage(email: string, prepare?: (context: BrowserContext) => Promise<void>): Promise<Page>;
  /** A node of the engine's Node flavour on the host, tagged (`tag:server` unless told), started. */
  nodePeer(hostname: string, opts?: { webrtc?: boolean; tags?: string[] }): Promise<NodeEngine>;
  savePolicy(policy: unknown): Promise<number>;
  close(): Promise<void>;
}

export async function startBrowserTailnet(): Promise<BrowserTailnet> {
  const cleanup: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const f of cleanup.reverse()) await f();
  };
  try {
    const nat = createNatTopology();
    cleanup.push(() => nat.remove());
    const data = tempDataDir();
    cleanup.push(() => data.remove());
    const trellis = await startTrellis({ dataDir: data.dir, env: { HOST: nat.hostIp } });
    cleanup.push(async () => void (await trellis.stop()));
    const url = trellis.url.replace("127.0.0.1", nat.hostIp);
    const appsUrl = `http://${nat.hostIp}:${trellis.appsPort}`;

    const admin: Caller = await firstAdmin(url, trellis.setupLink());
    // Tagged keys need their tags declared, as in Tailscale; the tests' peers use these.
    const start = await api(url, admin, "PUT", "/api/v1/policy", {
      text: JSON.stringify({
        tagOwners: { "tag:server": [], "tag:locked": [] },
        acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }],
      }),
    });
    if (start.status !== 200) throw new Error(`policy: ${start.status} ${JSON.stringify(start.body)}`);
    const preAuthKey = async (tags: string[]) => {
      const res = await api(url, admin, "POST", "/api/v1/keys", { tags });
      if (res.status !== 201) throw new Error(`pre-auth key: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.key as string;
    };

    // Chromium runs inside the client namespace; Playwright drives it over a pipe.
    const wrapperDir = mkdtempSync(join(tmpdir(), "trellis-chromium-ns-"));
    cleanup.push(() => rmSync(wrapperDir, { recursive: true, force: true }));
    const wrapper = join(wrapperDir, "chromium");
    writeFileSync(wrapper, `#!/bin/sh\nexec ${nat.execInClient} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const chromium = await launchChromium({
      executablePath: wrapper,
      extraArgs: [
        // Both origins: WebCrypto and IndexedDB on the console's, service workers on the apps'.
        `--unsafely-treat-insecure-origin-as-secure=${url},${appsUrl}`,
        // Raw IP host candidates: two browsers in one namespace find each other without mDNS.
        "--disable-features=WebRtcHideLocalIpsWithMdns",
      ],
    });
    cleanup.push(() => chromium.close());

    const engines: NodeEngine[] = [];
    cleanup.push(() => engines.forEach((e) => e.close()));
    const contexts: BrowserContext[] = [];
    cleanup.push(async () => {
      for (const c of contexts) await c.close().catch(() => undefined);
    });

    return {
      url,
      appsUrl,
      trellis,
      nat,
      browser: chromium.browser,
      admin,
      async userPage(email, prepare) {
        const invited = await api(url, admin, "POST", "/api/v1/invitations", { email, role: "member" });
        if (invited.status !== 201) throw new Error(`invitation: ${invited.status}`);
        const inviteToken = /#token=([\w-]+)$/.exec(invited.body.url as string)![1];
        const accepted = await api(url, null, "POST", "/api/invitations/accept", {
          token: inviteToken,
          name: email.split("@")[0],
          password: PASSWORD,
        });
        if (accepted.status !== 201) throw new Error(`accept invitation: ${accepted.status}`);
        const cookie = await login(url, email, PASSWORD);
        const [name, ...value] = cookie.split("=");
        const context = await chromium.browser.newContext();
        contexts.push(context);
        await context.addCookies([{ name: name!, value: value.join("="), url }]);
        await prepare?.(context);
        const page = await context.newPage();
        await gotoExplained(page, url + "/connect", nat, cookie);
        return page;
      },
      async nodePeer(hostname, opts = {}) {
        const e = nodeEngine({
          baseUrl: url,
          privateKey: generateKeyPair().privateKey,
          register: { preAuthKey: await preAuthKey(opts.tags ?? ["tag:server"]), hostname, os: "linux" },
          webrtc: opts.webrtc ?? true,
        });
        engines.push(e);
        await e.start();
        return e;
      },
      async savePolicy(policy) {
        const res = await api(url, admin, "PUT", "/api/v1/policy", { text: JSON.stringify(policy) });
        if (res.status !== 200) throw new Error(`policy: ${res.status} ${JSON.stringify(res.body)}`);
        return res.body.version as number;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * `page.goto`, whose timeout says why: the requests still pending, and how
 * long the same page takes from the client namespace (through the NAT) and
 * from the host. A load that never finished in one CI run left nothing else
 * to go on.
 */
async function gotoExplained(page: Page, target: string, nat: NatTopology, cookie: string): Promise<void> {
  const pending = new Map<Request, number>();
  const onRequest = (r: Request) => pending.set(r, Date.now());
  const onDone = (r: Request) => pending.delete(r);
  page.on("request", onRequest);
  page.on("requestfinished", onDone);
  page.on("requestfailed", onDone);
  try {
    await page.goto(target);
  } catch (err) {
    const now = Date.now();
    const lines = [...pending].map(([r, t]) => `  ${r.method()} ${r.url()} pending for ${now - t} ms`);
    const probe = (argv: string[]) => {
      const t0 = Date.now();
      const res = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 15_000 });
      const took = `in ${Date.now() - t0} ms`;
      if (res.error) return `could not run ${argv[0]}: ${res.error.message} ${took}`;
      return res.status === 0
        ? `${res.stdout.trim()} ${took}`
        : `failed (${res.status ?? res.signal}) ${res.stderr.trim()} ${took}`;
    };
    const curl = [
      "curl",
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-m",
      "10",
      "-H",
      `cookie: ${cookie}`,
      target,
    ];
    throw new Error(
      [
        `${(err as Error).message}`,
        `requests still pending:`,
        ...(lines.length ? lines : ["  none"]),
        `the page from the client namespace: ${probe([nat.execInClient, ...curl])}`,
        `the page from the host: ${probe(curl)}`,
      ].join("\n"),
      { cause: err },
    );
  } finally {
    page.off("request", onRequest);
    page.off("requestfinished", onDone);
    page.off("requestfailed", onDone);
  }
}

/** Click Connect and wait until the page shows the node connected. */
export async function connect(page: Page, timeoutMs = 30_000): Promise<void> {
  await page.getByTestId("connect-button").click();
  await page.locator("[data-testid=connect][data-phase=connected]").waitFor({ timeout: timeoutMs });
}

export { until };
