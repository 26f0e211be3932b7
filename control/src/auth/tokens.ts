// API tokens: bearer credentials for the admin HTTP API. Like pre-auth keys,
// only a SHA-256 is stored and the token is shown once. A token acts as its
// user, within its scopes, and never beyond the user's current role.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Database, Models } from "@trellis/db";
import { CreateApiTokenRequest, Role, Scope, type ApiTokenInfo } from "@trellis/proto";
import { ControlError } from "../errors";
import { jsonList, parseOr400 } from "../errors-util";
import { ROLE_SCOPES, scopesFor, type Actor } from "./actor";
import { oidcRolesStale } from "./oidc";
import { audit, actorRef } from "../audit";

/** What these admin functions need of the admin context (admin/context.ts). */
type AdminDb = { readonly db: Database };

const TOKEN_RE = /^trellis-api-([0-9a-f]{12})-([A-Za-z0-9_-]{43})$/;
/** lastUsedAt is written at most this often per token. */
const TOUCH_EVERY_MS = 60_000;

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

function info(t: Models.ApiToken): ApiTokenInfo {
  return {
    id: t.id,
    prefix: `trellis-api-${t.prefix}`,
    description: t.description,
    scopes: jsonList(t.scopes).filter((s): s is Scope => Scope.safeParse(s).success),
    createdAt: t.createdAt.toISOString(),
    expiresAt: t.expiresAt.toISOString(),
    lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
    revokedAt: t.revokedAt?.toISOString() ?? null,
  };
}

/** Only a session may manage tokens: a token cannot list, mint or revoke tokens. */
function requireSession(actor: Actor): void {
  if (actor.via !== "session") {
    throw new ControlError("forbidden", 403, "API tokens are managed from a logged-in session only");
  }
}

export async function createApiToken(
  ctx: AdminDb,
  actor: Actor,
  body: unknown,
  now = new Date(),
): Promise<{ token: string; info: ApiTokenInfo }> {
  requireSession(actor);
  return mint(ctx, actor, { id: actor.userId, role: actor.role, whose: "your" }, body, now);
}

/**
 * The local operator (trellis-server tokens create) mints a token for a user
 * they name: it acts as that user, within that user's role, exactly as one
 * the user made in the console; the audit log names the operator.
 */
export async function createApiTokenFor(
  ctx: AdminDb,
  actor: Actor,
  userId: string,
  body: unknown,
  now = new Date(),
): Promise<{ token: string; info: ApiTokenInfo }> {
  if (actor.via !== "local") {
    throw new ControlError("forbidden", 403, "only the local operator mints API tokens for another user");
  }
  const user = await ctx.db.prisma.user.findUnique({ where: { id: userId } });
  if (!user) throw new ControlError("not_found", 404, `no user with id ${userId}`);
  const role = Role.safeParse(user.role);
  if (!role.success) throw new ControlError("conflict", 409, `${user.email} has no valid role`);
  return mint(ctx, actor, { id: user.id, role: role.data, whose: `${user.email}'s` }, body, now);
}

/** Create a token owned by `owner`, with scopes within the owner's role; audited as `actor`'s doing. */
async function mint(
  ctx: AdminDb,
  actor: Actor,
  owner: { id: string; role: Role; whose: string },
  body: unknown,
  now: Date,
): Promise<{ token: string; info: ApiTokenInfo }> {
  const req = parseOr400(CreateApiTokenRequest, body, "invalid API token request");
  const beyond = req.scopes.filter((s) => !ROLE_SCOPES[owner.role].includes(s));
  if (beyond.length) {
    throw new ControlError(
      "forbidden",
      403,
      `${owner.whose} role (${owner.role}) cannot grant ${beyond.join(", ")}`,
    );
  }
  const prefix = randomBytes(6).toString("hex");
  const token = `trellis-api-${prefix}-${randomBytes(32).toString("base64url")}`;
  const row = await ctx.db.prisma.$transaction(async (tx) => {
    const created = await tx.apiToken.create({
      data: {
        prefix,
        hash: sha256(token).toString("hex"),
        userId: owner.id,
        description: req.description,
        scopes: JSON.stringify([...new Set(req.scopes)].sort()),
        expiresAt: new Date(now.getTime() + req.expiresInDays * 86_400_000),
      },
    });
    await audit(tx, {
      actor: actorRef(actor),
      action: "apitoken.create",
      target: `apitoken:${created.id}`,
      detail: { after: info(created), ...(owner.id !== actor.userId ? { userId: owner.id } : {}) },
    });
    return created;
  });
  return { token, info: info(row) };
}

/** The caller's own tokens, newest first (from a session only, as documented: a token does not list tokens). */
export async function listApiTokens(ctx: AdminDb, actor: Actor): Promise<ApiTokenInfo[]> {
  requireSession(actor);
  const rows = await ctx.db.prisma.apiToken.findMany({
    where: { userId: actor.userId },
    orderBy: { createdAt: "desc" },
  });
  return rows.map(info);
}

export async function revokeApiToken(ctx: AdminDb, actor: Actor, id: string, now = new Date()) {
  requireSession(actor);
  return ctx.db.prisma.$transaction(async (tx) => {
    const row = await tx.apiToken.findUnique({ where: { id } });
    // Admins may revoke anyone's token; others only their own. Others' ids are 404.
    if (!row || (row.userId !== actor.userId && actor.role !== "admin")) {
      throw new ControlError("not_found", 404, `no API token with id ${id}`);
    }
    if (row.revokedAt) return info(row);
    const updated = await tx.apiToken.update({ where: { id }, data: { revokedAt: now } });
    await audit(tx, {
      actor: actorRef(actor),
      action: "apitoken.revoke",
      target: `apitoken:${id}`,
      detail: { before: info(row), after: info(updated) },
    });
    return info(updated);
  });
}

/**
 * The actor of an `Authorization: Bearer trellis-api-…` token, or a 401
 * ControlError naming what is wrong (malformed, unknown, revoked, expired).
 */
export async function tokenActor(db: Database, token: string, now = new Date()): Promise<Actor> {
  const m = TOKEN_RE.exec(token);
  if (!m) throw new ControlError("bad_token", 401, "the API token is malformed");
  const row = await db.prisma.apiToken.findUnique({ where: { prefix: m[1]! }, include: { user: true } });
  if (!row || !timingSafeEqual(Buffer.from(row.hash, "hex"), sha256(token))) {
    throw new ControlError("bad_token", 401, "the API token is not valid");
  }
  if (row.revokedAt) throw new ControlError("bad_token", 401, "the API token was revoked");
  if (row.expiresAt <= now) throw new ControlError("bad_token", 401, "the API token has expired");
  const role = Role.safeParse(row.user.role);
  if (!role.success) throw new ControlError("bad_token", 401, "the token's user has no valid role");
  if (oidcRolesStale(row.user, now)) {
    throw new ControlError(
      "bad_token",
      401,
      "the token's owner signs in with single sign-on and has not for over a week: their role must be confirmed by logging in again",
    );
  }
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > TOUCH_EVERY_MS) {
    await db.prisma.apiToken.update({ where: { id: row.id }, data: { lastUsedAt: now } });
  }
  const scopes = jsonList(row.scopes).filter((s): s is Scope => Scope.safeParse(s).success);
  return {
    userId: row.user.id,
    email: row.user.email,
    name: row.user.name,
    role: role.data,
    via: "token",
    scopes: scopesFor(role.data, scopes),
    credentialId: row.id,
  };
}
