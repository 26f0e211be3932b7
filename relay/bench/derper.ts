// Tailscale's derper as the relay benchmark's baseline: built from the Go
// module proxy once into ~/.cache/trellis/derper-<version>/ and run on
// loopback over plain HTTP with STUN off, no mesh key and no client
// verification, as `derper -a 127.0.0.1:PORT -c CONFIG -stun=false -http-port=-1`.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The newest derper release the Go toolchain here builds: v1.102.5 asks for
 * Go 1.26.6; v1.104 and later ask for Go 1.27, which GOTOOLCHAIN=auto would
 * fetch through the module proxy. TRELLIS_DERPER_VERSION picks another.
 */
export const DERPER_VERSION = process.env.TRELLIS_DERPER_VERSION ?? "v1.102.5";

export class DerperError extends Error {
  override readonly name = "DerperError";
}

/** The derper binary, built if need be; a reason instead when it cannot be had. */
export function ensureDerper(): { bin: string } | { skipped: string } {
  const dir = join(homedir(), ".cache", "trellis", `derper-${DERPER_VERSION}`);
  const bin = join(dir, "derper");
  if (existsSync(bin)) return { bin };
  const go = spawnSync("go", ["version"], { encoding: "utf8" });
  if (go.error || go.status !== 0) return { skipped: "Go is not installed: no derper baseline" };
  mkdirSync(dir, { recursive: true });
  console.error(`building derper ${DERPER_VERSION} into ${dir} (once) …`);
  const built = spawnSync("go", ["install", `tailscale.com/cmd/derper@${DERPER_VERSION}`], {
    env: { ...process.env, GOBIN: dir },
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (built.status !== 0 || !existsSync(bin)) {
    return { skipped: `go install tailscale.com/cmd/derper@${DERPER_VERSION} failed: no derper baseline` };
  }
  return { bin };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Derper {
  port: number;
  proc: ChildProcess;
  stop(): void;
}

/** Start derper on a free loopback port and wait until its probe answers. */
export async function startDerper(bin: string): Promise<Derper> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "trellis-derper-"));
  const proc = spawn(
    bin,
    ["-a", `127.0.0.1:${port}`, "-c", join(dir, "derper.json"), "-stun=false", "-http-port=-1"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  proc.stderr!.on("data", (d: Buffer) => {
    if (stderr.length < 8192) stderr += d.toString();
  });
  const stop = () => {
    proc.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new DerperError(`derper exited with ${proc.exitCode}: ${stderr}`);
    const ok = await fetch(`http://127.0.0.1:${port}/derp/probe`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { port, proc, stop };
    if (Date.now() > deadline) {
      stop();
      throw new DerperError(`derper did not answer on port ${port}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
