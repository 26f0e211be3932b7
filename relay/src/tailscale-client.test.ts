// Wire compatibility with Tailscale's own DERP client (tailscale.com/derp/derphttp,
// the version the relay bench's derper comes from): packets up to 64 KiB from one
// Go client reach another whole, over Upgrade: DERP and over WebSocket, whose
// Go reader refuses messages over 32 KiB. Needs Go (built once into
// ~/.cache/trellis from the module proxy); skipped without it.
import { execFile, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestRelay, type TestRelay } from "./testing/harness";

const src = fileURLToPath(new URL("../interop/tailscale-client/", import.meta.url));
const go = spawnSync("go", ["version"], { encoding: "utf8" });
const hasGo = !go.error && go.status === 0;

let relay: TestRelay | null = null;
afterEach(async () => {
  await relay?.stop();
  relay = null;
});

describe.skipIf(!hasGo)("Tailscale's DERP client against the relay", () => {
  let bin = "";
  beforeAll(() => {
    const hash = createHash("sha256");
    for (const f of ["go.mod", "go.sum", "main.go"]) hash.update(readFileSync(join(src, f)));
    const dir = join(homedir(), ".cache", "trellis", `tailscale-client-${hash.digest("hex").slice(0, 12)}`);
    bin = join(dir, "tailscale-client");
    if (existsSync(bin)) return;
    mkdirSync(dir, { recursive: true });
    const built = spawnSync(
      "go",
      ["build", "-mod=readonly", "-buildvcs=false", "-tags", "ts_debug_websockets", "-o", bin, "."],
      { cwd: src, encoding: "utf8", env: { ...process.env, GOTOOLCHAIN: "local" } },
    );
    if (built.status !== 0) throw new Error(`go build of the Tailscale client check failed: ${built.stderr}`);
  }, 300_000);

  it.each([
    ["Upgrade: DERP", "false"],
    ["WebSocket", "true"],
  ])("delivers packets up to 64 KiB whole between two Go clients over %s", async (_name, ws) => {
    relay = await startTestRelay();
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        bin,
        [`http://127.0.0.1:${relay!.port}/derp`],
        { env: { ...process.env, TS_DEBUG_DERP_WS_CLIENT: ws }, timeout: 30_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      ),
    );
    expect(out).toContain("ok: every packet whole, sizes [1200 30000 40000 65536 1200]");
  });
});
