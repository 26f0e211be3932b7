import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/** A Trellis server started exactly as a user starts it: `npm start`'s script. */
export interface RunningTrellis {
  url: string;
  port: number;
  /** The web-apps origin's port ("off" when turned off). */
  appsPort: string;
  dataDir: string;
  /** Everything the process printed on stdout so far. */
  stdout(): string;
  stderr(): string;
  /** The first-run setup link, if the server printed one. */
  setupLink(): string | null;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /**
   * kill -9 the server process itself (`npm start`'s script runs it as a
   * child, and a SIGKILL to the script would orphan it), then wait for the
   * script to exit.
   */
  crash(): Promise<void>;
}

export function tempDataDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "trellis-e2e-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startTrellis(opts: {
  dataDir: string;
  port?: number;
  env?: Record<string, string>;
  timeoutMs?: number;
}): Promise<RunningTrellis> {
  const port = opts.port ?? (await freePort());
  // The web-apps origin listens on a port of its own: a free one, not PORT+1 (which may be taken).
  const appsPort = opts.env?.TRELLIS_APPS_PORT ?? String(await freePort());
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, "scripts/start.mjs")], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      TRELLIS_DATA_DIR: opts.dataDir,
      DATABASE_URL: "",
      TRELLIS_STUN_PORT: "0",
      TRELLIS_APPS_PORT: appsPort,
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  while (!out.includes("Trellis is running at")) {
    if (child.exitCode !== null) throw new Error(`trellis exited with ${child.exitCode}:\n${err}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`trellis did not start in time:\n${out}\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // The setup link, when there is one, follows the banner in the same write.
  await new Promise((r) => setTimeout(r, 200));
  return {
    url: `http://127.0.0.1:${port}`,
    appsPort,
    port,
    dataDir: opts.dataDir,
    stdout: () => out,
    stderr: () => err,
    setupLink: () => /(http:\/\/\S+\/setup#token=[\w-]+)/.exec(out)?.[1] ?? null,
    async crash() {
      const pids = execFileSync("ps", ["-o", "pid=", "--ppid", String(child.pid)], { encoding: "utf8" })
        .split("\n")
        .map((l) => Number(l.trim()))
        .filter((n) => n > 0);
      for (const pid of pids) process.kill(pid, "SIGKILL");
      await exited;
    },
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
