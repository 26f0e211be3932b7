import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { HealthResponse, decodeKey } from "@trellis/proto";
import { ARTIFACTS, hasChromium, launchChromium } from "../src/browser";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

// The quick start as a new user meets it: `npm start` on an empty data
// directory, the health endpoint, the relay on the same port, the home page in
// Chromium and the first-run admin setup; then a restart keeps everything.

const data = tempDataDir();
let trellis: RunningTrellis;

beforeAll(async () => {
  trellis = await startTrellis({ dataDir: data.dir });
});
afterAll(async () => {
  await trellis?.stop();
  data.remove();
});

async function getJson(path: string, init?: RequestInit) {
  const res = await fetch(trellis.url + path, init);
  return { status: res.status, body: (await res.json()) as unknown };
}

function relayServerKey(url: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, "ws") + "/derp");
    const timer = setTimeout(() => reject(new Error("no server key frame within 10 s")), 10_000);
    ws.once("message", (d: Buffer) => {
      clearTimeout(timer);
      ws.close();
      resolve(new Uint8Array(d));
    });
    ws.once("error", reject);
  });
}

describe("npm start on a fresh data directory", () => {
  it("prints the URL and a one-time setup link, no default password", () => {
    expect(trellis.stdout()).toContain(`Trellis is running at http://127.0.0.1:${trellis.port}`);
    expect(trellis.setupLink()).toMatch(/\/setup#token=[\w-]{32}$/);
    expect(trellis.stdout()).not.toMatch(/password/i);
  });

  it("serves GET /api/health with database and relay details", async () => {
    const { status, body } = await getJson("/api/health");
    expect(status).toBe(200);
    const health = HealthResponse.parse(body);
    expect(health).toMatchObject({
      status: "ok",
      database: { provider: "sqlite", status: "ok" },
      relay: { status: "listening", path: "/derp" },
    });
  });

  it("runs the relay on the same port: /derp greets with the key that health reports", async () => {
    const frame = await relayServerKey(trellis.url);
    const health = HealthResponse.parse((await getJson("/api/health")).body);
    expect(frame[0]).toBe(0x01);
    expect([...frame.subarray(13)]).toEqual([...decodeKey("relaykey", health.relay.server_key!)]);
  });

  it("answers malformed setup requests with 400 and a clear message", async () => {
    const notJson = await getJson("/api/setup", { method: "POST", body: "{nope" });
    expect(notJson).toEqual({
      status: 400,
      body: { error: "invalid_json", message: "request body is not valid JSON" },
    });
    const invalid = await getJson("/api/setup", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: "x".repeat(20), email: "nope", name: "A", password: "short" }),
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toMatchObject({ error: "invalid_request" });
    expect(await getJson("/api/setup")).toEqual({ status: 200, body: { complete: false } });
  });

  it.skipIf(!hasChromium)("renders the home page and creates the first admin in Chromium", async () => {
    const { browser, close } = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(trellis.url + "/");
      await expect(page.getByRole("heading", { name: "Your tailnet" }).isVisible()).resolves.toBe(true);
      await expect(page.getByTestId("status-database").innerText()).resolves.toContain("SQLite");
      await expect(page.getByTestId("status-relay").innerText()).resolves.toContain("Listening");
      await expect(page.getByTestId("setup-callout").isVisible()).resolves.toBe(true);
      await page.screenshot({ path: join(ARTIFACTS, "home-first-run.png"), fullPage: true });

      await page.goto(trellis.setupLink()!.replace(/^http:\/\/[^/]+/, trellis.url));
      await expect(page.getByLabel("Setup token").inputValue()).resolves.toMatch(/^[\w-]{32}$/);
      await page.getByLabel("Name").fill("Ada Admin");
      await page.getByLabel("Email").fill("ada@example.com");
      await page.getByLabel("Password").fill("short");
      await page.getByRole("button", { name: "Create admin account" }).click();
      await page.getByText("password must be at least 12 characters").waitFor({ timeout: 10_000 });
      await page.screenshot({ path: join(ARTIFACTS, "setup-error.png"), fullPage: true });

      await page.getByLabel("Password").fill("a long enough password");
      await page.getByRole("button", { name: "Create admin account" }).click();
      await page.getByTestId("setup-success").waitFor({ timeout: 15_000 });
      await expect(page.getByTestId("setup-success").innerText()).resolves.toContain("ada@example.com");
      await page.screenshot({ path: join(ARTIFACTS, "setup-done.png"), fullPage: true });

      await page.goto(trellis.url + "/");
      await expect(page.getByTestId("setup-callout").count()).resolves.toBe(0);
    } finally {
      await close();
    }
  });

  it("refuses a second setup", async () => {
    if (!hasChromium) {
      // Without a browser, complete setup over the API so this journey still runs.
      const token = /token=([\w-]+)/.exec(trellis.setupLink()!)![1];
      const created = await getJson("/api/setup", {
        method: "POST",
        body: JSON.stringify({
          token,
          email: "ada@example.com",
          name: "Ada",
          password: "a long enough password",
        }),
      });
      expect(created.status).toBe(201);
    }
    const again = await getJson("/api/setup", {
      method: "POST",
      body: JSON.stringify({
        token: "y".repeat(32),
        email: "eve@example.com",
        name: "Eve",
        password: "another long password",
      }),
    });
    expect(again).toMatchObject({ status: 409, body: { error: "setup_complete" } });
  });

  it("keeps its database and relay key across a restart and prints no setup link", async () => {
    const before = HealthResponse.parse((await getJson("/api/health")).body).relay.server_key;
    expect(await trellis.stop()).toBe(0);
    trellis = await startTrellis({ dataDir: data.dir });
    expect(trellis.setupLink()).toBeNull();
    const after = HealthResponse.parse((await getJson("/api/health")).body);
    expect(after.relay.server_key).toBe(before);
    expect(await getJson("/api/setup")).toEqual({ status: 200, body: { complete: true } });
  });
});

describe("npm start with bad configuration", () => {
  it("exits with an error naming the variable", async () => {
    const d = tempDataDir();
    try {
      await expect(
        startTrellis({ dataDir: d.dir, env: { DATABASE_URL: "mysql://db/x" }, timeoutMs: 60_000 }),
      ).rejects.toThrow(/scheme "mysql" is not supported/);
    } finally {
      d.remove();
    }
  });
});
