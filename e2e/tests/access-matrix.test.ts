// Every admin endpoint × every kind of caller, against the real server: an
// anonymous caller, each role's session, an API token holding each single
// scope, a member's token, an expired token, a revoked token, the session
// and token of a removed user, and a node signing with its own key. The
// expected answer of each pair comes from one table (ACCESS in
// e2e/src/routes.ts: the scope each endpoint needs, and whether it is
// admin-only or session-only) and the scopes each role grants; a route
// handler without a row fails admin-api.test.ts. Allowed means anything but
// 401/403 (the ids are made up, so a 404 is the answer past authorization);
// nothing ever answers 5xx.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClient, keyHolder } from "@trellis/client";
import { openDatabase } from "@trellis/db";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { api, firstAdmin, login, type Caller } from "../src/console";
import { ACCESS, adminCalls, asRoute, routeHandlers } from "../src/routes";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

const PASSWORD = "correct horse battery staple";
const SCOPES = [
  "machines:read",
  "machines:write",
  "users:read",
  "users:write",
  "keys:read",
  "keys:write",
  "policy:read",
  "policy:write",
  "dns:read",
  "dns:write",
  "settings:read",
  "settings:write",
  "logs:read",
];
/** What each role grants, as the product defines it (control/src/auth/actor.ts). */
const ROLE_SCOPES: Record<string, string[]> = {
  admin: SCOPES,
  auditor: SCOPES.filter((s) => s.endsWith(":read")),
  member: ["machines:read", "machines:write"],
};

interface Who {
  name: string;
  caller: Caller | null;
  /** null: refused outright (401) whatever the endpoint. */
  grants: { role: string; scopes: string[]; via: "session" | "token" } | null;
  /** Sends the request itself (a node signs its own). */
  send?: (method: string, path: string, body?: unknown) => Promise<number>;
}

const data = tempDataDir();
let trellis: RunningTrellis;
let url: string;
const callers: Who[] = [];
let demotion: { admin: Caller; auditor: { caller: Caller; id: string }; token: Caller };

async function invite(admin: Caller, email: string, role: string): Promise<{ caller: Caller; id: string }> {
  const res = await api(url, admin, "POST", "/api/v1/invitations", { email, role });
  expect(res.status).toBe(201);
  const token = /#token=([\w-]+)$/.exec(res.body.url as string)![1];
  const accepted = await api(url, null, "POST", "/api/invitations/accept", {
    token,
    name: email.split("@")[0],
    password: PASSWORD,
  });
  expect(accepted.status).toBe(201);
  const caller = { cookie: await login(url, email, PASSWORD) };
  return { caller, id: (await api(url, caller, "GET", "/api/v1/me")).body.id as string };
}

