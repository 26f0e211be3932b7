// The data directory holds the SQLite database, the control and relay keys
// and auth.secret: nobody but the server's user may read it. It is created
// 0700, an existing one that others can enter is tightened to 0700 (with a
// warning), and the SQLite files are made 0600, so the database (password
// hashes, sessions) is never world-readable whatever the umask.
import { chmodSync, existsSync, mkdirSync, statSync } from "node:fs";
import type { Logger } from "@trellis/log";

/** Create `dir` 0700, or tighten an existing one; returns whether it had to be tightened. */
export function preparePrivateDir(dir: string, log?: Logger): boolean {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700); // mkdir's mode is masked by the umask; be exact
    return false;
  }
  const mode = statSync(dir).mode & 0o777;
  if ((mode & 0o077) === 0) return false;
  chmodSync(dir, mode & 0o700);
  log?.warn({ dir, was: mode.toString(8) }, "the data directory was readable by others; it is now 0700");
  return true;
}

/** Make a SQLite database and its journal files 0600 (those that exist). */
export function restrictDatabaseFiles(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    if (existsSync(f) && (statSync(f).mode & 0o077) !== 0) chmodSync(f, 0o600);
  }
}
