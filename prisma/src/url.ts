import { isAbsolute, resolve } from "node:path";
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaPg } from "@prisma/adapter-pg";
import type { SqlMigrationAwareDriverAdapterFactory } from "@prisma/driver-adapter-utils";
import { DatabaseConfigError } from "./errors";
import type { Provider } from "./schema";

/** A parsed `DATABASE_URL`: which provider it selects and the normalised URL. */
export interface DatabaseTarget {
  provider: Provider;
  /** For SQLite, `file:` plus an absolute path; for PostgreSQL, the URL as given. */
  url: string;
  /** For SQLite, the absolute path of the database file. */
  file?: string;
}

/**
 * Parse a database URL. `file:` (or a bare path) selects SQLite, `postgres://` or
 * `postgresql://` selects PostgreSQL; anything else is refused with a clear error.
 * Relative SQLite paths resolve against `cwd`.
 */
export function parseDatabaseUrl(raw: string, cwd = process.cwd()): DatabaseTarget {
  const url = raw.trim();
  if (url === "") throw new DatabaseConfigError("DATABASE_URL is empty");
  if (/^postgres(ql)?:\/\//i.test(url)) {
    let parsed: URL | null = null;
    try {
      parsed = new URL(url);
    } catch {
      // reported below
    }
    if (!parsed || (parsed.hostname === "" && !parsed.searchParams.has("host"))) {
      throw new DatabaseConfigError("DATABASE_URL is not a valid postgres:// URL (it names no host)");
    }
    return { provider: "postgresql", url };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.startsWith("file:")) {
    const scheme = url.slice(0, url.indexOf(":"));
    throw new DatabaseConfigError(
      `DATABASE_URL scheme "${scheme}" is not supported: use file:<path> (SQLite) or postgres://… (PostgreSQL)`,
    );
  }
  const path = url.startsWith("file:") ? url.slice("file:".length).replace(/^\/\/(?=\/)/, "") : url;
  if (path === "" || path.includes("?")) {
    throw new DatabaseConfigError(`DATABASE_URL "${url}" does not name a SQLite file`);
  }
  const file = isAbsolute(path) ? path : resolve(cwd, path);
  return { provider: "sqlite", url: `file:${file}`, file };
}

/** The Prisma driver adapter factory for a target (used by the client and by migrations). */
export function adapterFactory(target: DatabaseTarget): SqlMigrationAwareDriverAdapterFactory {
  if (target.provider === "sqlite") {
    return new PrismaBetterSqlite3({ url: target.url, timeout: 5000 });
  }
  return new PrismaPg({ connectionString: target.url, max: 10 });
}
