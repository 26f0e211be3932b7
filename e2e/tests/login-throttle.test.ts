import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { ARTIFACTS, hasChromium, launchChromium } from "../src/browser";
import { api, type Caller, firstAdmin } from "../src/console";
import { freePort, startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

// Login throttling (issue 18) as people meet it, in Debian's Chromium. The
// server sits behind a "proxy" it trusts (loopback), so each browser context
// comes from the client address its X-Forwarded-For names. A stranger
// guessing Owen's password from one address is warned before the delay,
// then told how long to wait; Owen, from his own address, signs in with his
// password all the same. The admin sees the throttle on the Users page, it
// survives a restart of the server, and Clear ends it.

const PASSWORD = "correct horse battery staple";
const OWEN_PASSWORD = "owen's own long password";
const STRANGER = "203.0.113.7";
const OWEN_HOME = "198.51.100.9";
const data = tempDataDir();
let trellis: RunningTrellis;
let url: string;
let port: number;
let admin: Caller;
let browser: Browser;
let closeBrowser: (() => Promise<void>) | undefined;

// Three free failures, then five minutes: long enough to outlast a restart.
const ENV = {
  TRELLIS_TRUSTED_PROXIES: "127.0.0.1",
  TRELLIS_LOGIN_FREE_ATTEMPTS: "3",
  TRELLIS_LOGIN_DELAY_SECONDS: "300",
};

beforeAll(async () => {
  port = await freePort();
  trellis = await startTrellis({ dataDir: data.dir, port, env: ENV });
  url = trellis.url;
  admin = await firstAdmin(url, trellis.setupLink());
  const inv = await api(url, admin, "POST", "/api/v1/invitations", { email: "owen@example.com" });
  expect(inv.status).toBe(201);
  const accepted = await api(url, null, "POST", "/api/invitations/accept", {
    token: /#token=([\w-]+)$/.exec(inv.body.url as string)![1],
    name: "Owen",
    password: OWEN_PASSWORD,
  });
  expect(accepted.status).toBe(201);
  if (hasChromium) ({ browser, close: closeBrowser } = await launchChromium());
}, 180_000);

afterAll(async () => {
  await closeBrowser?.();
  await trellis?.stop();
  data.remove();
});

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `login-throttle-${name}.png`), fullPage: true });
}

/** A login page in a browser that reaches the server from `address` (through the trusted proxy). */
async function loginPageFrom(address: string | null): Promise<Page> {
  const ctx = await browser.newContext({
    viewport: { width: 1280, height: 860 },
    ...(address ? { extraHTTPHeaders: { "x-forwarded-for": address } } : {}),
  });
  const page = await ctx.newPage();
  await page.goto(url + "/login");
  return page;
}

/** Submit the login form and return the one message it shows. */
async function tryLogin(page: Page, email: string, password: string): Promise<string> {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  const answered = page.waitForResponse((r) => r.url().includes("/api/auth/callback/credentials"));
  await page.getByRole("button", { name: "Log in" }).click();
  await answered;
  // The form is done with this answer once its button no longer says "Logging in…".
  await page.getByRole("button", { name: "Log in" }).waitFor({ timeout: 10_000 });
  await page.getByTestId("login-error").waitFor({ timeout: 10_000 });
  // One message, in one place.
  expect(await page.locator(".auth-card .error").count()).toBe(1);
  return page.getByTestId("login-error").innerText();
}

