// The CLI's side of the daemon socket: one request, one response, bounded in
// time and size; and starting the daemon in the background when none answers.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LOG_NAME, MAX_LINE_BYTES, Response, SOCKET_NAME, type Request } from "./protocol";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

/** The daemon could not be reached, or answered with something that is not the protocol. */
export class DaemonConnectionError extends Error {
  override readonly name = "DaemonConnectionError";
  constructor(
    /** `not_running` (no socket, or nobody listening), `timeout`, `bad_response`, `io`. */
    readonly code: "not_running" | "timeout" | "bad_response" | "io",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const socketPath = (stateDir: string) => join(stateDir, SOCKET_NAME);

/** Send one request to the daemon of `stateDir` and read its answer. */
export function request(stateDir: string, req: Request, timeoutMs: number): Promise<Response> {
  const path = socketPath(stateDir);
  return new Promise((resolve, reject) => {
    let buf = "";
    let settled = false;
    const sock = connect(path);
    const finish = (err: Error | null, res?: Response) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(
      () =>
        finish(
          new DaemonConnectionError("timeout", `the daemon did not answer within ${timeoutMs / 1000} s`),
        ),
      timeoutMs,
    );
    sock.setEncoding("utf8");
    sock.once("connect", () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on("error", (err: NodeJS.ErrnoException) => {
      const gone = err.code === "ENOENT" || err.code === "ECONNREFUSED";
      finish(
        new DaemonConnectionError(
          gone ? "not_running" : "io",
          gone
            ? `no daemon is running (nothing answers on ${path})`
            : `talking to the daemon at ${path}: ${err.message}`,
          { cause: err },
        ),
      );
    });
    sock.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE_BYTES) {
        finish(new DaemonConnectionError("bad_response", "the daemon's answer is too large"));
        return;
      }
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(buf.slice(0, nl));
      } catch (err) {
        finish(new DaemonConnectionError("bad_response", "the daemon's answer is not JSON", { cause: err }));
        return;
      }
      const res = Response.safeParse(parsed);
      if (!res.success) {
        finish(
          new DaemonConnectionError(
            "bad_response",
            `unexpected answer from the daemon: ${res.error.message}`,
          ),
        );
        return;
      }
      finish(null, res.data);
    });
    sock.on("end", () =>
      finish(new DaemonConnectionError("bad_response", "the daemon closed the connection without an answer")),
    );
  });
}

/**
 * Make sure a daemon answers for `stateDir`: when none does, start `trellis
 * daemon` detached (its output appended to <state-dir>/trellisd.log) and wait
 * up to `timeoutMs` for its socket. Returns whether it started one.
 */
export async function ensureDaemon(stateDir: string, timeoutMs = 15_000): Promise<boolean> {
  if (await pingDaemon(stateDir)) return false;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const logPath = join(stateDir, LOG_NAME);
  const fd = openSync(logPath, "a", 0o600);
  // The daemon's environment without the auth key: it arrives over the socket.
  const env = { ...process.env };
  delete env.TRELLIS_AUTH_KEY;
  let exited: number | null = null;
  try {
    const child = spawn(process.execPath, [...process.execArgv, MAIN, "daemon", "--state-dir", stateDir], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env,
    });
    child.once("exit", (code) => (exited = code ?? -1));
    child.unref();
  } finally {
    closeSync(fd);
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    if (exited !== null) break;
    if (await pingDaemon(stateDir)) return true;
  }
  const tail = existsSync(logPath) ? readFileSync(logPath, "utf8").split("\n").slice(-10).join("\n") : "";
  throw new DaemonConnectionError(
    exited !== null ? "not_running" : "timeout",
    `${exited !== null ? `the daemon exited (${exited})` : `the daemon did not open its socket within ${timeoutMs / 1000} s`}; see ${logPath}${tail.trim() ? `:\n${tail}` : ""}`,
  );
}

async function pingDaemon(stateDir: string): Promise<boolean> {
  try {
    await request(stateDir, { op: "status" }, 2000);
    return true;
  } catch (err) {
    if (err instanceof DaemonConnectionError && err.code === "not_running") return false;
    throw err;
  }
}
