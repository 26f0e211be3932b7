import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The database providers Trellis supports: one schema folder and one migration history each. */
export type Provider = "sqlite" | "postgresql";
export const PROVIDERS: readonly Provider[] = ["sqlite", "postgresql"];

/** Root of the `prisma/` workspace. */
export const PRISMA_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface SchemaFile {
  path: string;
  content: string;
}

/** The schema files of one provider: its datasource block plus the shared models. */
export function schemaFiles(provider: Provider): SchemaFile[] {
  const dir = join(PRISMA_DIR, provider);
  return readdirSync(dir)
    .filter((f) => f.endsWith(".prisma"))
    .sort()
    .map((f) => ({ path: join(dir, f), content: readFileSync(join(dir, f), "utf8") }));
}

/** Directory holding the migration history of one provider. */
export function migrationsDir(provider: Provider): string {
  return join(PRISMA_DIR, "migrations", provider);
}

/** The models as they stood when the newest migration was written (base for the next diff). */
export const SNAPSHOT_PATH = join(PRISMA_DIR, "migrations", "models.snapshot.prisma");
export const MODELS_PATH = join(PRISMA_DIR, "schema", "models.prisma");
