// Bad input to every body and query of the admin API, against the real
// server, as tables of generated cases (fast-check): as the admin (so the
// request passes authentication and reaches validation), each endpoint gets
// any JSON, its own sample body with fields given wrong values, text that
// is not JSON, bodies over the size limit, and list queries with any
// parameters. Every answer is a success or a 4xx with a JSON error code and
// a message — never a 5xx — and the server is healthy afterwards.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuzzRuns, recordCases } from "@trellis/proto/fuzz";
import { api, firstAdmin, type Caller } from "../src/console";
import { MORE_READS, PUBLIC, QUERIES, READS, WRITES } from "../src/routes";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

const data = tempDataDir();
let trellis: RunningTrellis;
let url: string;
let admin: Caller;

beforeAll(async () => {
  trellis = await startTrellis({ dataDir: data.dir });
  url = trellis.url;
  admin = await firstAdmin(url, trellis.setupLink());
}, 180_000);
afterAll(async () => {
  await trellis?.stop();
  data.remove();
});

const wrongValue = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.double(),
  fc.integer(),
  fc.string({ maxLength: 200 }),
  fc.array(fc.string({ maxLength: 40 }), { maxLength: 20 }),
  fc.object({ maxDepth: 2 }),
  fc.constantFrom(
    "tag:",
    "999.1.1.1",
    "10.0.0.5/24",
    "::/0",
    "<script>alert(1)</script>",
    "\u0000",
    "x".repeat(5000),
  ),
);
/** A body for an endpoint whose sample is `sample`. */
const bodyFor = (sample: unknown) =>
  fc.oneof(
    fc.json({ maxDepth: 3 }).map((j) => JSON.parse(j) as unknown),
    fc
      .dictionary(
        fc.constantFrom(
          ...Object.keys((sample ?? {}) as object),
          "name",
          "role",
          "tags",
          "text",
          "routes",
          "email",
        ),
        wrongValue,
        { maxKeys: 5 },
      )
      .map((o) => ({ ...((sample ?? {}) as object), ...o })),
    fc.string({ maxLength: 200 }).map((s) => `{${s}`),
  );

async function clean(method: string, path: string, body: unknown, what: string): Promise<number> {
  const res = await api(url, admin, method, path, body);
  const shown = `${what}: ${method} ${path} ${JSON.stringify(body)?.slice(0, 120)} → ${res.status} ${JSON.stringify(res.body)?.slice(0, 200)}`;
  expect(res.status, shown).toBeLessThan(500);
  if (res.status >= 400 && res.status !== 405) {
    expect(typeof res.body?.error, shown).toBe("string");
  }
  return res.status;
}

describe("admin API on bad input", () => {
  it("every body-taking endpoint: any JSON, wrong values in its own fields, not JSON — 4xx with an error code, never 5xx", async () => {
    const runs = fuzzRuns(25);
    const routes: [string, string, unknown][] = [
      ...WRITES.filter(([m]) => m !== "DELETE").map(
        ([m, p, b]) => [m, p, b ?? {}] as [string, string, unknown],
      ),
      ...QUERIES,
      ...PUBLIC.filter((r) => r.startsWith("POST ")).map(
        (r) => ["POST", r.slice(5), {}] as [string, string, unknown],
      ),
    ];
    for (const [method, path, sample] of routes) {
      await fc.assert(
        fc.asyncProperty(bodyFor(sample), async (b) => void (await clean(method, path, b, "fuzzed body"))),
        { numRuns: runs },
      );
    }
    recordCases("bad input", "admin API bodies", runs * routes.length);
  });

  it("bodies over the limit are refused with 413 before they are read whole", async () => {
    for (const [method, path] of [
      ["PUT", "/api/v1/policy"],
      ["POST", "/api/v1/keys"],
      ["POST", "/api/invitations/accept"],
    ]) {
      const status = await clean(
        method!,
        path!,
        JSON.stringify({ text: "x".repeat(3 * 1024 * 1024) }),
        "huge",
      );
      expect(status, `${method} ${path}`).toBe(413);
    }
  });

  it("list and read endpoints with any query parameters: never 5xx", async () => {
    const runs = fuzzRuns(15);
    const query = fc
      .dictionary(
        fc.constantFrom(
          "limit",
          "cursor",
          "q",
          "user",
          "action",
          "from",
          "to",
          "format",
          "page",
          "sort",
          "x",
        ),
        fc.oneof(
          fc.string({ maxLength: 60 }),
          fc.integer().map(String),
          fc.constantFrom("-1", "1e9", "NaN", "%", ""),
        ),
        { maxKeys: 4 },
      )
      .map((o) => new URLSearchParams(o).toString());
    const paths = [...READS, ...MORE_READS.filter((p) => p !== "/api/v1/events")];
    for (const path of paths) {
      await fc.assert(
        fc.asyncProperty(
          query,
          async (q) => void (await clean("GET", `${path}?${q}`, undefined, "fuzzed query")),
        ),
        { numRuns: runs },
      );
    }
    recordCases("bad input", "admin API queries", runs * paths.length);
  });

  it("is healthy afterwards, and the admin still works", async () => {
    expect((await fetch(url + "/api/health")).status).toBe(200);
    expect((await api(url, admin, "GET", "/api/v1/me")).body.role).toBe("admin");
  });
});
