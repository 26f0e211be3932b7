import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drift, migrate, openDatabase } from "./index";
import { postgresBinDir, startTempPostgres, type TempPostgres } from "./testing/postgres";

// The committed migrations must build, on an empty database of each provider,
// exactly the schema the models describe; and applying them twice is a no-op.
async function checkProvider(url: string) {
  const first = await migrate(url);
  expect(first.applied.length).toBeGreaterThan(0);
  expect(await migrate(url)).toEqual({ applied: [] });
  expect(await drift(url)).toBeNull();

  const db = await openDatabase(url);
  try {
    const user = await db.prisma.user.create({
      data: { email: "ada@example.com", name: "Ada", role: "admin" },
    });
    expect(user.id).toMatch(/^[0-9a-f-]{36}$/);
    await expect(
      db.prisma.user.create({ data: { email: "ada@example.com", name: "Other", role: "member" } }),
    ).rejects.toThrow(/Unique constraint/i);
    expect(await db.ping()).toBeGreaterThanOrEqual(0);
  } finally {
    await db.close();
  }
}

describe("migrations on SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "trellis-db-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("apply cleanly to a fresh file (creating its directory), idempotently, with no drift", async () => {
    await checkProvider(`file:${join(dir, "nested", "trellis.db")}`);
  });

  it("detect drift when the database lacks part of the schema", async () => {
    const url = `file:${join(dir, "drifted.db")}`;
    await migrate(url);
    const db = await openDatabase(url);
    await db.prisma.$executeRawUnsafe('DROP INDEX "AuditEvent_at_idx"');
    await db.close();
    expect(await drift(url)).toMatch(/CREATE INDEX "AuditEvent_at_idx"/);
  });
});

describe.skipIf(postgresBinDir() === null)("migrations on PostgreSQL", () => {
  let pg: TempPostgres;
  beforeAll(async () => {
    pg = await startTempPostgres();
  });
  afterAll(() => pg?.stop());

  it("apply cleanly to a fresh database, idempotently, with no drift", async () => {
    await checkProvider(pg.url);
  });
});
