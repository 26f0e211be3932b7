import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installRuntime } from "@trellis/control/handle";
import { createLogger } from "@trellis/log";
import { GET } from "./route";

// An API token of a member, as the token lookup reads it.
const TOKEN = `trellis-api-0123456789ab-${"A".repeat(43)}`;
const row = {
  id: "t1",
  prefix: "0123456789ab",
  hash: createHash("sha256").update(TOKEN).digest("hex"),
  scopes: JSON.stringify(["machines:read"]),
  revokedAt: null,
  expiresAt: new Date(Date.now() + 86_400_000),
  lastUsedAt: new Date(),
  user: { id: "u1", email: "m@example.com", name: "M", role: "member" },
};

beforeAll(() =>
  installRuntime({
    log: createLogger("test", "silent"),
    db: { prisma: { apiToken: { findUnique: () => Promise.resolve(row) } } },
    events: { subscribe: () => () => undefined },
  } as never),
);
afterAll(() => installRuntime(null));

function open(signal: AbortSignal) {
  return GET(
    new Request("http://localhost:8080/api/v1/events", {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal,
    }),
  );
}

describe("GET /api/v1/events", () => {
  it("holds at most 16 streams per user, and a closed stream gives its slot back", async () => {
    const aborts = Array.from({ length: 16 }, () => new AbortController());
    for (const a of aborts) expect((await open(a.signal)).status).toBe(200);
    const refused = await open(new AbortController().signal);
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: string }).error).toBe("too_many_streams");
    aborts[0]!.abort();
    const again = new AbortController();
    expect((await open(again.signal)).status).toBe(200);
    for (const a of [...aborts, again]) a.abort();
  });
});
