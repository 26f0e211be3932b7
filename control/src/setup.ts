import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Database } from "@trellis/db";
import { SetupRequest } from "@trellis/proto";
import { ControlError } from "./errors";
import { parseOr400 } from "./errors-util";
import { hashPassword } from "./password";
import { audit, userRef, type AuditRef } from "./audit";

const TOKEN_KEY = "setup.token_sha256";

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** True once at least one admin exists. */
export async function isSetupComplete(db: Database): Promise<boolean> {
  return (await db.prisma.user.count({ where: { role: "admin" } })) > 0;
}

/**
 * On a tailnet with no admin yet, mint a fresh one-time setup token and store
 * only its hash (replacing any earlier one). Returns the token to print, or
 * null when setup is already complete. There is no default password: whoever
 * can read the server's console creates the first admin. The server mints
 * one at each start; `actor` is given when a person asks for a new one
 * (trellis-server setup-link), which is audited as `setup.link`.
 */
export async function issueSetupToken(db: Database, actor?: AuditRef): Promise<string | null> {
  const token = randomBytes(24).toString("base64url");
  const value = sha256(token).toString("hex");
  const issued = await db.prisma.$transaction(async (tx) => {
    if ((await tx.user.count({ where: { role: "admin" } })) > 0) return false;
    await tx.setting.upsert({
      where: { key: TOKEN_KEY },
      create: { key: TOKEN_KEY, value },
      update: { value },
    });
    if (actor) await audit(tx, { actor, action: "setup.link", target: "setup:token" });
    return true;
  });
  return issued ? token : null;
}

type Reader = Pick<Database["prisma"], "user" | "setting">;

/** 409 once an admin exists; 403 unless `token` matches the stored hash (constant-time). */
async function checkSetupToken(db: Reader, token: string): Promise<void> {
  if ((await db.user.count({ where: { role: "admin" } })) > 0) {
    throw new ControlError("setup_complete", 409, "setup is already complete; log in instead");
  }
  const stored = await db.setting.findUnique({ where: { key: TOKEN_KEY } });
  const expected = Buffer.from(stored?.value ?? "", "hex");
  const given = sha256(token);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    throw new ControlError(
      "bad_setup_token",
      403,
      "the setup token is wrong or expired; use the link printed by the server at its last start",
    );
  }
}

/**
 * Create the first admin. The token must match the stored hash (compared in
 * constant time), checked before the password is hashed; it is consumed in
 * the same transaction that creates the user, so two racing requests cannot
 * both succeed.
 */
export async function completeSetup(
  db: Database,
  body: unknown,
): Promise<{ id: string; email: string; name: string; role: string }> {
  // Through the one parser of requests, whose messages are in plain words.
  const req = parseOr400(SetupRequest, body, "the setup form has errors");
  // Refuse before the KDF: ~100 ms of scrypt and 32 MiB per request is not
  // spent on anyone without the token, nor on anyone once setup is over.
  await checkSetupToken(db.prisma, req.token);
  const passwordHash = await hashPassword(req.password);
  return db.prisma.$transaction(async (tx) => {
    // Again inside the transaction: a racing request may have finished setup meanwhile.
    await checkSetupToken(tx, req.token);
    // Consume the token first: a concurrent request that read the same token
    // fails on this delete instead of creating a second admin.
    await tx.setting.delete({ where: { key: TOKEN_KEY } });
    const user = await tx.user.create({
      data: { email: req.email.toLowerCase(), name: req.name, role: "admin", passwordHash },
      select: { id: true, email: true, name: true, role: true },
    });
    await audit(tx, {
      actor: userRef(user.id),
      action: "setup.complete",
      target: `user:${user.id}`,
      detail: { after: { email: user.email, name: user.name, role: user.role } },
    });
    return user;
  });
}
