import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installRuntime } from "@trellis/control/handle";
import { createLogger } from "@trellis/log";
import { GET } from "./route";

// A runtime whose database is down: the detailed answer carries the database's error text.
beforeAll(() =>
  installRuntime({
    log: createLogger("test", "silent"),
    health: (opts: { detail?: boolean } = {}) =>
      Promise.resolve({
        status: "degraded",
        version: "0",
        uptime_s: 1,
        database: {
          provider: "postgresql",
          status: "error",
          error:
            opts.detail === false ? "unavailable" : 'password authentication failed for user "trellis_prod"',
        },
        relay: { status: "external", path: "/derp", clients: 0 },
      }),
  } as never),
);
afterAll(() => installRuntime(null));

describe("GET /api/health", () => {
  it("answers anyone without the database's error text", async () => {
    const res = await GET();
    expect(res.status).toBe(503);
    const body = JSON.stringify(await res.json());
    expect(body).not.toContain("trellis_prod");
    expect(body).toContain("unavailable");
  });
});
