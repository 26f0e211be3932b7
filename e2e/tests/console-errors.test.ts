import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Locator, Page } from "playwright-core";
import { ControlClient, keyHolder } from "@trellis/client";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { ARTIFACTS, hasChromium, launchChromium } from "../src/browser";
import { api, login } from "../src/console";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

// A refused form says so once, in plain words, at the field it concerns: in
// Chromium, for first-run setup, accepting an invitation, inviting, the
// tailnet's settings, API tokens, DNS, renaming a machine, pre-auth keys and
// the policy (its editor and the reachability check). Each message appears
// once on the page (not again in a banner, nor in a second phrasing), and no
// schema library's own wording ("Too small: expected string to have >=1
// characters") reaches anyone. Screenshots in e2e/artifacts (console-errors-*).

const PASSWORD = "correct horse battery staple";
const ADMIN = "ada@example.com";
const data = tempDataDir();
let trellis: RunningTrellis;
let url: string;
let browser: Browser;
let closeBrowser: (() => Promise<void>) | undefined;
let admin: Page;
let cookie: string;

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

/** The schema library's wording, which must never reach people. */
const RAW = /Too (small|big)|expected (string|number|array|object) to|Invalid (input|string|option)/;

/**
 * Each of `messages` shows exactly once on the page, inside `field` (the
 * label or group of the control it concerns) when one is given; nothing of
 * the schema library's wording shows at all.
 */
async function expectOnce(page: Page, shot: string, ...checks: { message: string; field?: Locator }[]) {
  const main = page.locator("main");
  await main.getByText(checks[0]!.message, { exact: false }).first().waitFor({ timeout: 15_000 });
  await page.screenshot({ path: join(ARTIFACTS, `console-errors-${shot}.png`), fullPage: true });
  const text = await main.innerText();
  expect(text, shot).not.toMatch(RAW);
  for (const { message, field } of checks) {
    expect(text.split(message).length - 1, `${shot}: "${message}" shown once in:\n${text}`).toBe(1);
    if (field) expect(await field.innerText(), `${shot}: "${message}" at its field`).toContain(message);
  }
}

/** The errors shown at fields (.field-error) and in banners (.alert-error), as the page shows them. */
async function shownErrors(page: Page): Promise<{ fields: string[]; banners: string[] }> {
  return {
    fields: await page.locator("main .field-error").allInnerTexts(),
    banners: await page.locator("main .alert-error, main p.error").allInnerTexts(),
  };
}

const labelled = (page: Page, name: string) => page.locator("main label", { hasText: name }).first();

