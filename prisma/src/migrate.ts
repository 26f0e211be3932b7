import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { NO_FILTER, diffDatamodels, openSchemaEngine } from "./engine";
import { MigrationError } from "./errors";
import {
  MODELS_PATH,
  SNAPSHOT_PATH,
  migrationsDir,
  schemaFiles,
  type Provider,
  type SchemaFile,
} from "./schema";
import { parseDatabaseUrl, type DatabaseTarget } from "./url";
import type { Database } from "./index";
import { startTempPostgres } from "./testing/postgres";

const LOCKFILE = "migration_lock.toml";
const EMPTY_DIFF = /^\s*(--[^\n]*\n?\s*)*$/;

function migrationList(provider: Provider) {
  const baseDir = migrationsDir(provider);
  const names = existsSync(baseDir)
    ? readdirSync(baseDir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort()
    : [];
  const lockPath = join(baseDir, LOCKFILE);
  return {
    baseDir,
    lockfile: {
      path: LOCKFILE,
      content: existsSync(lockPath) ? readFileSync(lockPath, "utf8") : null,
    },
    shadowDbInitScript: "",
    migrationDirectories: names.map((name) => {
      const file = join(baseDir, name, "migration.sql");
      return {
        path: name,
        migrationFile: {
          path: "migration.sql",
          content: existsSync(file)
            ? { tag: "ok" as const, value: readFileSync(file, "utf8") }
            : { tag: "error" as const, value: `${file} is missing` },
        },
      };
    }),
  };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message.split("\n")[0]! : String(err);
}

/** Throw a MigrationError naming the fault when the database file or its directory cannot be written. */
function writable(file: string, dir: string, provider: string): void {
  for (const path of existsSync(file) ? [file, dir] : [dir]) {
    try {
      accessSync(path, constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === "EROFS" ? "is on a read-only filesystem" : `cannot be written (${code ?? "error"})`;
      throw new MigrationError(
        `the database ${path} ${why}: Trellis needs to write its database there`,
        provider,
        {
          cause: err,
        },
      );
    }
  }
}

/**
 * Apply every pending migration of the URL's provider. Each migration runs in
 * its own transaction and is recorded in `_prisma_migrations`, so a crash
 * mid-way leaves the database at the last complete migration.
 */
export async function migrate(url: string | DatabaseTarget): Promise<{ applied: string[] }> {
  const target = typeof url === "string" ? parseDatabaseUrl(url) : url;
  if (target.file && target.file !== ":memory:") {
    const dir = join(target.file, "..");
    mkdirSync(dir, { recursive: true });
    // SQLite on a read-only or full filesystem says only "disk I/O error": say which, and where.
    writable(target.file, dir, target.provider);
  }
  const { engine, close } = await openSchemaEngine(target);
  try {
    const out = await engine.applyMigrations({
      migrationsList: migrationList(target.provider),
      filters: NO_FILTER,
    });
    return { applied: out.appliedMigrationNames };
  } catch (err) {
    throw new MigrationError(`applying migrations failed: ${message(err)}`, target.provider, {
      cause: err,
    });
  } finally {
    await close();
  }
}

/**
 * The migrations of the database's provider not yet applied to it, by name,
 * read from `_prisma_migrations` without the schema engine. Applying takes
 * the database for itself (on SQLite it waits for every other connection to
 * close), so a process that shares the database with a running server —
 * trellis-server, the admin CLI — asks this instead, and leaves migrating to
 * the server.
 */
export async function pendingMigrations(db: Database): Promise<string[]> {
  let applied: { migration_name: string }[];
  try {
    applied = await db.prisma.$queryRawUnsafe<{ migration_name: string }[]>(
      `SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
    );
  } catch (err) {
    // A database never migrated has no such table: everything is pending.
    if (/_prisma_migrations/.test(err instanceof Error ? err.message : String(err))) applied = [];
    else throw err;
  }
  const done = new Set(applied.map((r) => r.migration_name));
  return migrationList(db.target.provider)
    .migrationDirectories.map((d) => d.path)
    .filter((name) => !done.has(name));
}

/**
 * SQL that would bring the live database in line with the models, or null when
 * they agree. Used by tests to prove the committed migrations match the schema.
 */
export async function drift(url: string | DatabaseTarget): Promise<string | null> {
  const target = typeof url === "string" ? parseDatabaseUrl(url) : url;
  const { engine, files, close } = await openSchemaEngine(target);
  try {
    const result = await engine.diff({
      from: { tag: "schemaDatasource", files, configDir: migrationsDir(target.provider) },
      to: { tag: "schemaDatamodel", files },
      script: true,
      exitCode: null,
      filters: NO_FILTER,
    });
    const sql = result.stdout ?? "";
    return EMPTY_DIFF.test(sql) ? null : sql;
  } finally {
    await close();
  }
}

function withModels(provider: Provider, models: string): SchemaFile[] {
  return schemaFiles(provider).map((f) =>
    f.path.endsWith("models.prisma") ? { path: f.path, content: models } : f,
  );
}

/**
 * Write a new migration for every provider from the change between the models
 * snapshot (the models as of the newest migration) and the current models.
 * Needs no database: both sides are datamodels. Returns the folder name, or
 * null when the models have not changed.
 */
export async function createMigration(
  name: string,
  pgUrl?: string,
  now = new Date(),
): Promise<string | null> {
  if (!/^[a-z0-9_]{1,60}$/.test(name)) {
    throw new MigrationError("migration name must be 1-60 of [a-z0-9_]", "all");
  }
  const current = readFileSync(MODELS_PATH, "utf8");
  const previous = existsSync(SNAPSHOT_PATH) ? readFileSync(SNAPSHOT_PATH, "utf8") : null;
  const stamp = now
    .toISOString()
    .replace(/[-:TZ]/g, "")
    .slice(0, 14);
  const folder = `${stamp}_${name}`;
  const scripts = new Map<Provider, string>();
  // The PostgreSQL engine insists on a live connection even to diff two
  // datamodels; give it a throw-away server when none is named.
  const pg = pgUrl ? null : await startTempPostgres();
  try {
    for (const provider of ["sqlite", "postgresql"] as const) {
      const target: DatabaseTarget =
        provider === "sqlite"
          ? { provider, url: "file::memory:", file: ":memory:" }
          : { provider, url: pgUrl ?? pg!.url };
      const sql = await diffDatamodels(
        target,
        previous === null ? null : withModels(provider, previous),
        withModels(provider, current),
      );
      if (!EMPTY_DIFF.test(sql)) scripts.set(provider, sql);
    }
  } finally {
    pg?.stop();
  }
  if (scripts.size === 0) return null;
  for (const [provider, sql] of scripts) {
    const dir = join(migrationsDir(provider), folder);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "migration.sql"), sql);
    const lock = join(migrationsDir(provider), LOCKFILE);
    if (!existsSync(lock)) writeFileSync(lock, `provider = "${provider}"\n`);
  }
  writeFileSync(SNAPSHOT_PATH, current);
  return folder;
}
