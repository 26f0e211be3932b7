import type { PrismaClient } from "../generated/sqlite/client";
import { parseDatabaseUrl, type DatabaseTarget } from "./url";

export type { PrismaClient } from "../generated/sqlite/client";
export type * as Models from "../generated/sqlite/client";
export { DatabaseConfigError, MigrationError } from "./errors";
export { migrate, drift, createMigration, pendingMigrations } from "./migrate";
export { parseDatabaseUrl, type DatabaseTarget } from "./url";
export { PROVIDERS, type Provider } from "./schema";

/** An open database: the Prisma client plus what health checks need to know. */
export interface Database {
  readonly target: DatabaseTarget;
  /**
   * Both providers are generated from the same models, so their clients have
   * the same model API; the SQLite client's type stands for both.
   */
  readonly prisma: PrismaClient;
  /** Round-trip a trivial query; resolves to the latency in milliseconds. */
  ping(): Promise<number>;
  close(): Promise<void>;
}

/**
 * Connect to the database named by `url` (see {@link parseDatabaseUrl}). The
 * caller applies migrations first with {@link migrate}.
 */
export async function openDatabase(url: string | DatabaseTarget): Promise<Database> {
  const target = typeof url === "string" ? parseDatabaseUrl(url) : url;
  const { adapterFactory } = await import("./url");
  let prisma: PrismaClient;
  if (target.provider === "sqlite") {
    const { PrismaClient: Client } = await import("../generated/sqlite/client");
    prisma = new Client({ adapter: adapterFactory(target) });
    // WAL lets readers proceed during writes; the busy timeout is set on the driver.
    await prisma.$queryRawUnsafe("PRAGMA journal_mode = WAL");
    await prisma.$executeRawUnsafe("PRAGMA foreign_keys = ON");
  } else {
    const { PrismaClient: Client } = await import("../generated/postgresql/client");
    prisma = new Client({ adapter: adapterFactory(target) }) as unknown as PrismaClient;
  }
  return {
    target,
    prisma,
    async ping() {
      const started = performance.now();
      await prisma.$queryRawUnsafe("SELECT 1");
      return performance.now() - started;
    },
    async close() {
      await prisma.$disconnect();
    },
  };
}
