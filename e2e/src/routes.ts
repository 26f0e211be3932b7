// The admin API's endpoints, one table for the tests that call every one of
// them (roles in admin-api.test.ts, bad input in api-fuzz.test.ts), checked
// against the route handlers in the tree so that a new endpoint without a
// row fails.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./server";

export const READS = [
  "/api/v1/me",
  "/api/v1/machines",
  "/api/v1/users",
  "/api/v1/invitations",
  "/api/v1/keys",
  "/api/v1/policy",
  "/api/v1/policy/versions",
  "/api/v1/dns",
  "/api/v1/settings",
  "/api/v1/audit",
  "/api/v1/connections",
  "/api/v1/tokens",
];

/** An id no row has: refusals come before any lookup. */
export const ID = "c0ffee";
/** Every change of the admin API (an auditor gets 403 for each, its own tokens aside). */
export const WRITES: [string, string, unknown?][] = [
  ["PATCH", `/api/v1/machines/${ID}`, { name: "x" }],
  ["DELETE", `/api/v1/machines/${ID}`],
  ["POST", `/api/v1/machines/${ID}/routes`, { routes: [] }],
  ["POST", `/api/v1/machines/${ID}/authorize`],
  ["POST", `/api/v1/machines/${ID}/expire`],
  ["POST", "/api/v1/machines/wireguard", {}],
  ["PATCH", `/api/v1/users/${ID}`, { role: "admin" }],
  ["DELETE", `/api/v1/users/${ID}`],
  ["POST", "/api/v1/invitations", { email: "x@example.com" }],
  ["DELETE", `/api/v1/invitations/${ID}`],
  ["POST", "/api/v1/keys", {}],
  ["DELETE", `/api/v1/keys/${ID}`],
  ["PUT", "/api/v1/policy", { text: "{}" }],
  ["POST", `/api/v1/policy/versions/1/restore`],
  ["PUT", "/api/v1/dns", {}],
  ["PUT", "/api/v1/settings", {}],
  ["POST", "/api/v1/tokens", { scopes: ["machines:read"] }],
  ["DELETE", `/api/v1/tokens/${ID}`],
  ["DELETE", `/api/v1/users/${ID}/login-throttle`],
];
/** Reads beyond READS (by id, streams, exports). */
export const MORE_READS = [
  `/api/v1/machines/${ID}`,
  `/api/v1/machines/${ID}/wireguard`,
  `/api/v1/users/${ID}`,
  "/api/v1/policy/versions/1",
  "/api/v1/events",
  "/api/v1/audit/export",
];
/** Questions asked with POST that change nothing. */
export const QUERIES: [string, string, unknown][] = [
  ["POST", "/api/v1/policy/validate", { text: "{}" }],
  ["POST", "/api/v1/policy/reachability", { src: "a", dst: "b", port: 1 }],
  ["POST", "/api/v1/me/access", { from: "a", machine: "b" }],
];
/** What answers without a login, on purpose: health, first-run setup, invitations (by their token), NextAuth. */
export const PUBLIC = [
  "GET /api/health",
  "GET /api/setup",
  "POST /api/setup",
  "POST /api/invitations/accept",
  "POST /api/invitations/peek",
  "* /api/auth/[...nextauth]",
];

/** Every route handler of the web app, as "METHOD /path" with dynamic segments as written in the tree. */
export function routeHandlers(): string[] {
  const root = join(ROOT, "web/src/app");
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name === "route.ts") {
        const route = dir.slice(root.length);
        const text = readFileSync(path, "utf8");
        const methods = [
          ...text.matchAll(/export (?:async )?(?:function|const) (GET|POST|PUT|PATCH|DELETE)\b/g),
        ];
        if (methods.length === 0) out.push(`* ${route}`);
        for (const m of methods) out.push(`${m[1]} ${route}`);
      }
    }
  };
  walk(join(root, "api"));
  return out.sort();
}

/** "METHOD /path" with this test's ids turned back into the tree's segments. */
export const asRoute = (method: string, path: string) =>
  `${method} ${path.replaceAll(`/${ID}`, "/[id]").replace(/\/versions\/1(?=\/|$)/, "/versions/[id]")}`;

