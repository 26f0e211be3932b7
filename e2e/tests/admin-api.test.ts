import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClient, keyHolder } from "@trellis/client";
import type { MachineInfo, Page } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { api, login, type Caller, firstAdmin } from "../src/console";
import { MORE_READS, PUBLIC, QUERIES, READS, WRITES, asRoute, routeHandlers } from "../src/routes";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

// The admin HTTP API against the real server: every endpoint needs a login
// or an API token, roles are enforced on the server (a member calling an
// admin endpoint directly gets 403), bodies are validated, lists paginate,
// and changes land in the audit log.

const data = tempDataDir();
let trellis: RunningTrellis;
let url: string;
const PASSWORD = "correct horse battery staple";
let admin: Caller;
let member: Caller;
let auditor: Caller;

async function invite(email: string, role: string): Promise<Caller> {
  const res = await api(url, admin, "POST", "/api/v1/invitations", { email, role });
  expect(res.status).toBe(201);
  const token = /#token=([\w-]+)$/.exec(res.body.url as string)![1];
  const accepted = await api(url, null, "POST", "/api/invitations/accept", {
    token,
    name: email.split("@")[0],
    password: PASSWORD,
  });
  expect(accepted.status).toBe(201);
  return { cookie: await login(url, email, PASSWORD) };
}

async function registerNode(preAuthKey: string, hostname: string, routableIPs: string[] = []) {
  const node = new ControlClient({ baseUrl: url, key: keyHolder(generateKeyPair().privateKey) });
  const res = await node.register({ preAuthKey, hostname, os: "linux", routableIPs });
  expect(res.created).toBe(true);
  return res.node;
}

beforeAll(async () => {
  trellis = await startTrellis({ dataDir: data.dir });
  url = trellis.url;
  admin = await firstAdmin(url, trellis.setupLink());
  member = await invite("max@example.com", "member");
  auditor = await invite("aud@example.com", "auditor");
}, 180_000);

afterAll(async () => {
  await trellis?.stop();
  data.remove();
});

