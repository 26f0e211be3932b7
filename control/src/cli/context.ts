// What trellis-server's commands work with: the admin functions' context
// over the server's own database, and where the run reads and writes.
import { existsSync } from "node:fs";
import { openDatabase, parseDatabaseUrl, pendingMigrations } from "@trellis/db";
import type { Logger } from "@trellis/log";
import type { AdminContext } from "../admin/context";
import type { ServerConfig } from "../config";
import { restrictDatabaseFiles } from "../data-dir";
import { ControlError } from "../errors";
import { EventBus } from "../events";
import { readTopology } from "../netmap";
import { PolicyStore } from "../policy-store";
import { loadSettings } from "../settings";

/** Where a run reads and writes; tests pass their own. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Standard input, for `policy set -` and `policy check -`. */
  stdin?: AsyncIterable<Uint8Array | string>;
  /** The environment the configuration is read from (process.env by default). */
  env?: NodeJS.ProcessEnv;
  /** Where a relative TRELLIS_DATA_DIR or policy file is resolved (the process's cwd by default). */
  cwd?: string;
}

/** What a command works with: the admin functions' context over the server's database. */
export interface CliContext extends AdminContext {
  readonly config: ServerConfig;
}

/** Bad arguments or input: the command stops before it changes anything. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/**
 * The admin functions' context over the server's database. Not migrated
 * here: applying migrations takes the database for itself (on SQLite it
 * waits for the running server's connection to close), so a database behind
 * this version is refused and the server, at its next start, migrates it.
 * The event bus has no listeners here: the change a function publishes after
 * its commit reaches the server through the database (see cli.ts).
 */
export async function openContext(
  config: ServerConfig,
  log: Logger,
): Promise<CliContext & { close(): Promise<void> }> {
  const target = parseDatabaseUrl(config.databaseUrl);
  // A mistyped data directory must not become a new, empty tailnet.
  if (target.file && !existsSync(target.file)) {
    throw new ControlError(
      "no_database",
      400,
      `no database at ${target.file}: start the server there first (npm start), or point TRELLIS_DATA_DIR or DATABASE_URL at its database`,
    );
  }
  const db = await openDatabase(target);
  try {
    // Files this process may have created (SQLite's journal) are kept as private as the server keeps them.
    if (target.file) restrictDatabaseFiles(target.file);
    const pending = await pendingMigrations(db);
    if (pending.length > 0) {
      throw new ControlError(
        "database_outdated",
        409,
        `the database lacks ${pending.length} migration${pending.length === 1 ? "" : "s"} of this version (${pending.join(", ")}): start the server once (npm start) to apply them`,
      );
    }
  } catch (err) {
    await db.close();
    throw err;
  }
  return {
    config,
    db,
    events: new EventBus(log),
    log,
    policies: new PolicyStore(db),
    topology: () => readTopology(db),
    dnsDomain: async () => (await loadSettings(db, config)).dns.domain,
    close: () => db.close(),
  };
}