/**
 * Who may call each endpoint: the scope it needs (a role grants scopes; an
 * API token holds some of its user's), "any" caller who is logged in,
 * "session" only (API tokens are managed from a login, never by a token),
 * and whether the role must also be admin (checked after the machine is
 * looked up, so that a member learns nothing of machines not theirs: for a
 * made-up id, a non-admin holding the scope gets 404). Keyed as the route tree names
 * them ("METHOD /api/v1/…/[id]"); the access matrix checks every caller
 * against this and every route handler has a row.
 */
export const ACCESS: Record<string, { scope: string; admin?: true }> = {
  "GET /api/v1/me": { scope: "any" },
  "GET /api/v1/machines": { scope: "machines:read" },
  "GET /api/v1/users": { scope: "users:read" },
  "GET /api/v1/invitations": { scope: "users:read" },
  "GET /api/v1/keys": { scope: "keys:read" },
  "GET /api/v1/policy": { scope: "policy:read" },
  "GET /api/v1/policy/versions": { scope: "policy:read" },
  "GET /api/v1/dns": { scope: "dns:read" },
  "GET /api/v1/settings": { scope: "settings:read" },
  "GET /api/v1/audit": { scope: "logs:read" },
  "GET /api/v1/connections": { scope: "logs:read" },
  "GET /api/v1/tokens": { scope: "session" },
  "PATCH /api/v1/machines/[id]": { scope: "machines:write" },
  "DELETE /api/v1/machines/[id]": { scope: "machines:write" },
  "POST /api/v1/machines/[id]/routes": { scope: "machines:write", admin: true },
  "POST /api/v1/machines/[id]/authorize": { scope: "machines:write", admin: true },
  "POST /api/v1/machines/[id]/expire": { scope: "machines:write" },
  "POST /api/v1/machines/wireguard": { scope: "machines:write", admin: true },
  "PATCH /api/v1/users/[id]": { scope: "users:write" },
  "DELETE /api/v1/users/[id]": { scope: "users:write" },
  "POST /api/v1/invitations": { scope: "users:write" },
  "DELETE /api/v1/invitations/[id]": { scope: "users:write" },
  "POST /api/v1/keys": { scope: "keys:write" },
  "DELETE /api/v1/keys/[id]": { scope: "keys:write" },
  "PUT /api/v1/policy": { scope: "policy:write" },
  "POST /api/v1/policy/versions/[id]/restore": { scope: "policy:write" },
  "PUT /api/v1/dns": { scope: "dns:write" },
  "PUT /api/v1/settings": { scope: "settings:write" },
  "POST /api/v1/tokens": { scope: "session" },
  "DELETE /api/v1/tokens/[id]": { scope: "session" },
  "DELETE /api/v1/users/[id]/login-throttle": { scope: "users:write" },
  "GET /api/v1/machines/[id]": { scope: "machines:read" },
  "GET /api/v1/machines/[id]/wireguard": { scope: "machines:read" },
  "GET /api/v1/users/[id]": { scope: "users:read" },
  "GET /api/v1/policy/versions/[id]": { scope: "policy:read" },
  "GET /api/v1/events": { scope: "any" },
  "GET /api/v1/audit/export": { scope: "logs:read" },
  "POST /api/v1/policy/validate": { scope: "policy:read" },
  "POST /api/v1/policy/reachability": { scope: "policy:read" },
  "POST /api/v1/me/access": { scope: "machines:write" },
};

/** Every call of the admin API this file lists, with its body and its ACCESS key. */
export function adminCalls(): { method: string; path: string; body?: unknown; route: string }[] {
  return [
    ...READS.map((p) => ({ method: "GET", path: p })),
    ...MORE_READS.map((p) => ({ method: "GET", path: p })),
    ...WRITES.map(([m, p, b]) => ({ method: m, path: p, body: b })),
    ...QUERIES.map(([m, p, b]) => ({ method: m, path: p, body: b })),
  ].map((c) => ({ ...c, route: asRoute(c.method, c.path) }));
}
