import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A throw-away PostgreSQL server on loopback, owned by the test that started it. */
export interface TempPostgres {
  /** postgres://… URL of a fresh database `trellis` on the server. */
  url: string;
  /** Create another empty database on the same server and return its URL. */
  createDatabase(name: string): string;
  /**
   * Take the server down as a crash would (immediate shutdown: open
   * connections are cut, uncommitted transactions lost), keeping its data
   * and port for `up()`. For outage and restart tests.
   */
  down(): void;
  /** Start a server taken `down()` again, on the same port with the same data. */
  up(): void;
  stop(): void;
}

/** Directory of Debian's PostgreSQL server binaries, or null when none is installed. */
export function postgresBinDir(): string | null {
  const base = "/usr/lib/postgresql";
  if (!existsSync(base)) return null;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(base, versions[0]!, "bin") : null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/**
 * initdb a cluster in a temporary directory and start it on a free loopback
 * port. PostgreSQL refuses to run as root, so as root the server runs as the
 * `postgres` system user that Debian's package creates.
 */
export async function startTempPostgres(): Promise<TempPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error("PostgreSQL server binaries not found under /usr/lib/postgresql");
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), "trellis-pg-"));
  chmodSync(dir, 0o777);
  const data = join(dir, "data");
  const run = (cmd: string, args: string[]) => {
    const full = asRoot ? ["-u", "postgres", "--", join(bin, cmd), ...args] : args;
    const res = spawnSync(asRoot ? "runuser" : join(bin, cmd), full, { encoding: "utf8" });
    if (res.status !== 0) {
      throw new Error(`${cmd} failed (${res.status}): ${res.stderr || res.stdout}`);
    }
  };
  run("initdb", ["-D", data, "-U", "trellis", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  const port = await freePort();
  const start = () =>
    run("pg_ctl", [
      "-D",
      data,
      "-l",
      join(dir, "server.log"),
      "-w",
      "-t",
      "30",
      "-o",
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
      "start",
    ]);
  start();
  const psql = (sql: string) =>
    execFileSync(
      join(bin, "psql"),
      ["-h", "127.0.0.1", "-p", String(port), "-U", "trellis", "-d", "postgres", "-c", sql],
      {
        encoding: "utf8",
      },
    );
  const createDatabase = (name: string) => {
    if (!/^[a-z][a-z0-9_]{0,40}$/.test(name)) throw new Error(`bad database name ${name}`);
    psql(`CREATE DATABASE ${name}`);
    return `postgresql://trellis@127.0.0.1:${port}/${name}`;
  };
  const url = createDatabase("trellis");
  let stopped = false;
  let running = true;
  const halt = () => {
    if (!running) return;
    running = false;
    run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
  };
  return {
    url,
    createDatabase,
    down: halt,
    up() {
      if (running || stopped) return;
      start();
      running = true;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        halt();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
