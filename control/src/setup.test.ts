import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { migrate, openDatabase, type Database } from "@trellis/db";
import { ControlError } from "./errors";
import { verifyPassword } from "./password";
import type * as PasswordModule from "./password";
import { completeSetup, isSetupComplete, issueSetupToken } from "./setup";

// Counts scrypt runs, to prove refusals come before the KDF.
const kdf = vi.hoisted(() => ({ runs: 0 }));
vi.mock("./password", async (importOriginal) => {
  const real = await importOriginal<typeof PasswordModule>();
  return {
    ...real,
    hashPassword: (password: string) => {
      kdf.runs += 1;
      return real.hashPassword(password);
    },
  };
});

let dir: string;
let db: Database;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "trellis-setup-"));
  const url = `file:${join(dir, "t.db")}`;
  await migrate(url);
  db = await openDatabase(url);
});
afterEach(async () => {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

const form = (token: string) => ({
  token,
  email: "Admin@Example.com",
  name: "Ada Admin",
  password: "a long enough password",
});

async function expectControlError(p: Promise<unknown>, status: number, code: string) {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(ControlError.is(err)).toBe(true);
  expect(err).toMatchObject({ status, code });
}

describe("first-run setup", () => {
  it("refuses a wrong token, and any request once set up (409), without running scrypt", async () => {
    const token = (await issueSetupToken(db))!;
    const before = kdf.runs;
    await expectControlError(completeSetup(db, form("w".repeat(32))), 403, "bad_setup_token");
    expect(kdf.runs).toBe(before);
    await completeSetup(db, form(token));
    const after = kdf.runs;
    await expectControlError(completeSetup(db, form(token)), 409, "setup_complete");
    await expectControlError(completeSetup(db, form("w".repeat(32))), 409, "setup_complete");
    expect(kdf.runs).toBe(after);
  });

  it("creates the first admin with the printed token, then closes", async () => {
    expect(await isSetupComplete(db)).toBe(false);
    const token = (await issueSetupToken(db))!;
    expect(token).toMatch(/^[\w-]{32}$/);

    const user = await completeSetup(db, form(token));
    expect(user).toMatchObject({ email: "admin@example.com", name: "Ada Admin", role: "admin" });
    const stored = await db.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
    expect(await verifyPassword("a long enough password", stored.passwordHash!)).toBe(true);
    expect(await isSetupComplete(db)).toBe(true);
    expect(await issueSetupToken(db)).toBeNull();

    const audit = await db.prisma.auditEvent.findMany();
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: `user:${user.id}`, action: "setup.complete" });
    expect(audit[0]!.detail).not.toContain("password");

    await expectControlError(completeSetup(db, form(token)), 409, "setup_complete");
  });

  it("audits a link a person asks for (trellis-server setup-link), not the one minted at each start", async () => {
    await issueSetupToken(db);
    expect(await db.prisma.auditEvent.count()).toBe(0);
    const token = (await issueSetupToken(db, "local"))!;
    expect(await db.prisma.auditEvent.findMany()).toMatchObject([
      { actor: "local", action: "setup.link", target: "setup:token" },
    ]);
    expect(JSON.stringify(await db.prisma.auditEvent.findMany())).not.toContain(token);
    await completeSetup(db, form(token));
    expect(await issueSetupToken(db, "local")).toBeNull();
    expect(await db.prisma.auditEvent.count({ where: { action: "setup.link" } })).toBe(1);
  });

  it("stores only a hash of the token", async () => {
    const token = (await issueSetupToken(db))!;
    const settings = await db.prisma.setting.findMany();
    expect(JSON.stringify(settings)).not.toContain(token);
  });

  it("refuses a wrong token and an old token after a restart issued a new one", async () => {
    const old = (await issueSetupToken(db))!;
    const fresh = (await issueSetupToken(db))!;
    await expectControlError(completeSetup(db, form("x".repeat(32))), 403, "bad_setup_token");
    await expectControlError(completeSetup(db, form(old)), 403, "bad_setup_token");
    expect(await db.prisma.user.count()).toBe(0);
    await completeSetup(db, form(fresh));
  });

  it("rejects a malformed form with per-field issues and changes nothing", async () => {
    const token = (await issueSetupToken(db))!;
    const err = await completeSetup(db, { token, email: "not-an-email", name: "", password: "short" }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ status: 400, code: "invalid_request" });
    const issues = (err as ControlError).issues!.sort((a, b) => a.path.localeCompare(b.path));
    // In plain words, as every request's errors are (not the schema library's "Too small: …").
    expect(issues).toEqual([
      { path: "email", message: "must be an email address" },
      { path: "name", message: "must not be empty" },
      { path: "password", message: "password must be at least 12 characters" },
    ]);
    expect(await db.prisma.user.count()).toBe(0);
    await completeSetup(db, form(token)); // the token still works
  });

  it("lets exactly one of two racing requests create the admin", async () => {
    const token = (await issueSetupToken(db))!;
    const results = await Promise.allSettled([
      completeSetup(db, form(token)),
      completeSetup(db, { ...form(token), email: "other@example.com" }),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(ControlError.is(failed.reason)).toBe(true);
    expect(await db.prisma.user.count()).toBe(1);
  });
});
