import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import { ControlClient, keyHolder } from "@trellis/client";
import { MapReader } from "@trellis/client/testing";
import type { FullMap } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { ARTIFACTS, hasChromium, launchChromium } from "../src/browser";
import { api } from "../src/console";
import { oidcLogin, startOidcProvider, type RunningOidc } from "../src/oidc";
import { freePort, startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

// The admin console as people use it, in Debian's Chromium: first-run setup,
// password login, a pre-auth key made in the console registers a machine
// (it appears without a reload), a route approved, the policy editor refusing
// a syntax error (at the right line) and a failing test, then saving a valid
// policy that the machine receives; the audit log shows each change; and
// OpenID Connect login against a real provider with roles from its groups,
// enforced by the server. Screenshots of every page land in e2e/artifacts.

const PASSWORD = "correct horse battery staple";
const data = tempDataDir();
let trellis: RunningTrellis;
let oidc: RunningOidc;
let url: string;
let closeBrowser: (() => Promise<void>) | undefined;
let newContext: () => Promise<BrowserContext>;

beforeAll(async () => {
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  oidc = await startOidcProvider({
    trellisUrl: url,
    accounts: {
      sam: { email: "sam@example.com", name: "Sam Auditor", groups: ["security"] },
      mia: { email: "mia@example.com", name: "Mia Member", groups: ["eng"] },
    },
  });
  trellis = await startTrellis({
    dataDir: data.dir,
    port,
    env: {
      TRELLIS_OIDC_ISSUER: oidc.issuer,
      TRELLIS_OIDC_CLIENT_ID: oidc.clientId,
      TRELLIS_OIDC_CLIENT_SECRET: oidc.clientSecret,
      TRELLIS_OIDC_NAME: "Test IdP",
      TRELLIS_OIDC_AUDITOR_GROUPS: "security",
      TRELLIS_OIDC_ADMIN_GROUPS: "platform-admins",
    },
  });
  if (hasChromium) {
    const { browser, close } = await launchChromium();
    closeBrowser = close;
    newContext = () => browser.newContext({ viewport: { width: 1280, height: 860 } });
  }
}, 180_000);

afterAll(async () => {
  await closeBrowser?.();
  await trellis?.stop();
  await oidc?.stop();
  data.remove();
});

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `console-${name}.png`), fullPage: true });
}

/** A machine registered over the control API with its own key, streaming its map. */
class Machine {
  private client!: ControlClient;
  private reader!: MapReader;

  get map(): FullMap {
    return this.reader.map;
  }

  async register(preAuthKey: string, hostname: string, routableIPs: string[]) {
    this.client = new ControlClient({ baseUrl: url, key: keyHolder(generateKeyPair().privateKey) });
    expect((await this.client.register({ preAuthKey, hostname, os: "linux", routableIPs })).created).toBe(
      true,
    );
    this.reader = new MapReader(await this.client.openMap());
    if ((await this.reader.next()).type !== "full") throw new Error("expected a full map first");
  }

  /** Report where the machine can be reached and its home relay region. */
  async endpoints(endpoints: string[], homeRegion: number) {
    await this.client.updateEndpoints({ endpoints, homeRegion });
  }

  /** Read map messages until `done(map)` holds (each bounded). */
  async until(done: (m: FullMap) => boolean, what: string): Promise<void> {
    while (!done(this.map)) {
      await this.reader.next(15_000).catch((err: unknown) => {
        throw new Error(`machine never saw: ${what} (${String(err)})`);
      });
    }
  }

  close() {
    this.reader?.close();
  }
}

