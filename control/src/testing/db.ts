// Test databases for control's integration tests: a fresh, migrated SQLite
// file per test, and a fresh database per test on one throw-away PostgreSQL
// server per file (skipped when PostgreSQL's binaries are not installed).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { migrate, openDatabase, type Database } from "@trellis/db";
import { postgresBinDir, startTempPostgres, type TempPostgres } from "@trellis/db/testing/postgres";

export interface TestDatabases {
  provider: "sqlite" | "postgresql";
  /** A new migrated database; closed and removed after the file's tests. */
  open(): Promise<Database>;
  /** URL of a new, empty database (for code that migrates and connects itself). */
  url(): string;
}

/** Providers to run each suite against: SQLite always, PostgreSQL when installed. */
export const PROVIDERS: { provider: "sqlite" | "postgresql"; skip: boolean }[] = [
  { provider: "sqlite", skip: false },
  { provider: "postgresql", skip: postgresBinDir() === null },
];

/** Call inside a `describe` block: registers hooks and returns a factory of fresh databases. */
export function testDatabases(provider: "sqlite" | "postgresql"): TestDatabases {
  let dir: string;
  let pg: TempPostgres | undefined;
  let n = 0;
  const open: Database[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "trellis-control-"));
    if (provider === "postgresql") pg = await startTempPostgres();
  });
  afterAll(async () => {
    await Promise.all(open.map((d) => d.close().catch(() => undefined)));
    pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const fresh = () => {
    n += 1;
    return provider === "sqlite" ? `file:${join(dir, `t${n}.db`)}` : pg!.createDatabase(`t${n}`);
  };
  return {
    provider,
    url: fresh,
    async open() {
      const url = fresh();
      await migrate(url);
      const db = await openDatabase(url);
      open.push(db);
      return db;
    },
  };
}
