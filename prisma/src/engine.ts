/// <reference lib="dom" />
// (for the WebAssembly namespace: @types/node 20 does not declare it)
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as bg from "@prisma/schema-engine-wasm/schema_engine_bg";
import {
  bindMigrationAwareSqlAdapterFactory,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
} from "@prisma/driver-adapter-utils";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { adapterFactory, type DatabaseTarget } from "./url";
import { schemaFiles, type SchemaFile } from "./schema";

// Prisma's CLI runs migrations with a native schema engine that it downloads on
// first use, which cannot work offline. The same engine ships on npm compiled to
// WebAssembly and talks to the database through a driver adapter, so Trellis
// drives it directly (see docs/database.md).

export type SchemaEngine = bg.SchemaEngine;
export const NO_FILTER: bg.SchemaFilter = { externalTables: [], externalEnums: [] };

let instantiated = false;
function instantiate(): void {
  if (instantiated) return;
  const require = createRequire(import.meta.url);
  const wasmPath = require.resolve("@prisma/schema-engine-wasm/schema_engine_bg").replace(/\.js$/, ".wasm");
  const module = new WebAssembly.Module(readFileSync(wasmPath));
  const instance = new WebAssembly.Instance(module, {
    "./schema_engine_bg.js": bg as unknown as WebAssembly.ModuleImports,
  });
  (bg as unknown as { __wbg_set_wasm(exports: WebAssembly.Exports): void }).__wbg_set_wasm(instance.exports);
  (instance.exports as { __wbindgen_start(): void }).__wbindgen_start();
  instantiated = true;
}

/**
 * PostgreSQL adapter for the schema engine. The engine's catalog queries return
 * columns of PostgreSQL's internal one-byte `"char"` type (OID 18), which the
 * pg driver adapter has no mapping for; they carry single characters, so they
 * are reported as text (OID 25), which is how the native engine reads them.
 */
function schemaEnginePgFactory(url: string): SqlMigrationAwareDriverAdapterFactory {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<pg.QueryResult>;
  (pool as { query: unknown }).query = async (...args: unknown[]) => {
    const result = await query(...args);
    for (const field of result.fields ?? []) {
      if (field.dataTypeID === 18) field.dataTypeID = 25;
    }
    return result;
  };
  return new PrismaPg(pool, { disposeExternalPool: true });
}

/** A schema engine plus the connections it opened, closed together. */
export interface OpenEngine {
  engine: SchemaEngine;
  files: SchemaFile[];
  close(): Promise<void>;
}

/** Open a schema engine connected to `target`, loaded with that provider's schema. */
export async function openSchemaEngine(target: DatabaseTarget): Promise<OpenEngine> {
  instantiate();
  const files = schemaFiles(target.provider);
  const inner = target.provider === "postgresql" ? schemaEnginePgFactory(target.url) : adapterFactory(target);
  // The engine does not dispose the connections it asks for; track them so
  // that closing the engine releases SQLite handles and PostgreSQL pools.
  const opened: SqlDriverAdapter[] = [];
  const tracked: SqlMigrationAwareDriverAdapterFactory = {
    provider: inner.provider,
    adapterName: inner.adapterName,
    connect: async () => {
      const adapter = await inner.connect();
      opened.push(adapter);
      return adapter;
    },
    connectToShadowDb: async () => {
      const adapter = await inner.connectToShadowDb();
      opened.push(adapter);
      return adapter;
    },
  };
  const engine = await bg.SchemaEngine.new(
    { datamodels: files.map((f) => [f.path, f.content] as [string, string]) },
    () => {
      // The engine's own tracing lines; Trellis reports outcomes instead.
    },
    bindMigrationAwareSqlAdapterFactory(tracked),
  );
  return {
    engine,
    files,
    async close() {
      engine.free();
      await Promise.all(opened.splice(0).map((a) => a.dispose()));
    },
  };
}

/** Diff two datamodels without touching any database (used to write new migrations). */
export async function diffDatamodels(
  target: DatabaseTarget,
  from: SchemaFile[] | null,
  to: SchemaFile[],
): Promise<string> {
  const { engine, close } = await openSchemaEngine(target);
  try {
    const result = await engine.diff({
      from: from === null ? { tag: "empty" } : { tag: "schemaDatamodel", files: from },
      to: { tag: "schemaDatamodel", files: to },
      script: true,
      exitCode: null,
      filters: NO_FILTER,
    });
    return result.stdout ?? "";
  } finally {
    await close();
  }
}