describe.skipIf(!hasChromium)("login throttle in Chromium", () => {
  let stranger: Page;
  let adminPage: Page;

  it("warns before the delay, then says how long to wait; Owen's own address is not held back", async () => {
    stranger = await loginPageFrom(STRANGER);
    expect(await tryLogin(stranger, "owen@example.com", "guess one")).toBe(
      "wrong email or password; 2 attempts left before sign-in slows down",
    );
    expect(await tryLogin(stranger, "owen@example.com", "guess two")).toBe(
      "wrong email or password; 1 attempt left before sign-in slows down",
    );
    await shot(stranger, "warning");
    expect(await tryLogin(stranger, "owen@example.com", "guess three")).toBe(
      "wrong email or password; wait 5 minutes before trying again",
    );
    // The form waits too: its button is off until the time has passed.
    expect(await stranger.getByRole("button", { name: "Log in" }).isDisabled()).toBe(true);
    await shot(stranger, "waiting");

    // Owen, from home, signs in with his password at once.
    const owen = await loginPageFrom(OWEN_HOME);
    await owen.getByLabel("Email").fill("owen@example.com");
    await owen.getByLabel("Password").fill(OWEN_PASSWORD);
    await owen.getByRole("button", { name: "Log in" }).click();
    await owen.waitForURL(/\/machines/, { timeout: 15_000 });
    await owen.context().close();
  });

  it("the admin sees the throttle on the Users page", async () => {
    adminPage = await loginPageFrom(null);
    await adminPage.getByLabel("Email").fill("ada@example.com");
    await adminPage.getByLabel("Password").fill(PASSWORD);
    await adminPage.getByRole("button", { name: "Log in" }).click();
    await adminPage.waitForURL(/\/machines/, { timeout: 15_000 });
    await adminPage.goto(url + "/users");
    const badge = adminPage.getByTestId("user-throttled-owen@example.com");
    await badge.waitFor();
    expect(await badge.innerText()).toMatch(/sign-in throttled until \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    expect(await badge.locator(".badge").getAttribute("title")).toContain(STRANGER);
    expect(await adminPage.getByTestId("user-throttled-ada@example.com").count()).toBe(0);
    await shot(adminPage, "users");
    const users = await api(url, admin, "GET", "/api/v1/users?q=owen");
    expect(users.body.items[0].loginThrottle).toMatchObject({ addresses: [STRANGER], accountWide: false });
  });

  it("the throttle survives a restart of the server", async () => {
    await trellis.stop();
    trellis = await startTrellis({ dataDir: data.dir, port, env: ENV });
    // Even the right password waits, from the stranger's address.
    await stranger.goto(url + "/login");
    expect(await tryLogin(stranger, "owen@example.com", OWEN_PASSWORD)).toMatch(
      /^too many failed sign-ins; try again in [45] minutes$/,
    );
    await adminPage.goto(url + "/users");
    await adminPage.getByTestId("user-throttled-owen@example.com").waitFor();
  }, 180_000);

  it("Clear lets Owen in again from everywhere, audited; the endpoint refuses another site", async () => {
    const owen = (await api(url, admin, "GET", "/api/v1/users?q=owen")).body.items[0];
    const cross = await api(url, admin, "DELETE", `/api/v1/users/${owen.id}/login-throttle`, undefined, {
      origin: "http://evil.example",
    });
    expect(cross.status).toBe(403);

    await adminPage.getByTestId("clear-throttle-owen@example.com").click();
    await adminPage.getByTestId("user-throttled-owen@example.com").waitFor({ state: "detached" });
    await shot(adminPage, "cleared");
    // The stranger's address starts over: three free attempts again.
    await stranger.goto(url + "/login");
    expect(await tryLogin(stranger, "owen@example.com", "guess four")).toBe(
      "wrong email or password; 2 attempts left before sign-in slows down",
    );

    await adminPage.goto(url + "/logs");
    await adminPage.getByTestId("audit-row").first().waitFor();
    const log = await adminPage.locator("main").innerText();
    expect(log).toContain("user.login_throttled");
    expect(log).toContain("user.login_unthrottled");
    // One entry for the throttling, not one per guess.
    const audit = await api(url, admin, "GET", "/api/v1/audit?action=user.login_throttled");
    expect(audit.body.items).toHaveLength(1);
    expect(audit.body.items[0]).toMatchObject({ actor: "system", targetName: "owen@example.com" });
    await shot(adminPage, "logs");
  });
});
