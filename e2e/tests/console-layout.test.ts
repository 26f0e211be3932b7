import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { ControlClient, keyHolder } from "@trellis/client";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { ARTIFACTS, hasChromium, launchChromium } from "../src/browser";
import { api, login } from "../src/console";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

// Every console page fits its screen, in Chromium at a desktop's 1440×900 and
// a phone's 390×844, in the light and the dark theme, with the longest names,
// keys, tags, routes and addresses the API accepts: the document is never
// wider than the window, the desktop has no Menu button (the phone has one),
// and the sidebar's colour reaches the bottom of long pages. A screenshot of
// each page in each combination lands in e2e/artifacts (console-layout-*).

const PASSWORD = "correct horse battery staple";
// The longest values the API takes, as unbroken words (the hardest to wrap).
const TAILNET = "acme-" + "international-engineering-".repeat(4).slice(0, 95);
const ADMIN_NAME = "Ada" + "-Lovelace-Byron-King".repeat(4);
const ADMIN_EMAIL = "ada.lovelace.byron.king.of.the.analytical.engine@engineering.example.com";
const MEMBER_EMAIL = "charles.babbage.difference.engine.number.two@research.example.com";
const PENDING_EMAIL = "a.very.long.invited.person.name.for.testing.layouts@partners.example.org";
const tag = (n: number) => `tag:${"longtagname".repeat(6).slice(0, 58)}-${n}`; // 64 characters, the limit
const TAGS = [tag(1), tag(2), tag(3), tag(4), tag(5)];
const HOSTNAME = "router-" + "x".repeat(56); // 63 characters, a DNS label's limit
const ROUTES = ["10.20.0.0/24", "192.168.100.0/24", "2001:db8:85a3:1234:5678:8a2e:3700:0/112"];
const ENDPOINTS = [
  "[2001:db8:85a3:1234:5678:8a2e:370:7334]:41641",
  "203.0.113.250:41641",
  "[2001:db8:ffff:ffff:ffff:ffff:ffff:fffe]:65535",
];

const VIEWPORTS = [
  { label: "desktop", width: 1440, height: 900 },
  { label: "phone", width: 390, height: 844 },
] as const;
const THEMES = ["light", "dark"] as const;

const data = tempDataDir();
let trellis: RunningTrellis;
let url: string;
let browser: Browser;
let closeBrowser: (() => Promise<void>) | undefined;
let adminCookie: string;
let machineId: string;
/** Set once the tailnet has its long name. */
let tailnetShown = false;
const machineClients: ControlClient[] = [];

beforeAll(async () => {
  trellis = await startTrellis({ dataDir: data.dir });
  url = trellis.url;
  if (hasChromium) ({ browser, close: closeBrowser } = await launchChromium());
}, 180_000);

afterAll(async () => {
  await closeBrowser?.();
  await trellis?.stop();
  data.remove();
});

interface Check {
  /** Artifact name of the page. */
  name: string;
  path: string;
  /** What shows once the page has rendered. */
  ready: (page: Page) => Promise<unknown>;
  /** A console page (sidebar, Menu button); false for login, setup, invite. */
  console?: boolean;
  /** Taller than the window on a desktop (where the sidebar's reach is tested). */
  long?: boolean;
}

/**
 * Open `check` in every viewport and theme and record (softly, so one run
 * lists every misfit) what does not fit. Returns the page, left on the last
 * combination.
 */