describe("admin API", () => {
  it("has a row in this file's tables for every route handler of the web app", () => {
    const covered = new Set([
      ...READS.map((p) => asRoute("GET", p)),
      ...MORE_READS.map((p) => asRoute("GET", p)),
      ...WRITES.map(([m, p]) => asRoute(m, p)),
      ...QUERIES.map(([m, p]) => asRoute(m, p)),
      ...PUBLIC,
    ]);
    const missing = routeHandlers().filter((r) => !covered.has(r));
    expect(missing, "route handlers no test here calls without and with the wrong role").toEqual([]);
  });

  it("sends security headers with every console page and API answer: never framed, never sniffed", async () => {
    for (const path of ["/login", "/setup", "/machines", "/api/v1/machines", "/favicon.ico"]) {
      const res = await fetch(url + path, { redirect: "manual" });
      expect(res.headers.get("x-frame-options"), path).toBe("DENY");
      expect(res.headers.get("content-security-policy"), path).toContain("frame-ancestors 'none'");
      expect(res.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(res.headers.get("referrer-policy"), path).toBe("same-origin");
    }
  });

  it("refuses every endpoint without a login or token, naming the Bearer scheme", async () => {
    for (const path of READS) {
      const res = await api(url, null, "GET", path);
      expect(res.status, path).toBe(401);
      expect(res.headers.get("www-authenticate"), path).toMatch(/^Bearer/);
      expect(res.body.error, path).toBe("unauthenticated");
    }
    const bad = await api(url, { token: "trellis-api-000000000000-" + "A".repeat(43) }, "GET", "/api/v1/me");
    expect(bad.status).toBe(401);
    const forged = await api(url, { cookie: "next-auth.session-token=forged" }, "GET", "/api/v1/me");
    expect(forged.status).toBe(401);
  });

  it("refuses every change without a login or token, and every admin change from an auditor", async () => {
    for (const [method, path, body] of WRITES) {
      const res = await api(url, null, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(401);
    }
    for (const path of MORE_READS) {
      expect((await api(url, null, "GET", path)).status, path).toBe(401);
    }
    for (const [method, path, body] of QUERIES) {
      expect((await api(url, null, method, path, body)).status, path).toBe(401);
    }
    // Auditors read everything and change nothing (their own API tokens aside).
    for (const [method, path, body] of WRITES.filter(([, p]) => !p.startsWith("/api/v1/tokens"))) {
      const res = await api(url, auditor, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
    }
  });

  it("tells each caller who they are", async () => {
    expect((await api(url, admin, "GET", "/api/v1/me")).body).toMatchObject({
      email: "ada@example.com",
      role: "admin",
    });
    expect((await api(url, member, "GET", "/api/v1/me")).body).toMatchObject({
      role: "member",
      scopes: ["machines:read", "machines:write"],
    });
  });

  it("enforces roles on the server: members and auditors get 403 from admin endpoints", async () => {
    const forbidden: [Caller, string, string, unknown?][] = [
      [member, "GET", "/api/v1/users"],
      [member, "GET", "/api/v1/audit"],
      [member, "PUT", "/api/v1/policy", { text: "{}" }],
      [member, "POST", "/api/v1/keys", { tags: ["tag:x"] }],
      [member, "PUT", "/api/v1/settings", {}],
      [auditor, "PUT", "/api/v1/policy", { text: "{}" }],
      [auditor, "POST", "/api/v1/keys", {}],
      [auditor, "PATCH", "/api/v1/users/whoever", { role: "admin" }],
      [auditor, "PUT", "/api/v1/dns", {}],
    ];
    for (const [who, method, path, body] of forbidden) {
      const res = await api(url, who, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.body.error, `${method} ${path}`).toBe("forbidden");
    }
    for (const path of ["/api/v1/users", "/api/v1/policy", "/api/v1/audit", "/api/v1/settings"]) {
      expect((await api(url, auditor, "GET", path)).status, path).toBe(200);
    }
  });

  it("refuses cookie-authenticated changes from another origin (CSRF)", async () => {
    const evil = await api(
      url,
      admin,
      "POST",
      "/api/v1/keys",
      { tags: [] },
      { origin: "http://evil.example" },
    );
    expect(evil.status).toBe(403);
    expect(evil.body.error).toBe("csrf");
    const noOrigin = await fetch(url + "/api/v1/keys", {
      method: "POST",
      headers: { cookie: admin.cookie!, "content-type": "application/json" },
      body: "{}",
    });
    expect(noOrigin.status).toBe(403);
  });

  it("validates bodies with clear messages and changes nothing on error", async () => {
    const before = (await api(url, admin, "GET", "/api/v1/keys")).body.items.length;
    const bogus = await api(url, admin, "POST", "/api/v1/keys", { reusable: "yes", bogus: 1 });
    expect(bogus.status).toBe(400);
    expect(bogus.body.error).toBe("invalid_request");
    expect(bogus.body.issues.length).toBeGreaterThan(0);
    const notJson = await api(url, admin, "POST", "/api/v1/keys", "{nope");
    expect(notJson.status).toBe(400);
    expect(notJson.body.error).toBe("invalid_json");
    expect((await api(url, admin, "GET", "/api/v1/keys")).body.items.length).toBe(before);
    const badRole = await api(url, admin, "POST", "/api/v1/invitations", {
      email: "x@example.com",
      role: "root",
    });
    expect(badRole.status).toBe(400);
  });

  it("creates a key, registers machines with it, lists them page by page, and approves a route", async () => {
    const created = await api(url, admin, "POST", "/api/v1/keys", {
      reusable: true,
      tags: [],
      expiresInSeconds: 3600,
    });
    expect(created.status).toBe(201);
    const key = created.body.key as string;
    const names: string[] = [];
    for (let i = 0; i < 5; i++) names.push((await registerNode(key, `web-${i}`)).name);
    const router = await registerNode(key, "router", ["10.9.0.0/24"]);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const qs: string = `?limit=2&q=web${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page: { status: number; body: Page<MachineInfo> } = await api(
        url,
        admin,
        "GET",
        `/api/v1/machines${qs}`,
      );
      expect(page.status).toBe(200);
      expect(page.body.total).toBe(5);
      seen.push(...page.body.items.map((m) => m.name));
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual(names.sort());
    expect((await api(url, admin, "GET", "/api/v1/machines?limit=0")).status).toBe(400);

    // The admin owns these machines; the member sees none of them and cannot reach one by id.
    expect((await api(url, member, "GET", "/api/v1/machines")).body.total).toBe(0);
    expect((await api(url, member, "GET", `/api/v1/machines/${router.id}`)).status).toBe(404);
    expect(
      (await api(url, member, "POST", `/api/v1/machines/${router.id}/routes`, { routes: [] })).status,
    ).toBeGreaterThanOrEqual(403);

    const approved = await api(url, admin, "POST", `/api/v1/machines/${router.id}/routes`, {
      routes: ["10.9.0.0/24"],
    });
    expect(approved.status).toBe(200);
    expect(approved.body.approvedRoutes).toEqual(["10.9.0.0/24"]);
    const rename = await api(url, admin, "PATCH", `/api/v1/machines/${router.id}`, { name: "Bad Name" });
    expect(rename.status).toBe(400);
    const renamed = await api(url, admin, "PATCH", `/api/v1/machines/${router.id}`, { name: "edge-router" });
    expect(renamed.status).toBe(200);
    expect(renamed.body.name).toBe("edge-router");
    const clash = await api(url, admin, "PATCH", `/api/v1/machines/${router.id}`, { name: names[0] });
    expect(clash.status).toBe(409);
  });

  it("API tokens act within their scopes and stop working when revoked", async () => {
    const created = await api(url, admin, "POST", "/api/v1/tokens", {
      description: "ci",
      scopes: ["machines:read"],
    });
    expect(created.status).toBe(201);
    const token = { token: created.body.token as string };
    expect((await api(url, token, "GET", "/api/v1/machines")).status).toBe(200);
    const narrow = await api(url, token, "GET", "/api/v1/users");
    expect(narrow.status).toBe(403);
    expect(narrow.body.message).toMatch(/token lacks the users:read scope/);
    // Tokens cannot mint tokens; members cannot grant beyond their role.
    expect((await api(url, token, "POST", "/api/v1/tokens", { scopes: ["machines:read"] })).status).toBe(403);
    expect((await api(url, member, "POST", "/api/v1/tokens", { scopes: ["policy:write"] })).status).toBe(403);
    // A token needs no Origin: it is not a cookie.
    const listed = await api(url, admin, "GET", "/api/v1/tokens");
    expect(listed.body.items.map((t: { id: string }) => t.id)).toContain(created.body.info.id);
    expect((await api(url, admin, "DELETE", `/api/v1/tokens/${created.body.info.id}`)).status).toBe(200);
    expect((await api(url, token, "GET", "/api/v1/machines")).status).toBe(401);
  });

  it("policy: invalid text refused with line and column, failing tests refused, valid saved and restorable", async () => {
    const current = await api(url, admin, "GET", "/api/v1/policy");
    const broken = await api(url, admin, "PUT", "/api/v1/policy", {
      text: '{\n  "acls": [\n    { "action": "accept", }\n  ]\n',
    });
    expect(broken.status).toBe(400);
    expect(JSON.stringify(broken.body)).toMatch(/line|:\d+:\d+/);
    const failing = await api(url, admin, "PUT", "/api/v1/policy", {
      text: JSON.stringify({
        acls: [{ action: "accept", src: ["ada@example.com"], dst: ["*:22"] }],
        tests: [{ src: "ada@example.com", accept: ["edge-router:80"] }],
      }),
    });
    expect(failing.status).toBe(400);
    const text = JSON.stringify({ acls: [{ action: "accept", src: ["*"], dst: ["*:22,443"] }] }, null, 2);
    const saved = await api(url, admin, "PUT", "/api/v1/policy", { text, baseVersion: current.body.version });
    expect(saved.status, JSON.stringify(saved.body)).toBe(200);
    const stale = await api(url, admin, "PUT", "/api/v1/policy", { text, baseVersion: current.body.version });
    expect(stale.status).toBe(409);
    const versions = await api(url, auditor, "GET", "/api/v1/policy/versions");
    expect(versions.body.items[0]).toMatchObject({ id: saved.body.version, current: true });
    const reach = await api(url, auditor, "POST", "/api/v1/policy/reachability", {
      src: "web-0",
      dst: "edge-router",
      port: 443,
    });
    expect(reach.status).toBe(200);
    expect(reach.body.allowed).toBe(true);
    const denied = await api(url, auditor, "POST", "/api/v1/policy/reachability", {
      src: "web-0",
      dst: "edge-router",
      port: 80,
    });
    expect(denied.body.allowed).toBe(false);
    expect((await api(url, admin, "GET", "/api/v1/policy/versions/abc")).status).toBe(400);
    expect((await api(url, admin, "GET", "/api/v1/policy/versions/999999")).status).toBe(404);
  });

  it("DNS and settings round-trip and refuse bad values", async () => {
    const dns = await api(url, admin, "GET", "/api/v1/dns");
    expect(dns.status).toBe(200);
    const put = await api(url, admin, "PUT", "/api/v1/dns", { ...dns.body, nameservers: ["9.9.9.9"] });
    expect(put.status).toBe(200);
    expect((await api(url, auditor, "GET", "/api/v1/dns")).body.nameservers).toEqual(["9.9.9.9"]);
    expect(
      (await api(url, admin, "PUT", "/api/v1/dns", { ...dns.body, domain: "Not A Domain" })).status,
    ).toBe(400);
    const settings = await api(url, admin, "GET", "/api/v1/settings");
    const renamed = await api(url, admin, "PUT", "/api/v1/settings", { ...settings.body, name: "Acme" });
    expect(renamed.status).toBe(200);
    expect(
      (await api(url, admin, "PUT", "/api/v1/settings", { ...settings.body, keyExpiryDays: 0 })).status,
    ).toBe(400);
  });

  it("users: roles change at once, the last admin is protected, removal takes their machines", async () => {
    const users = await api(url, admin, "GET", "/api/v1/users?limit=2");
    expect(users.body.total).toBe(3);
    expect(users.body.items).toHaveLength(2);
    expect(users.body.nextCursor).not.toBeNull();
    const all = (await api(url, admin, "GET", "/api/v1/users")).body.items as { id: string; email: string }[];
    const ada = all.find((u) => u.email === "ada@example.com")!;
    const max = all.find((u) => u.email === "max@example.com")!;
    expect((await api(url, admin, "PATCH", `/api/v1/users/${ada.id}`, { role: "member" })).status).toBe(409);
    expect((await api(url, admin, "PATCH", `/api/v1/users/${max.id}`, { role: "auditor" })).status).toBe(200);
    expect((await api(url, member, "GET", "/api/v1/audit")).status).toBe(200); // same cookie, new role
    expect((await api(url, admin, "PATCH", `/api/v1/users/${max.id}`, { role: "member" })).status).toBe(200);
    expect((await api(url, admin, "DELETE", `/api/v1/users/${ada.id}`)).status).toBe(409);
  });

  it("records every change in the audit log, newest first, with who did it", async () => {
    const res = await api(url, auditor, "GET", "/api/v1/audit?limit=200");
    expect(res.status).toBe(200);
    const actions = (res.body.items as { action: string; actorName: string }[]).map((e) => e.action);
    for (const a of [
      "setup.complete",
      "invitation.create",
      "preauthkey.create",
      "node.register",
      "policy.update",
      "apitoken.create",
      "apitoken.revoke",
    ]) {
      expect(actions, a).toContain(a);
    }
    expect(actions.some((a) => a.startsWith("node."))).toBe(true);
    expect(actions.some((a) => a.startsWith("user."))).toBe(true);
    const filtered = await api(url, auditor, "GET", "/api/v1/audit?action=policy.update");
    expect(filtered.body.items.every((e: { action: string }) => e.action === "policy.update")).toBe(true);
    expect(filtered.body.items[0].actorName).toBe("ada@example.com");
  });
});
