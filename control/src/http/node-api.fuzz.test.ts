// Bad input to every endpoint of the node API, as tables of generated cases
// (fast-check), over real sockets: bodies signed by a registered node (so
// they get past authentication to the parsers) holding any JSON, the right
// fields with wrong values, or not JSON at all; and authorization headers
// that are anything but a valid signature. Every answer is a 4xx with a
// JSON error code (or a success, for the rare valid body) — never a 5xx —
// and the server still serves its nodes afterwards.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { fuzzRuns, recordCases } from "@trellis/proto/fuzz";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { loadConfig } from "../config";
import { ControlRuntime } from "../runtime";
import { preAuthKey, serveNodeApi, TestNode } from "../testing/control";
import { PROVIDERS, testDatabases } from "../testing/db";
import { nodeRoutes } from "./node-api";

const log = createLogger("test", "silent");
const dataDir = mkdtempSync(join(tmpdir(), "trellis-nodeapi-fuzz-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
const sqlite = PROVIDERS.find((p) => p.provider === "sqlite")!;

/** Field names the node API's bodies use, to aim wrong values at real fields. */
const FIELDS = [
  "hostname",
  "preAuthKey",
  "os",
  "routableIPs",
  "endpoints",
  "ephemeral",
  "tags",
  "rotateFrom",
  "nodeKey",
  "signature",
  "to",
  "sealed",
  "keys",
  "connections",
  "discoKey",
  "version",
  "capabilities",
];
const wrongValue = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.double(),
  fc.integer(),
  fc.string({ maxLength: 300 }),
  fc.array(fc.string({ maxLength: 60 }), { maxLength: 40 }),
  fc.object({ maxDepth: 2 }),
  fc.constantFrom("0.0.0.0/0", "::/0", "1.2.3.4:99999", "nodekey:00", "x".repeat(5000), "\u0000", "[::1]:1"),
);
const body = fc.oneof(
  fc.json({ maxDepth: 3 }),
  fc.dictionary(fc.constantFrom(...FIELDS), wrongValue, { maxKeys: 6 }).map((o) => JSON.stringify(o)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom("", "{", "[]", "null", '{"__proto__":{"x":1}}', "{}".padEnd(70_000, " ")),
);

async function expectClean(res: Response, what: string): Promise<void> {
  const text = await res.text();
  expect(res.status, `${what}: ${text.slice(0, 200)}`).toBeLessThan(500);
  if (res.status >= 400) {
    const parsed = JSON.parse(text) as { error?: unknown };
    expect(typeof parsed.error, `${what}: ${text.slice(0, 200)}`).toBe("string");
  }
}

describe.skipIf(sqlite.skip)("node API on bad input", () => {
  const dbs = testDatabases("sqlite");

  it("signed bodies of any shape to every endpoint, and forged authorization: 4xx with an error code, never 5xx", async () => {
    const config = {
      ...loadConfig({ TRELLIS_PUBLIC_URL: "https://vpn.example.com" }, dataDir),
      databaseUrl: dbs.url(),
    };
    const rt = await ControlRuntime.open(config, log, { controlKey: generateKeyPair() });
    const server = await serveNodeApi(rt, {});
    try {
      const key = await preAuthKey(rt, { tags: ["tag:server"], reusable: true });
      const node = new TestNode(rt);
      await node.register(key, "fuzzed");
      const posts = nodeRoutes()
        .filter(([m]) => m === "POST")
        .map(([, p]) => p);
      expect(posts).toEqual(
        expect.arrayContaining(["/api/v1/register", "/api/v1/endpoints", "/api/v1/signal"]),
      );
      const runs = fuzzRuns(40);
      for (const path of posts.filter((p) => p !== "/api/v1/logout")) {
        await fc.assert(
          fc.asyncProperty(body, async (b) => {
            await expectClean(
              await node.client.signedFetch("POST", path, b),
              `POST ${path} ${b.slice(0, 80)}`,
            );
          }),
          { numRuns: runs },
        );
      }
      const auth = fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.string({ maxLength: 200 }).map((s) => `Trellis-Node ${s}`),
        fc.dictionary(fc.constantFrom("key", "ts", "nonce", "mac", "sig"), fc.string({ maxLength: 80 })).map(
          (o) =>
            `Trellis-Node ${Object.entries(o)
              .map(([k, v]) => `${k}=${v}`)
              .join(",")}`,
        ),
      );
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...posts), auth, async (path, a) => {
          const res = await node.client.signedFetch("POST", path, "{}", a);
          await expectClean(res, `POST ${path} with authorization ${a.slice(0, 80)}`);
          expect(res.status).toBeGreaterThanOrEqual(400);
        }),
        { numRuns: runs * 2 },
      );
      recordCases("bad input", "node API bodies and signatures", runs * (posts.length + 1));
      // Still serving: the node (and the logout endpoint, last) answer as they should.
      await node.endpoints(["192.0.2.7:41641"]);
      await expectClean(await node.client.signedFetch("POST", "/api/v1/logout", "{nope"), "logout");
    } finally {
      await server.close();
      await rt.close();
    }
  });
});