describe.skipIf(!hasChromium)("console errors in Chromium: once, in plain words, at their field", () => {
  it("first-run setup", async () => {
    const page = await browser.newPage();
    await page.goto(trellis.setupLink()!);
    await page.getByLabel("Name").fill("");
    await page.getByLabel("Email").fill("not-an-email");
    await page.getByLabel("Password").fill("short");
    await page.getByRole("button", { name: /create admin account/i }).click();
    await expectOnce(
      page,
      "setup",
      { message: "must not be empty", field: labelled(page, "Name") },
      { message: "must be an email address", field: labelled(page, "Email") },
      { message: "at least 12 characters", field: labelled(page, "Password") },
    );
    // Every issue is at its field: no banner repeats them.
    expect((await shownErrors(page)).banners).toEqual([]);

    await page.getByLabel("Name").fill("Ada Admin");
    await page.getByLabel("Email").fill(ADMIN);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: /create admin account/i }).click();
    await page.waitForURL(/\/machines/, { timeout: 15_000 });
    admin = page;
    cookie = await login(url, ADMIN, PASSWORD);
  });

  it("inviting someone, and accepting an invitation", async () => {
    await admin.goto(url + "/users");
    const email = admin.getByLabel("Email");
    await email.fill("not-an-email");
    await admin.getByRole("button", { name: "Invite" }).click();
    await expectOnce(admin, "invite-bad-email", {
      message: "must be an email address",
      field: labelled(admin, "Email"),
    });
    expect((await shownErrors(admin)).banners).toEqual([]);

    // An error that belongs to no field shows once, in the banner.
    await email.fill(ADMIN);
    await admin.getByRole("button", { name: "Invite" }).click();
    await admin.locator("main .alert-error").waitFor({ timeout: 15_000 });
    const shown = await shownErrors(admin);
    expect(shown.fields).toEqual([]);
    expect(shown.banners).toHaveLength(1);
    expect(shown.banners[0]).not.toMatch(RAW);
    await admin.screenshot({ path: join(ARTIFACTS, "console-errors-invite-existing.png"), fullPage: true });

    const invited = await api(url, { cookie }, "POST", "/api/v1/invitations", { email: "bo@example.com" });
    expect(invited.status).toBe(201);
    const page = await browser.newPage();
    await page.goto(invited.body.url);
    await page.getByText("bo@example.com").waitFor({ timeout: 15_000 });
    await page.getByLabel("Name").fill("   ");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    await expectOnce(page, "invite-accept", { message: "must not be empty", field: labelled(page, "Name") });
    expect((await shownErrors(page)).banners).toEqual([]);
    await page.close();
  });

  it("the tailnet's settings, API tokens and DNS", async () => {
    await admin.goto(url + "/settings");
    await admin.getByLabel("Tailnet name").fill("   ");
    await admin.getByRole("button", { name: /save settings/i }).click();
    await expectOnce(admin, "settings", {
      message: "must not be empty",
      field: labelled(admin, "Tailnet name"),
    });
    expect((await shownErrors(admin)).banners).toEqual([]);

    await admin.reload(); // the settings form's own error would read the same
    await admin.getByTestId("create-token").click();
    await admin.getByRole("button", { name: "Create token" }).click();
    await expectOnce(admin, "token-no-scopes", {
      message: "must not be empty",
      field: admin.locator("main fieldset", { hasText: "Scopes" }),
    });
    expect((await shownErrors(admin)).banners).toEqual([]);

    await admin.goto(url + "/dns");
    await admin.getByTestId("nameserver-add").click();
    await admin.getByTestId("nameserver-0").fill("999.1.1.1");
    await admin.getByRole("button", { name: /save/i }).click();
    await expectOnce(admin, "dns-nameserver", {
      message: "must be an IPv4 or IPv6 address",
      field: admin.locator("main .list-rows > div").first(),
    });
    expect((await shownErrors(admin)).banners).toEqual([]);
  });

  it("renaming a machine, and a pre-auth key with a tag the policy no longer owns", async () => {
    const policy = {
      tagOwners: { "tag:server": [ADMIN], "tag:gone": [ADMIN] },
      acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }],
    };
    const save = (p: unknown) => api(url, { cookie }, "PUT", "/api/v1/policy", { text: JSON.stringify(p) });
    expect((await save(policy)).status).toBe(200);
    const key = await api(url, { cookie }, "POST", "/api/v1/keys", { tags: ["tag:server"], reusable: true });
    expect(key.status).toBe(201);
    for (const hostname of ["web-1", "web-2"]) {
      const client = new ControlClient({ baseUrl: url, key: keyHolder(generateKeyPair().privateKey) });
      await client.register({ preAuthKey: key.body.key, hostname, os: "linux" });
    }
    const machines = await api(url, { cookie }, "GET", "/api/v1/machines?q=web-1");
    await admin.goto(`${url}/machines/${machines.body.items[0].id}`);
    const rename = admin.getByLabel("Machine name");
    await rename.fill("Web_1");
    await admin.getByRole("button", { name: "Rename" }).click();
    const section = admin.locator("main section", { has: admin.getByLabel("Machine name") });
    await expectOnce(admin, "machine-rename", {
      message: "must be lowercase letters, digits and inner hyphens",
      field: section,
    });
    // A name another machine has: once, too.
    await rename.fill("web-2");
    await admin.getByRole("button", { name: "Rename" }).click();
    await admin.locator("main section .field-error, main section .alert-error").first().waitFor();
    await admin.waitForFunction(
      () => !document.querySelector("main")!.textContent!.includes("inner hyphens"),
    );
    const taken = await section.locator(".field-error, .alert-error").allInnerTexts();
    expect(taken, "one message for a name in use").toHaveLength(1);
    expect(taken[0]).not.toMatch(RAW);
    await admin.screenshot({
      path: join(ARTIFACTS, "console-errors-machine-name-taken.png"),
      fullPage: true,
    });

    // The key form offered tag:gone when it loaded; the policy dropped it since.
    await admin.goto(url + "/keys");
    await admin.getByTestId("generate-key").click();
    await admin.getByLabel("tag:gone").check();
    expect((await save({ ...policy, tagOwners: { "tag:server": [ADMIN] } })).status).toBe(200);
    await admin.getByRole("button", { name: "Generate key" }).click();
    const tags = admin.locator("main fieldset", { hasText: "Tags" });
    await tags.locator(".field-error").waitFor({ timeout: 15_000 });
    const message = await tags.locator(".field-error").innerText();
    // The tag by name, not the index of the entry in the request ("0: tag:gone …").
    expect(message).toMatch(/^tag:gone /);
    await expectOnce(admin, "key-tag-gone", { message, field: tags });
    expect((await shownErrors(admin)).banners).toEqual([]);
  });

  it("the policy editor and the reachability check", async () => {
    await admin.goto(url + "/acls");
    await admin.locator("[data-testid=policy-editor][data-ready=true]").waitFor({ timeout: 20_000 });
    await admin.evaluate((text) => {
      (
        document.querySelector("[data-testid=policy-editor]") as unknown as { __setText(t: string): void }
      ).__setText(text);
    }, '{\n  "acls": [\n    { "action": "accept", "src": ["*"], "dst": ["tag:nobody:22"] },\n  ],\n}\n');
    await admin.getByRole("button", { name: "Save policy" }).click();
    await admin.getByTestId("policy-errors").waitFor({ timeout: 15_000 });
    expect(await admin.getByTestId("policy-error").count()).toBe(1);
    const error = await admin.getByTestId("policy-error").innerText();
    expect(error).toMatch(/^line 3/);
    expect(error).toContain("tag:nobody");
    await expectOnce(admin, "policy", { message: '"tag:nobody" is not defined in "tagOwners"' });

    await admin.getByLabel(/^source/i).fill("web-1");
    await admin.getByLabel(/^destination/i).fill("web-2");
    await admin.getByLabel(/^port/i).fill("70000");
    await admin.getByRole("button", { name: /^check$/i }).click();
    await expectOnce(admin, "reachability-port", {
      message: "must be at most 65535",
      field: labelled(admin, "Port"),
    });
  });
});
