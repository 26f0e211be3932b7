// The gateway CLI as tests and benchmarks run it: `gateway/bin/trellis`,
// optionally inside a network namespace, bounded in time; and the end of a
// daemon that a test started.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./server";

export const TRELLIS = join(ROOT, "gateway/bin/trellis");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run the CLI (inside `netns` when given; as the user and group `uid` when
 * given, with no capabilities), bounded; never rejects on a non-zero exit.
 */
export function cli(args: string[], netns?: string, timeoutMs = 60_000, uid?: number): Promise<CliResult> {
  const as =
    uid === undefined
      ? []
      : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--inh-caps=-all"];
  const [cmd, full] = netns
    ? ["ip", ["netns", "exec", netns, ...as, TRELLIS, ...args]]
    : as.length
      ? [as[0]!, [...as.slice(1), TRELLIS, ...args]]
      : [TRELLIS, args];
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      full,
      { timeout: timeoutMs, killSignal: "SIGKILL", encoding: "utf8" },
      (err, stdout, stderr) => {
        const e = err as { killed?: boolean; code?: unknown } | null;
        if (e?.killed) return reject(new Error(`trellis ${args.join(" ")} timed out:\n${stdout}\n${stderr}`));
        if (e && typeof e.code !== "number") return reject(err);
        resolve({ code: typeof e?.code === "number" ? e.code : 0, stdout, stderr });
      },
    );
  });
}

/**
 * End the daemon of `dir` (by its pid file: only daemons these tests started):
 * SIGTERM, then SIGKILL if it is still there after 10 s. Says which it took.
 */
export async function stopDaemon(dir: string): Promise<"none" | "exited" | "killed"> {
  const pidFile = join(dir, "trellisd.pid");
  if (!existsSync(pidFile)) return "none";
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  try {
    process.kill(pid, "SIGTERM");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return "none";
    throw err;
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return "exited";
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(pid, "SIGKILL");
  return "killed";
}