async function checkLayout(page: Page, check: Check): Promise<void> {
  for (const vp of VIEWPORTS) {
    for (const theme of THEMES) {
      const where = `${check.name} at ${vp.width}×${vp.height}, ${theme}`;
      await page.setViewportSize({ width: vp.width, height: vp.height });
      await page.emulateMedia({ colorScheme: theme });
      await page.goto(url + check.path);
      await check.ready(page).catch(async (err: unknown) => {
        await page.screenshot({ path: join(ARTIFACTS, `console-layout-${check.name}-not-ready.png`) });
        throw new Error(
          `${where}: never ready (${String(err)}); the page is in console-layout-${check.name}-not-ready.png`,
        );
      });
      // Fonts and late layout (the policy editor, live data) settle before measuring.
      await page.evaluate(() => document.fonts.ready.then(() => undefined));
      await page.evaluate(
        () => new Promise<void>((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))),
      );
      const fit = await page.evaluate(() => {
        const root = document.documentElement;
        // What sticks out, leaving out what a frame of its own scrolls or clips (a wide table).
        const clipped = (el: Element) => {
          for (let a = el.parentElement; a && a !== document.body; a = a.parentElement)
            if (getComputedStyle(a).overflowX !== "visible") return true;
          return false;
        };
        const wide = Array.from(document.querySelectorAll("body *"))
          .filter((el) => {
            const r = el.getBoundingClientRect();
            return r.width > 0 && r.right > root.clientWidth + 0.5 && !clipped(el);
          })
          .slice(-3)
          .map((el) => {
            const cls =
              typeof el.className === "string" && el.className ? `.${el.className.split(" ")[0]}` : "";
            return `${el.tagName.toLowerCase()}${cls} (${Math.round(el.getBoundingClientRect().right)} px)`;
          });
        return { scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, wide };
      });
      expect
        .soft(fit.scrollWidth, `${where}: the page is wider than the window (${fit.wide.join(", ")})`)
        .toBe(fit.clientWidth);
      if (check.console !== false) {
        // Which tailnet this is: in the sidebar and in the tab's title.
        if (tailnetShown)
          expect.soft(await page.title(), `${where}: title`).toContain(` · ${TAILNET} · Trellis`);
        const menu = await page.getByRole("button", { name: "Menu" }).isVisible();
        expect.soft(menu, `${where}: Menu button visible`).toBe(vp.label === "phone");
        if (vp.label === "desktop") {
          const { scrolled, fullPage, panel, long } = await sidebarAtBottom(page);
          const what = `${where}: the sidebar's colour at the bottom of the page (long page: ${long})`;
          expect.soft(scrolled, `${what}, scrolled to the end`).toEqual(panel);
          expect.soft(fullPage, `${what}, in a full-page screenshot`).toEqual(panel);
          if (check.long) expect.soft(long, `${where}: a long page`).toBe(true);
        }
      }
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({
        path: join(ARTIFACTS, `console-layout-${check.name}-${vp.width}-${theme}.png`),
        fullPage: true,
      });
    }
  }
}

/**
 * The colour at the bottom-left corner of the page, as people see it once
 * they scroll to its end and as a full-page screenshot shows it (where the
 * sticky sidebar stays at the top: only the column's own background reaches
 * down), each a pixel of a screenshot read back through a canvas; and the
 * sidebar's colour (its `--panel`). All as [r, g, b].
 */
