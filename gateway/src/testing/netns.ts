import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";

// Network namespaces that a test creates for itself and removes again, for
// the gateway's data-plane tests. Addresses come from 10.77.0.0/16 and exist
// only inside these namespaces: nothing is added to the root namespace, so
// tests neither see nor disturb the host's network (compare e2e/src/netns.ts,
// whose NAT topology does reach into the root namespace on purpose).

/** Every namespace made here is named with this prefix (cleanup scripts rely on it). */
export const NETNS_PREFIX = "trl-";
/** Bound for every `ip`/tool invocation made here: none of them should take long. */
const COMMAND_TIMEOUT_MS = 10_000;

export class NetnsError extends Error {
  override readonly name = "NetnsError";
}

/** Whether this process can create namespaces (root with iproute2), and why not. */
export function netnsAvailable(): { ok: boolean; reason?: string } {
  if (process.platform !== "linux") return { ok: false, reason: "network namespaces need Linux" };
  if (process.getuid?.() !== 0) return { ok: false, reason: "network namespaces need root" };
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore", timeout: COMMAND_TIMEOUT_MS });
  } catch (err) {
    return { ok: false, reason: `\`ip netns\` does not work: ${(err as Error).message}` };
  }
  return { ok: true };
}

/** Whether `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", 'command -v "$1"', "sh", cmd], {
      stdio: "ignore",
      timeout: COMMAND_TIMEOUT_MS,
    });
    return true;
  } catch {
    return false; // `command -v` exits 1 when the command is missing
  }
}

function describe(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].join(" ");
}

/** Run a command synchronously in the current namespace; throws NetnsError with its stderr. */
function runSync(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: COMMAND_TIMEOUT_MS,
    });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? "").trim();
    throw new NetnsError(`${describe(cmd, args)} failed: ${stderr || (err as Error).message}`, {
      cause: err,
    });
  }
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/**
 * Run `cmd args` inside `ns` and collect its output. Asynchronous on purpose:
 * while it runs, the event loop keeps draining the pipes of daemons started
 * with spawnIn, which would otherwise block on a full pipe. Rejects with a
 * NetnsError carrying the exit status and stderr, or on timeout.
 */
export function execIn(ns: string, cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const full = ["netns", "exec", ns, cmd, ...args];
  return new Promise((resolve, reject) => {
    const child = execFile(
      "ip",
      full,
      {
        encoding: "utf8",
        timeout: opts.timeoutMs ?? COMMAND_TIMEOUT_MS,
        killSignal: "SIGKILL",
        maxBuffer: 16 * 1024 * 1024,
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        const why = e.killed
          ? `timed out after ${opts.timeoutMs ?? COMMAND_TIMEOUT_MS} ms`
          : `exited with ${e.code ?? e.message}`;
        const detail = (stderr || stdout).trim();
        reject(
          Object.assign(
            new NetnsError(`in ${ns}: ${describe(cmd, args)} ${why}${detail ? `: ${detail}` : ""}`, {
              cause: err,
            }),
            { stdout, stderr },
          ),
        );
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/**
 * Start `cmd args` inside `ns` (stdin, stdout and stderr piped). `ip netns
 * exec` execs the command itself, so the ChildProcess is the command and
 * signals reach it directly.
 */
export function spawnIn(
  ns: string,
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): ChildProcess {
  return spawn("ip", ["netns", "exec", ns, cmd, ...args], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
}

function randomId(): string {
  return randomBytes(3).toString("hex");
}

/**
 * Kill whatever still runs in `ns`, then delete it. Only for namespaces this
 * process created: the processes in them are ours (daemons a failed test left
 * behind), and a namespace stays alive, with its interfaces, while any runs.
 */
export function removeNamespace(ns: string): void {
  if (!ns.startsWith(NETNS_PREFIX)) throw new NetnsError(`refusing to remove ${ns}: not one of ours`);
  let pids: string[] = [];
  try {
    pids = runSync("ip", ["netns", "pids", ns]).split(/\s+/).filter(Boolean);
  } catch (err) {
    // Gone already (a second remove(), or creation failed half-way).
    if (
      !runSync("ip", ["netns", "list"])
        .split("\n")
        .some((l) => l.split(" ")[0] === ns)
    )
      return;
    throw err;
  }
  for (const pid of pids) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err; // exited meanwhile
    }
  }
  runSync("ip", ["netns", "del", ns]);
}

/** Create an empty namespace named `<prefix><random>` with loopback up. */
export function createNamespace(prefix = NETNS_PREFIX): string {
  if (!prefix.startsWith(NETNS_PREFIX))
    throw new NetnsError(`namespace prefix must start with ${NETNS_PREFIX}`);
  const ns = `${prefix}${process.pid % 10000}-${randomId()}`;
  runSync("ip", ["netns", "add", ns]);
  try {
    runSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
  } catch (err) {
    removeNamespace(ns);
    throw err;
  }
  return ns;
}

/** Two namespaces joined by a veth pair, each end addressed in one random /24. */
export interface LinkedNamespaces {
  nsA: string;
  nsB: string;
  /** The veth end in nsA, and its address (no prefix length). */
  ifA: string;
  ipA: string;
  ifB: string;
  ipB: string;
  /** Prefix length of ipA/ipB (they share one subnet). */
  prefixLength: number;
  /** Kill what still runs in the namespaces and delete them (idempotent). */
  remove(): void;
}

/**
 *   nsA  ifA ipA (10.77.N.1/24) ──veth── ifB ipB (10.77.N.2/24)  nsB
 *
 * N is random, so concurrent tests rarely share a subnet; they could not
 * collide anyway, the namespaces being separate.
 */
export function createLinkedNamespaces(): LinkedNamespaces {
  const id = randomId();
  const n = randomInt(0, 256);
  const ipA = `10.77.${n}.1`;
  const ipB = `10.77.${n}.2`;
  const ifA = `trlva${id}`;
  const ifB = `trlvb${id}`;
  const created: string[] = [];
  const remove = () => {
    const errors: unknown[] = [];
    for (const ns of created.splice(0)) {
      try {
        removeNamespace(ns);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw new AggregateError(errors, "could not remove every test namespace");
  };
  try {
    const nsA = createNamespace();
    created.push(nsA);
    const nsB = createNamespace();
    created.push(nsB);
    // Created inside nsA with its peer moved straight to nsB: the pair never
    // appears in the root namespace.
    runSync("ip", ["-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB]);
    runSync("ip", ["-n", nsA, "addr", "add", `${ipA}/24`, "dev", ifA]);
    runSync("ip", ["-n", nsB, "addr", "add", `${ipB}/24`, "dev", ifB]);
    runSync("ip", ["-n", nsA, "link", "set", ifA, "up"]);
    runSync("ip", ["-n", nsB, "link", "set", ifB, "up"]);
    return { nsA, nsB, ifA, ipA, ifB, ipB, prefixLength: 24, remove };
  } catch (err) {
    try {
      remove();
    } catch (cleanupErr) {
      throw new AggregateError([err, cleanupErr], "creating linked namespaces failed, and so did cleanup");
    }
    throw err;
  }
}