describe.skipIf(!hasChromium)("admin console in Chromium", () => {
  let admin: Page;
  const machine = new Machine();
  afterAll(() => machine.close());
  const routerIp = () => machine.map.node.addresses[0]!.split("/")[0]!;

  it("first-run setup creates the admin, who then logs in", async () => {
    const ctx = await newContext();
    admin = await ctx.newPage();
    await admin.goto(trellis.setupLink()!);
    await admin.getByLabel("Name").fill("Ada Admin");
    await admin.getByLabel("Email").fill("ada@example.com");
    await admin.getByLabel("Password").fill(PASSWORD);
    await admin.getByRole("button", { name: /create admin account/i }).click();
    // Setup logs the new admin in: no second typing of what was just typed.
    await admin.waitForURL(/\/machines/, { timeout: 15_000 });
    expect(await admin.getByTestId("whoami-role").innerText()).toMatch(/admin/i);
    // Which tailnet this is, on every page.
    const settings = await api(url, { cookie: await cookieOf(admin) }, "GET", "/api/v1/settings");
    expect(await admin.getByTestId("tailnet-name").innerText()).toBe(settings.body.name);
    await admin.getByTestId("machines-empty").waitFor();
    // The tab has an icon (browsers ask for /favicon.ico whatever the page says).
    const icon = await fetch(url + "/favicon.ico");
    expect([icon.status, icon.headers.get("content-type")]).toEqual([200, "image/x-icon"]);
    // The narrow layout's Menu button has no business on a desktop.
    expect(await admin.getByRole("button", { name: "Menu" }).isVisible()).toBe(false);
    await shot(admin, "machines-empty");

    // A wrong password elsewhere is refused with a message; the right one gets in.
    const other = await (await newContext()).newPage();
    await other.goto(url + "/login");
    await other.getByLabel("Email").fill("ada@example.com");
    await other.getByLabel("Password").fill("wrong password, surely");
    await other.getByRole("button", { name: "Log in" }).click();
    await other.getByTestId("login-error").waitFor();
    expect(await other.getByTestId("login-error").innerText()).toMatch(/wrong email or password/);
    await shot(other, "login-error");
    await other.getByLabel("Password").fill(PASSWORD);
    await other.getByRole("button", { name: "Log in" }).click();
    await other.waitForURL(/\/machines/, { timeout: 15_000 });
    await other.context().close();
  });

  it("runs only its own scripts: every page works under the nonce policy, and injected markup runs no script", async () => {
    const page = await admin.context().newPage();
    const refused: string[] = [];
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) refused.push(`${page.url()}: ${m.text()}`);
    });
    const nonces = new Set<string>();
    // The editor (CodeMirror), the browser node (a SharedWorker compiling WebAssembly) and plain pages.
    for (const [path, ready] of [
      ["/machines", "machines-empty"],
      ["/acls", "policy-editor"],
      ["/connect", "connect-button"],
      ["/settings", "node-approval"],
    ] as const) {
      const res = await page.goto(url + path);
      const csp = res!.headers()["content-security-policy"] ?? "";
      expect(csp, path).toMatch(/script-src 'nonce-[\w+/=]+' 'strict-dynamic'/);
      expect(csp, path).not.toContain("unsafe-inline");
      nonces.add(/'nonce-([\w+/=]+)'/.exec(csp)![1]!);
      await page.getByTestId(ready).first().waitFor({ timeout: 15_000 });
    }
    expect(nonces.size, "a nonce per response").toBe(4);
    expect(refused, "scripts the policy refused").toEqual([]);
    // Hydrated: client-side navigation works (React's scripts ran).
    await page.getByRole("link", { name: "Machines" }).first().click();
    await page.waitForURL(/\/machines$/);
    // Markup that got into the page (the stored-XSS shape: an event handler in
    // an attribute) does not run. (A script element made by page.evaluate
    // would prove nothing: Chromium exempts what DevTools runs from the policy.)
    const injected = await page.evaluate(async () => {
      const seen: string[] = [];
      document.addEventListener("securitypolicyviolation", (e) => seen.push(e.violatedDirective));
      const d = document.createElement("div");
      d.innerHTML = '<img src="/no-such-image.png" onerror="window.__injected = true">';
      document.body.appendChild(d);
      for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      return { ran: (window as unknown as { __injected?: boolean }).__injected === true, seen };
    });
    expect(injected).toEqual({ ran: false, seen: ["script-src-attr"] });
    await page.close();
  });

  it("a key made in the console registers a machine, which appears without a reload", async () => {
    await admin.goto(url + "/keys");
    await admin.getByTestId("generate-key").click();
    await admin.getByRole("button", { name: "Generate key" }).click();
    await admin.getByTestId("new-key-value").waitFor({ timeout: 15_000 });
    const key = await admin.getByTestId("new-key-value").innerText();
    expect(key).toMatch(/^trellis-auth-[0-9a-f]{12}-/);
    expect(await admin.getByTestId("new-key-command").innerText()).toContain(`--login-server ${url}`);
    // The list under the form shows the new key at once.
    await admin.getByTestId(`key-row-${key.split("-").slice(0, 3).join("-")}`).waitFor({ timeout: 5_000 });
    await shot(admin, "keys-created");

    await admin.goto(url + "/machines");
    await admin.getByTestId("machines-empty").waitFor();
    await machine.register(key, "edge-router", ["10.20.0.0/24"]);
    // Live update: the row appears through /api/v1/events, no navigation.
    await admin.getByTestId("machine-row-edge-router").waitFor({ timeout: 15_000 });
    await admin.getByTestId("routes-need-approval").first().waitFor();
    // Its path follows the endpoints it reports, live as well.
    await machine.endpoints(["192.0.2.10:41641"], 1);
    const path = admin.getByTestId("machine-row-edge-router").getByTestId("machine-path");
    await path.getByText("direct (1)").waitFor({ timeout: 15_000 });
    expect(await path.innerText()).toContain("relay 1");
    await shot(admin, "machines");
  });

  it("approving a route reaches the machine's map", async () => {
    await admin.getByTestId("machine-row-edge-router").getByRole("link").first().click();
    await admin.getByTestId("machine-name").waitFor();
    await admin.getByTestId("route-10.20.0.0/24").check();
    await admin.getByRole("button", { name: "Save routes" }).click();
    await machine.until((m) => m.node.approvedRoutes.includes("10.20.0.0/24"), "approved route");
    const list = await api(url, { cookie: await cookieOf(admin) }, "GET", "/api/v1/machines?q=edge");
    expect(list.body.items[0].approvedRoutes).toEqual(["10.20.0.0/24"]);
    await shot(admin, "machine-detail");
    // Tags are picked from the policy's tagOwners, not typed (this policy defines none: it says so).
    expect(await admin.getByTestId("tags-none").innerText()).toMatch(/defines no tag you may set/);
    // Long keys stay inside the page, on a desktop and a phone.
    for (const width of [1440, 390]) {
      await admin.setViewportSize({ width, height: 900 });
      const overflow = await admin.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      await shot(admin, `machine-detail-${width}`);
      expect(overflow, `machine page at ${width} px`).toBeLessThanOrEqual(1);
    }
    await admin.setViewportSize({ width: 1280, height: 860 });
  });

  it("the policy editor shows a syntax error at its line, refuses a failing test, and saves a valid policy that nodes receive", async () => {
    await admin.goto(url + "/acls");
    const editor = admin.locator("[data-testid=policy-editor][data-ready=true]");
    await editor.waitFor({ timeout: 20_000 });
    const setText = (t: string) =>
      admin.evaluate((text) => {
        (
          document.querySelector("[data-testid=policy-editor]") as unknown as { __setText(t: string): void }
        ).__setText(text);
      }, t);

    // Line 4 has the mistake: a missing comma between two members.
    await setText(
      '{\n  "acls": [\n    { "action": "accept", "src": ["*"], "dst": ["*:22"] }\n    { "action": "accept" }\n  ]\n}\n',
    );
    await admin.getByRole("button", { name: "Save policy" }).click();
    await admin.getByTestId("policy-error").first().waitFor({ timeout: 15_000 });
    expect(await admin.getByTestId("policy-errors").innerText()).toMatch(/line 4/);
    await shot(admin, "policy-syntax-error");

    await setText(
      JSON.stringify(
        {
          acls: [{ action: "accept", src: ["ada@example.com"], dst: ["*:22"] }],
          tests: [{ src: "ada@example.com", accept: [`${routerIp()}:443`] }],
        },
        null,
        2,
      ),
    );
    await admin.getByRole("button", { name: "Save policy" }).click();
    await admin.getByTestId("policy-errors").waitFor({ timeout: 15_000 });
    expect(await admin.getByTestId("policy-errors").innerText()).toContain(`${routerIp()}:443`);
    await shot(admin, "policy-test-failed");
    expect((await api(url, { cookie: await cookieOf(admin) }, "GET", "/api/v1/policy")).body.version).toBe(0);

    const valid = JSON.stringify(
      {
        acls: [{ action: "accept", src: ["ada@example.com"], dst: ["*:22,443"] }],
        tests: [{ src: "ada@example.com", accept: [`${routerIp()}:443`], deny: [`${routerIp()}:80`] }],
      },
      null,
      2,
    );
    await setText(valid);
    await admin.getByRole("button", { name: "Save policy" }).click();
    await admin.getByTestId("policy-saved").waitFor({ timeout: 15_000 });
    expect(await admin.getByTestId("policy-saved").innerText()).toMatch(/version 1/i);
    await shot(admin, "policy-saved");
    // The machine's packet filter now admits 443 (and not 80).
    await machine.until(
      (m) => JSON.stringify(m.packetFilter ?? []).includes('"First":443'),
      "new packet filter",
    );
    const versions = await api(url, { cookie: await cookieOf(admin) }, "GET", "/api/v1/policy/versions");
    expect(versions.body.items[0]).toMatchObject({ id: 1, current: true, createdByName: "ada@example.com" });

    await admin.getByLabel(/^source/i).fill("edge-router");
    await admin.getByLabel(/^destination/i).fill("edge-router");
    await admin.getByLabel(/^port/i).fill("80");
    await admin.getByRole("button", { name: /check/i }).click();
    await admin.getByTestId("reach-result").waitFor();
    await shot(admin, "policy-reachability");
    await admin.goto(url + "/acls/history?diff=1");
    await admin.getByTestId("policy-diff").waitFor();
    await shot(admin, "policy-history");
    // The tailnet's starting policy is version 0, commented, comparable like any other.
    await admin.getByTestId("policy-version-0").getByText("built-in default").waitFor();
    await admin.goto(url + "/acls/history?diff=0");
    expect(await admin.getByTestId("policy-diff").innerText()).toContain("// Groups of users");
  });

  it("the audit log shows each change", async () => {
    await admin.goto(url + "/logs");
    await admin.getByTestId("audit-row").first().waitFor();
    const text = await admin.locator("main").innerText();
    for (const action of [
      "setup.complete",
      "preauthkey.create",
      "machine.register",
      "machine.routes",
      "policy.update",
    ]) {
      expect(text, action).toContain(action);
    }
    // People see machines, not the server's "node" (the stored vocabulary), and filter in their words.
    expect(text).not.toContain("node.");
    await admin.goto(url + "/logs?action=machine.routes");
    await admin.getByTestId("audit-row").first().waitFor();
    expect(await admin.getByTestId("audit-row").count()).toBe(1);
    // The target by name, its id on hover.
    const target = admin.getByTestId("audit-target").first();
    expect(await target.innerText()).toBe("edge-router");
    expect(await target.getAttribute("title")).toMatch(/^node:/);
    await shot(admin, "logs");
    // The filtered log as a file, for a spreadsheet or another tool.
    const href = await admin.getByTestId("audit-export-csv").getAttribute("href");
    const csv = await fetch(url + href, { headers: { cookie: await cookieOf(admin) } });
    expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
    const rows = (await csv.text()).trimEnd().split("\r\n");
    expect(rows[0]).toBe("at,actor,actor_name,action,target,target_name,detail");
    expect(rows).toHaveLength(2);
    expect(rows[1]).toContain(",node.routes,");
    expect(rows[1]).toContain(",edge-router,");
    for (const page of ["users", "dns", "settings"]) {
      await admin.goto(`${url}/${page}`);
      await admin.locator("main h1").first().waitFor();
      await shot(admin, page);
    }
    // A phone's width: the pages reflow instead of overflowing (wide tables scroll inside their frame).
    await admin.setViewportSize({ width: 390, height: 844 });
    await admin.emulateMedia({ colorScheme: "dark" });
    for (const page of ["machines", "acls", "logs"]) {
      await admin.goto(`${url}/${page}`);
      await admin.locator("main h1").first().waitFor();
      const overflow = await admin.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      expect(overflow, page).toBeLessThanOrEqual(1);
      expect(await admin.getByRole("button", { name: "Menu" }).isVisible(), page).toBe(true);
      await shot(admin, `narrow-dark-${page}`);
    }
    await admin.emulateMedia({ colorScheme: "light" });
    await admin.setViewportSize({ width: 1280, height: 860 });
  });

  it("OIDC login: roles from the provider's groups, enforced by the server", async () => {
    // sam is in "security" → auditor: reads the policy, cannot change it.
    const auditor = await oidcLogin(await (await newContext()).newPage(), url, oidc, "sam");
    expect(await auditor.getByTestId("whoami-role").innerText()).toMatch(/auditor/i);
    await auditor.goto(url + "/acls");
    await auditor.locator("[data-testid=policy-editor][data-ready=true]").waitFor({ timeout: 20_000 });
    expect(await auditor.getByRole("button", { name: "Save policy" }).count()).toBe(0);
    await shot(auditor, "auditor-acls");
    const auditorCookie = { cookie: await cookieOf(auditor) };
    expect((await api(url, auditorCookie, "GET", "/api/v1/audit")).status).toBe(200);
    expect((await api(url, auditorCookie, "PUT", "/api/v1/policy", { text: "{}" })).status).toBe(403);

    // mia has no role group → member: her own machines only; admin pages and API refuse her.
    const member = await oidcLogin(await (await newContext()).newPage(), url, oidc, "mia");
    expect(await member.getByTestId("whoami-role").innerText()).toMatch(/member/i);
    expect(await member.getByTestId("machine-row-edge-router").count()).toBe(0);
    await member.goto(url + "/users");
    await member.getByTestId("forbidden").waitFor();
    await shot(member, "member-forbidden");
    const memberCookie = { cookie: await cookieOf(member) };
    expect((await api(url, memberCookie, "GET", "/api/v1/users")).status).toBe(403);
    expect((await api(url, memberCookie, "POST", "/api/v1/keys", { tags: [] })).status).toBe(403);
    const users = await api(url, { cookie: await cookieOf(admin) }, "GET", "/api/v1/users");
    const mia = users.body.items.find((u: { email: string }) => u.email === "mia@example.com");
    expect(mia).toMatchObject({ role: "member", login: "oidc", groups: ["eng"] });
  });

  it("a member connects a browser tab: her session registers its key, and the policy decides what it sees", async () => {
    const member = await oidcLogin(await (await newContext()).newPage(), url, oidc, "mia");
    await member.getByRole("link", { name: "Connect", exact: true }).first().click();
    await member.waitForURL(/\/connect/);
    await member.getByTestId("connect-button").click();
    await member.locator("[data-testid=connect][data-phase=connected]").waitFor({ timeout: 20_000 });
    const ipv4 = (await member.getByTestId("connect-ipv4").innerText()).split("\n")[0]!.trim();
    expect(ipv4).toMatch(/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+$/);
    // The private key stays in the node's worker (e2e/tests/browser-node.test.ts proves it);
    // nothing of it is left where pages keep things.
    expect(await member.evaluate(() => localStorage.getItem("trellis.node.privkey"))).toBeNull();
    const mine = await api(url, { cookie: await cookieOf(member) }, "GET", "/api/v1/machines");
    expect(mine.body.items).toHaveLength(1);
    const tab = mine.body.items[0];
    expect(tab).toMatchObject({ os: "browser", ipv4, ephemeral: true, user: { email: "mia@example.com" } });
    // Policy v1 lets ada's machines reach every machine, this tab included: the router is its peer.
    expect(await member.getByTestId("connect-peer-count").innerText()).toBe("1 machine");
    const savePolicy = async (acls: unknown[]) => {
      const res = await api(url, { cookie: await cookieOf(admin) }, "PUT", "/api/v1/policy", {
        text: JSON.stringify({ acls }),
      });
      expect(res.status).toBe(200);
    };
    // Narrowed to the router: nothing may reach the tab, and mia may reach nothing. The open tab follows.
    await savePolicy([{ action: "accept", src: ["ada@example.com"], dst: [`${routerIp()}:22,443`] }]);
    await member.getByText("No machine is reachable", { exact: false }).waitFor({ timeout: 15_000 });
    expect(await member.getByTestId("connect-peer-count").innerText()).toBe("0 machines");
    await shot(member, "connect-no-peers");
    await savePolicy([
      { action: "accept", src: ["ada@example.com"], dst: [`${routerIp()}:22,443`] },
      { action: "accept", src: ["mia@example.com"], dst: [`${routerIp()}:443`] },
    ]);
    await member
      .getByTestId("connect-peers")
      .getByText("edge-router", { exact: true })
      .waitFor({ timeout: 15_000 });
    expect(await member.getByTestId("connect-peer-count").innerText()).toBe("1 machine");
    await shot(member, "connect");

    // A reload is the same machine: same key, same address.
    await member.reload();
    await member.locator("[data-testid=connect][data-phase=connected]").waitFor({ timeout: 20_000 });
    expect((await member.getByTestId("connect-ipv4").innerText()).split("\n")[0]!.trim()).toBe(ipv4);
    const again = await api(url, { cookie: await cookieOf(member) }, "GET", "/api/v1/machines");
    expect(again.body.items.map((m: { id: string }) => m.id)).toEqual([tab.id]);

    // A cookie alone cannot register a key from another site.
    const cross = await fetch(url + "/api/v1/register", {
      method: "POST",
      headers: {
        cookie: await cookieOf(member),
        origin: "http://evil.example",
        "content-type": "application/json",
      },
      body: JSON.stringify({ hostname: "evil" }),
    });
    expect(cross.status).toBe(403);

    // Leaving removes the machine and deletes the key from the browser.
    await member.getByRole("button", { name: "Leave the tailnet" }).click();
    await member.getByTestId("connect-ended").waitFor({ timeout: 15_000 });
    const after = await api(url, { cookie: await cookieOf(member) }, "GET", `/api/v1/machines/${tab.id}`);
    expect(after.status).toBe(404);
  });
  it("shows markup in names, policy comments and the audit log as text, never as HTML", async () => {
    const MARKUP = `<img src=x onerror="window.__xss=1"><b>Mallory</b>`;
    const caller = { cookie: await cookieOf(admin) };
    const inv = await api(url, caller, "POST", "/api/v1/invitations", {
      email: "mallory@example.com",
      role: "member",
    });
    expect(inv.status).toBe(201);
    const token = /#token=([\w-]+)$/.exec(inv.body.url as string)![1];
    const accepted = await api(url, null, "POST", "/api/invitations/accept", {
      token,
      name: MARKUP,
      password: PASSWORD,
    });
    expect(accepted.status).toBe(201);
    const policy = await api(url, caller, "GET", "/api/v1/policy");
    const text = `// </script><script>window.__xss=1</script> ${MARKUP}\n${policy.body.text as string}`;
    expect((await api(url, caller, "PUT", "/api/v1/policy", { text })).status).toBe(200);
    const page = await admin.context().newPage();
    for (const [path, ready] of [
      ["/users", "role-mallory@example.com"],
      ["/acls", "policy-editor"],
      ["/logs", "audit-row"],
    ] as const) {
      await page.goto(url + path);
      await page.getByTestId(ready).first().waitFor({ timeout: 15_000 });
      expect(
        await page.evaluate(() => (window as unknown as { __xss?: number }).__xss),
        path,
      ).toBeUndefined();
      expect(await page.locator("main b, main img[src=x]").count(), `${path}: markup became elements`).toBe(
        0,
      );
    }
    await page.goto(url + "/users");
    await expect.poll(() => page.locator("main").innerText()).toContain("<b>Mallory</b>");
    await page.close();
  });
});

async function cookieOf(page: Page): Promise<string> {
  const cookies = await page.context().cookies(url);
  const c = cookies.find((x) => x.name.endsWith("next-auth.session-token"));
  if (!c) throw new Error("no session cookie");
  return `${c.name}=${c.value}`;
}