async function sidebarAtBottom(
  page: Page,
): Promise<{ scrolled: number[]; fullPage: number[]; panel: number[]; long: boolean }> {
  const { height, scrollHeight } = await page.evaluate(() => {
    window.scrollTo(0, document.documentElement.scrollHeight);
    return { height: window.innerHeight, scrollHeight: document.documentElement.scrollHeight };
  });
  const scrolled = await page.screenshot({ clip: { x: 0, y: height - 8, width: 8, height: 8 } });
  await page.evaluate(() => window.scrollTo(0, 0));
  const full = await page.screenshot({
    fullPage: true,
    clip: { x: 0, y: scrollHeight - 8, width: 8, height: 8 },
  });
  const colours = await page.evaluate(
    async (pngs) => {
      const pixel = async (b64: string) => {
        const img = new Image();
        img.src = `data:image/png;base64,${b64}`;
        await img.decode();
        const canvas = document.createElement("canvas");
        canvas.width = img.width;
        canvas.height = img.height;
        const ctx = canvas.getContext("2d")!;
        ctx.drawImage(img, 0, 0);
        return Array.from(ctx.getImageData(4, 4, 1, 1).data.slice(0, 3));
      };
      // The panel colour as the browser resolves it (a probe element painted with it).
      const probe = document.createElement("div");
      probe.style.background = "var(--panel)";
      document.body.append(probe);
      const m = /rgba?\((\d+), (\d+), (\d+)/.exec(getComputedStyle(probe).backgroundColor)!;
      probe.remove();
      return {
        scrolled: await pixel(pngs[0]!),
        fullPage: await pixel(pngs[1]!),
        panel: [Number(m[1]), Number(m[2]), Number(m[3])],
      };
    },
    [scrolled.toString("base64"), full.toString("base64")],
  );
  return { ...colours, long: scrollHeight > height + 100 };
}

const heading = (page: Page) => page.locator("main h1").first().waitFor({ timeout: 15_000 });
const testId = (id: string) => (page: Page) => page.getByTestId(id).first().waitFor({ timeout: 20_000 });

async function asAdmin(): Promise<Page> {
  const ctx = await browser.newContext();
  const [name, ...rest] = adminCookie.split("=");
  await ctx.addCookies([{ name: name!, value: rest.join("="), url }]);
  return ctx.newPage();
}

/** Register a machine over the control API with its own key (as `trellis up` does). */
async function register(preAuthKey: string, hostname: string, routableIPs: string[]): Promise<void> {
  const client = new ControlClient({ baseUrl: url, key: keyHolder(generateKeyPair().privateKey) });
  expect((await client.register({ preAuthKey, hostname, os: "linux", routableIPs })).created).toBe(true);
  await client.updateEndpoints({ endpoints: ENDPOINTS, homeRegion: 1 });
  machineClients.push(client);
}

describe.skipIf(!hasChromium)("console layout in Chromium", () => {
  it("first-run setup fits, and creates the admin", async () => {
    const page = await browser.newPage();
    const link = trellis.setupLink()!;
    await checkLayout(page, {
      name: "setup",
      path: link.slice(url.length),
      ready: (p) => p.getByRole("button", { name: /create admin account/i }).waitFor(),
      console: false,
    });
    await page.getByLabel("Name").fill(ADMIN_NAME);
    await page.getByLabel("Email").fill(ADMIN_EMAIL);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: /create admin account/i }).click();
    await page.waitForURL(/\/machines/, { timeout: 15_000 });
    await page.context().close();
    adminCookie = await login(url, ADMIN_EMAIL, PASSWORD);
  }, 240_000);

  it("the login and invitation pages fit", async () => {
    const page = await browser.newPage();
    await checkLayout(page, {
      name: "login",
      path: "/login",
      ready: (p) => p.getByRole("button", { name: "Log in" }).waitFor(),
      console: false,
    });
    const admin = { cookie: adminCookie };
    const invited = await api(url, admin, "POST", "/api/v1/invitations", { email: MEMBER_EMAIL });
    expect(invited.status).toBe(201);
    await checkLayout(page, {
      name: "invite",
      path: new URL(invited.body.url).pathname + new URL(invited.body.url).hash,
      ready: (p) => p.getByText(MEMBER_EMAIL).first().waitFor({ timeout: 15_000 }),
      console: false,
    });
    // Accepted, so that a member can show the forbidden page; one more stays pending for the Users page.
    const token = new URLSearchParams(new URL(invited.body.url).hash.slice(1)).get("token");
    const accepted = await api(url, null, "POST", "/api/invitations/accept", {
      token,
      name: "Charles" + "-Babbage".repeat(11),
      password: PASSWORD,
    });
    expect(accepted.status).toBe(201);
    expect(
      (await api(url, admin, "POST", "/api/v1/invitations", { email: PENDING_EMAIL, role: "auditor" }))
        .status,
    ).toBe(201);
    await page.context().close();
  }, 240_000);

  it("every console page fits, with the longest names, keys, tags and routes", async () => {
    const admin = { cookie: adminCookie };
    // A policy with long groups and tags (its tests and comments make the editor long).
    const policy = {
      groups: { "group:engineering-and-operations-worldwide": [ADMIN_EMAIL, MEMBER_EMAIL] },
      tagOwners: Object.fromEntries(TAGS.map((t) => [t, ["group:engineering-and-operations-worldwide"]])),
      acls: [
        { action: "accept", src: ["*"], dst: ["*:*"] },
        ...TAGS.map((t) => ({
          action: "accept",
          src: [ADMIN_EMAIL],
          dst: [`${t}:22,80,443,5900,8080-8090`],
        })),
      ],
      tests: [{ src: ADMIN_EMAIL, accept: [`${TAGS[0]}:22`] }],
    };
    const saved = await api(url, admin, "PUT", "/api/v1/policy", { text: JSON.stringify(policy, null, 2) });
    expect(saved.status, JSON.stringify(saved.body)).toBe(200);
    expect(
      (
        await api(url, admin, "PUT", "/api/v1/settings", {
          ...(await api(url, admin, "GET", "/api/v1/settings")).body,
          name: TAILNET,
        })
      ).status,
    ).toBe(200);
    tailnetShown = true;
    expect(
      (
        await api(url, admin, "PUT", "/api/v1/dns", {
          magicDns: true,
          domain: "engineering.example-international-corporation.internal",
          nameservers: ["2001:db8:85a3:1234:5678:8a2e:370:7334", "192.168.100.253"],
          searchDomains: ["research.and.development.example-international-corporation.internal"],
        })
      ).status,
    ).toBe(200);
    const key = await api(url, admin, "POST", "/api/v1/keys", {
      tags: TAGS,
      reusable: true,
      description: "gateways-in-every-datacenter-of-the-company-" + "x".repeat(100),
    });
    expect(key.status, JSON.stringify(key.body)).toBe(201);
    expect(
      (
        await api(url, admin, "POST", "/api/v1/tokens", {
          description: "terraform-provider-for-the-infrastructure-team-" + "y".repeat(100),
          scopes: ["machines:read", "machines:write", "keys:read", "keys:write", "policy:read"],
        })
      ).status,
    ).toBe(201);
    await register(key.body.key, HOSTNAME, ROUTES);
    await register(key.body.key, "db-" + "y".repeat(60), []);
    const machines = await api(url, admin, "GET", `/api/v1/machines?q=${HOSTNAME}`);
    machineId = machines.body.items[0].id;
    // One route approved, the others waiting: both kinds show on the machine page.
    expect(
      (await api(url, admin, "POST", `/api/v1/machines/${machineId}/routes`, { routes: [ROUTES[0]] })).status,
    ).toBe(200);

    const page = await asAdmin();
    const pages: Check[] = [
      { name: "machines", path: "/machines", ready: testId(`machine-row-${HOSTNAME}`) },
      {
        name: "machines-add-wireguard-peer",
        path: "/machines",
        ready: async (p) => {
          await p.getByTestId("add-wireguard-peer").click();
          await p.getByRole("heading", { name: "Add a WireGuard peer" }).waitFor();
        },
      },
      { name: "machine", path: `/machines/${machineId}`, ready: testId("machine-name"), long: true },
      { name: "connect", path: "/connect", ready: testId("connect-button") },
      { name: "users", path: "/users", ready: (p) => p.getByText(PENDING_EMAIL).first().waitFor() },
      { name: "keys", path: "/keys", ready: testId("generate-key") },
      {
        name: "keys-generate",
        path: "/keys",
        ready: async (p) => {
          await p.getByTestId("generate-key").click();
          await p.getByRole("heading", { name: "Generate a pre-auth key" }).waitFor();
        },
      },
      {
        name: "acls",
        path: "/acls",
        ready: (p) => p.locator("[data-testid=policy-editor][data-ready=true]").waitFor({ timeout: 20_000 }),
        long: true,
      },
      { name: "acls-history", path: "/acls/history?diff=1", ready: testId("policy-diff") },
      { name: "dns", path: "/dns", ready: heading },
      { name: "logs", path: "/logs", ready: testId("audit-row") },
      { name: "settings", path: "/settings", ready: heading },
      { name: "not-found", path: "/no-such-page", ready: testId("not-found") },
    ];
    for (const check of pages) await checkLayout(page, check);
    expect(await page.getByTestId("tailnet-name").innerText()).toBe(TAILNET);
    await page.context().close();
  }, 900_000);

  it("a member's forbidden page fits", async () => {
    const ctx = await browser.newContext();
    const cookie = await login(url, MEMBER_EMAIL, PASSWORD);
    const [name, ...rest] = cookie.split("=");
    await ctx.addCookies([{ name: name!, value: rest.join("="), url }]);
    await checkLayout(await ctx.newPage(), { name: "forbidden", path: "/users", ready: testId("forbidden") });
    await ctx.close();
  }, 240_000);

  it("the browser apps' pages fit: their sign-in and request forms, and the gate's denied and error views", async () => {
    const page = await asAdmin();
    // Allowed everything (the policy above): the apps get as far as their own forms.
    await checkLayout(page, { name: "app-ssh", path: `/ssh/${HOSTNAME}`, ready: testId("ssh-signin") });
    await checkLayout(page, { name: "app-http", path: `/http/${HOSTNAME}`, ready: heading });
    await checkLayout(page, {
      name: "app-unknown",
      path: `/vnc/${"z".repeat(63)}`,
      ready: testId("vnc-error"),
    });
    // Narrowed to the web: SSH and VNC are denied, and say why.
    const narrowed = await api(url, { cookie: adminCookie }, "PUT", "/api/v1/policy", {
      text: JSON.stringify({
        tagOwners: Object.fromEntries(TAGS.map((t) => [t, [ADMIN_EMAIL]])),
        acls: [{ action: "accept", src: [ADMIN_EMAIL], dst: [`${TAGS[0]}:443`] }],
      }),
    });
    expect(narrowed.status, JSON.stringify(narrowed.body)).toBe(200);
    await checkLayout(page, {
      name: "app-ssh-denied",
      path: `/ssh/${HOSTNAME}`,
      ready: testId("ssh-denied"),
    });
    await checkLayout(page, {
      name: "app-vnc-denied",
      path: `/vnc/${HOSTNAME}`,
      ready: testId("vnc-denied"),
    });
    await checkLayout(page, {
      name: "app-web-denied",
      path: `/web/${HOSTNAME}:8080/a/long/path/${"segment/".repeat(12)}`,
      ready: testId("web-denied"),
    });
    await page.context().close();
  }, 600_000);
});
