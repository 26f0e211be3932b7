// Pre-auth keys: how servers join without a login. A key is shown once, at
// creation; the database keeps only its SHA-256 and a short public prefix
// used to find the row. Consumption is a conditional UPDATE inside the
// registration transaction, so a single-use key used by two racing
// registrations registers exactly one node.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Database, Models } from "@trellis/db";
import { CreatePreAuthKeyRequest, type PreAuthKeyInfo } from "@trellis/proto";
import { ControlError } from "./errors";
import { jsonList, parseOr400 } from "./errors-util";
import { audit, type AuditRef } from "./audit";

type Tx = Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0];

const KEY_RE = /^trellis-auth-([0-9a-f]{12})-([A-Za-z0-9_-]{43})$/;

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function info(k: Models.PreAuthKey): PreAuthKeyInfo {
  return {
    id: k.id,
    prefix: `trellis-auth-${k.prefix}`,
    reusable: k.reusable,
    ephemeral: k.ephemeral,
    tags: jsonList(k.tags),
    userId: k.userId,
    createdAt: k.createdAt.toISOString(),
    expiresAt: k.expiresAt.toISOString(),
    revokedAt: k.revokedAt?.toISOString() ?? null,
    usedCount: k.usedCount,
    createdBy: k.createdBy,
    description: k.description,
    lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
  };
}

/**
 * Create a key. Returns the key text — the only time it exists outside the
 * caller's hands — and its listing. (The admin API's door is admin/keys.ts.)
 */
export async function createPreAuthKey(
  db: Database,
  body: unknown,
  actor: AuditRef,
  now = new Date(),
): Promise<{ key: string; info: PreAuthKeyInfo }> {
  const req = parseOr400(CreatePreAuthKeyRequest, body, "invalid pre-auth key request");
  if (req.userId !== undefined && !(await db.prisma.user.findUnique({ where: { id: req.userId } }))) {
    throw new ControlError("unknown_user", 400, `no user with id ${req.userId}`);
  }
  // 48 bits of prefix only make lookups unique (a collision fails the insert);
  // the 256-bit secret is what authenticates.
  const prefix = randomBytes(6).toString("hex");
  const key = `trellis-auth-${prefix}-${randomBytes(32).toString("base64url")}`;
  const row = await db.prisma.$transaction(async (tx) => {
    const created = await tx.preAuthKey.create({
      data: {
        prefix,
        hash: sha256Hex(key),
        reusable: req.reusable,
        ephemeral: req.ephemeral,
        tags: JSON.stringify([...new Set(req.tags)].sort()),
        userId: req.userId ?? null,
        expiresAt: new Date(now.getTime() + req.expiresInSeconds * 1000),
        createdBy: actor,
        description: req.description,
      },
    });
    await audit(tx, {
      actor: actor,
      action: "preauthkey.create",
      target: `preauthkey:${created.id}`,
      detail: { after: { ...info(created) } },
    });
    return created;
  });
  return { key, info: info(row) };
}

export async function listPreAuthKeys(db: Database): Promise<PreAuthKeyInfo[]> {
  const rows = await db.prisma.preAuthKey.findMany({ orderBy: { createdAt: "desc" } });
  return rows.map(info);
}

export async function revokePreAuthKey(db: Database, id: string, actor: AuditRef, now = new Date()) {
  return db.prisma.$transaction(async (tx) => {
    const row = await tx.preAuthKey.findUnique({ where: { id } });
    if (!row) throw new ControlError("not_found", 404, `no pre-auth key with id ${id}`);
    if (row.revokedAt) return info(row);
    const updated = await tx.preAuthKey.update({ where: { id }, data: { revokedAt: now } });
    await audit(tx, { actor: actor, action: "preauthkey.revoke", target: `preauthkey:${id}` });
    return info(updated);
  });
}

/** What a consumed key gives the node it registers. */
export interface KeyGrant {
  id: string;
  tags: string[];
  userId: string | null;
  ephemeral: boolean;
}

function refused(message: string): ControlError {
  return new ControlError("invalid_preauth_key", 401, message);
}

/**
 * Check and use a key inside the registration transaction. The row is found
 * by prefix and the hash compared in constant time; its state is revealed
 * (expired, revoked, used) only to a caller who presented the whole key.
 */
export async function consumePreAuthKey(tx: Tx, key: string, now: Date): Promise<KeyGrant> {
  const m = KEY_RE.exec(key);
  if (!m) throw refused("the pre-auth key is not in the form trellis-auth-…");
  const row = await tx.preAuthKey.findUnique({ where: { prefix: m[1]! } });
  const given = Buffer.from(sha256Hex(key), "hex");
  const stored = Buffer.from(row?.hash ?? "00".repeat(32), "hex");
  if (!row || stored.length !== 32 || !timingSafeEqual(given, stored)) {
    throw refused("the pre-auth key is not recognised");
  }
  if (row.revokedAt) throw refused("the pre-auth key was revoked");
  if (row.expiresAt <= now) throw refused("the pre-auth key has expired");
  // Conditional update: on PostgreSQL the row lock makes a racing transaction
  // re-check `usedCount` after this one commits; on SQLite writers are serialised.
  const used = await tx.preAuthKey.updateMany({
    where: {
      id: row.id,
      revokedAt: null,
      expiresAt: { gt: now },
      ...(row.reusable ? {} : { usedCount: 0 }),
    },
    data: { usedCount: { increment: 1 }, lastUsedAt: now },
  });
  if (used.count !== 1) throw refused("the pre-auth key was already used");
  return { id: row.id, tags: jsonList(row.tags), userId: row.userId, ephemeral: row.ephemeral };
}