async function token(owner: Caller, scopes: string[]): Promise<{ caller: Caller; id: string }> {
  const res = await api(url, owner, "POST", "/api/v1/tokens", {
    description: `t-${scopes.join("-")}`,
    scopes,
    expiresInDays: 1,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { caller: { token: res.body.token as string }, id: res.body.info.id as string };
}

beforeAll(async () => {
  trellis = await startTrellis({ dataDir: data.dir });
  url = trellis.url;
  const admin = await firstAdmin(url, trellis.setupLink());
  const member = await invite(admin, "max@example.com", "member");
  const auditor = await invite(admin, "aud@example.com", "auditor");
  demotion = { admin, auditor, token: (await token(auditor.caller, ["users:read"])).caller };
  callers.push({ name: "anonymous", caller: null, grants: null });
  callers.push({
    name: "admin session",
    caller: admin,
    grants: { role: "admin", scopes: SCOPES, via: "session" },
  });
  callers.push({
    name: "member session",
    caller: member.caller,
    grants: { role: "member", scopes: ROLE_SCOPES.member!, via: "session" },
  });
  callers.push({
    name: "auditor session",
    caller: auditor.caller,
    grants: { role: "auditor", scopes: ROLE_SCOPES.auditor!, via: "session" },
  });
  for (const s of SCOPES) {
    callers.push({
      name: `admin's token [${s}]`,
      caller: (await token(admin, [s])).caller,
      grants: { role: "admin", scopes: [s], via: "token" },
    });
  }
  callers.push({
    name: "member's token [machines:read]",
    caller: (await token(member.caller, ["machines:read"])).caller,
    grants: { role: "member", scopes: ["machines:read"], via: "token" },
  });
  // An expired token: made valid, then its expiry moved into the past in the database.
  const expired = await token(admin, SCOPES);
  const db = await openDatabase(`file:${data.dir}/trellis.db`);
  try {
    await db.prisma.apiToken.update({
      where: { id: expired.id },
      data: { expiresAt: new Date(Date.now() - 60_000) },
    });
  } finally {
    await db.close();
  }
  callers.push({ name: "expired token", caller: expired.caller, grants: null });
  const revoked = await token(admin, SCOPES);
  expect((await api(url, admin, "DELETE", `/api/v1/tokens/${revoked.id}`)).status).toBeLessThan(300);
  callers.push({ name: "revoked token", caller: revoked.caller, grants: null });
  // A removed user: their session and their token both stop at once.
  const gone = await invite(admin, "gone@example.com", "auditor");
  const goneToken = await token(gone.caller, ["users:read"]);
  expect((await api(url, admin, "DELETE", `/api/v1/users/${gone.id}`)).status).toBeLessThan(300);
  callers.push({ name: "removed user's session", caller: gone.caller, grants: null });
  callers.push({ name: "removed user's token", caller: goneToken.caller, grants: null });
  // A node: its own key's signature is for the node API, never the admin API.
  const key = await api(url, admin, "POST", "/api/v1/keys", {
    tags: [],
    reusable: false,
    expiresInSeconds: 3600,
  });
  const node = new ControlClient({ baseUrl: url, key: keyHolder(generateKeyPair().privateKey) });
  if (key.status === 201)
    await node.register({ preAuthKey: key.body.key as string, hostname: "signer", os: "linux" });
  callers.push({
    name: "a node's signature",
    caller: null,
    grants: null,
    send: async (method, path, body) =>
      (await node.signedFetch(method, path, body === undefined ? "" : JSON.stringify(body))).status,
  });
}, 240_000);

afterAll(async () => {
  await trellis?.stop();
  data.remove();
});

/** The status of one call; an event stream is cut once its status is known. */
async function status(who: Who, method: string, path: string, body?: unknown): Promise<number> {
  if (who.send) return who.send(method, path, body);
  const headers: Record<string, string> = {};
  if (who.caller?.cookie) {
    headers.cookie = who.caller.cookie;
    headers.origin = url;
  }
  if (who.caller?.token) headers.authorization = `Bearer ${who.caller.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const ac = new AbortController();
  const res = await fetch(url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: ac.signal,
  });
  if ((res.headers.get("content-type") ?? "").includes("event-stream")) ac.abort();
  else await res.arrayBuffer();
  return res.status;
}

function allowed(who: Who, route: string): boolean {
  const rule = ACCESS[route]!;
  const g = who.grants;
  if (!g) return false;
  if (rule.scope === "any") return true;
  if (rule.scope === "session") return g.via === "session";
  return g.scopes.includes(rule.scope) && (!rule.admin || g.role === "admin");
}

describe("access matrix of the admin API", () => {
  it("has an access rule for every route handler", () => {
    const api = routeHandlers().filter((r) => r.includes(" /api/v1/"));
    expect(api.filter((r) => !ACCESS[r])).toEqual([]);
    expect(
      adminCalls()
        .filter((c) => !ACCESS[c.route])
        .map((c) => c.route),
    ).toEqual([]);
    expect(asRoute("GET", "/api/v1/machines/c0ffee")).toBe("GET /api/v1/machines/[id]");
  });

  it("answers every caller of every endpoint as the table says, never 5xx", async () => {
    const wrong: string[] = [];
    let pairs = 0;
    for (const who of callers) {
      for (const c of adminCalls()) {
        const got = await status(who, c.method, c.path, c.body);
        pairs++;
        const want = allowed(who, c.route);
        // Admin-only machine actions look the machine up first: a made-up id is 404 for everyone past the scope.
        const lookupFirst = ACCESS[c.route]!.admin && who.grants?.scopes.includes(ACCESS[c.route]!.scope);
        const ok =
          got < 500 &&
          (want
            ? got !== 401 && got !== 403
            : who.grants === null
              ? got === 401
              : got === 403 || (lookupFirst === true && got === 404));
        if (!ok)
          wrong.push(
            `${who.name}: ${c.method} ${c.path} → ${got} (expected ${want ? "allowed" : who.grants ? "403" : "401"})`,
          );
      }
    }
    expect(wrong, `${wrong.length} of ${pairs} pairs`).toEqual([]);
    expect(pairs).toBeGreaterThan(700);
  });

  it("refuses every state change from another origin with the admin's own cookie (CSRF)", async () => {
    const admin = callers.find((w) => w.name === "admin session")!.caller!;
    const changes = adminCalls().filter((c) => c.method !== "GET");
    const wrong: string[] = [];
    for (const c of changes) {
      for (const origin of ["http://evil.example", "null", url.replace("127.0.0.1", "localhost")]) {
        const res = await api(url, admin, c.method, c.path, c.body, { origin });
        if (res.status !== 403 || res.body?.error !== "csrf")
          wrong.push(`${c.method} ${c.path} from ${origin} → ${res.status}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(changes.length).toBeGreaterThan(15);
  });

  it("tells each session which scopes its role grants, as the table has them", async () => {
    for (const who of callers.filter((w) => w.grants?.via === "session")) {
      const me = await api(url, who.caller, "GET", "/api/v1/me");
      expect([...me.body.scopes].sort(), who.name).toEqual([...who.grants!.scopes].sort());
    }
  });
  it("takes a demoted user's rights away at once, from their session and their tokens", async () => {
    const { admin, auditor, token: tok } = demotion;
    expect((await api(url, auditor.caller, "GET", "/api/v1/users")).status).toBe(200);
    expect((await api(url, tok, "GET", "/api/v1/users")).status).toBe(200);
    expect((await api(url, admin, "PATCH", `/api/v1/users/${auditor.id}`, { role: "member" })).status).toBe(
      200,
    );
    expect((await api(url, auditor.caller, "GET", "/api/v1/users")).status).toBe(403);
    expect((await api(url, tok, "GET", "/api/v1/users")).status).toBe(403);
    expect((await api(url, auditor.caller, "GET", "/api/v1/me")).body.role).toBe("member");
  });
});
