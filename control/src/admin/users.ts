// Users in the admin API: listing, role changes, removal. Roles are read from
// the database on every request (nothing caches them), so a change takes
// effect at once. The tailnet always keeps at least one admin.
import type { Models } from "@trellis/db";
import { UpdateUserRequest, UserQuery, type Page, type Role, type UserInfo } from "@trellis/proto";
import { z } from "zod";
import { requireScope, type Actor } from "../auth/actor";
import { accountThrottles, clearAccountThrottle, type AccountThrottle } from "../auth/throttle";
import { ControlError } from "../errors";
import { jsonList, parseOr400 } from "../errors-util";
import type { AdminContext } from "./context";
import { retireNames } from "../names";
import { containsFilter, decodeCursor, pageOf } from "./paging";
import { audit, actorRef } from "../audit";
import { recordChange } from "../outbox";

type UserWithCount = Models.User & { _count: { nodes: number } };
type Tx = Parameters<Parameters<AdminContext["db"]["prisma"]["$transaction"]>[0]>[0];

const ROLES: readonly string[] = ["admin", "member", "auditor"];

function throttleInfo(t: AccountThrottle | undefined): UserInfo["loginThrottle"] {
  return t ? { until: t.until.toISOString(), addresses: t.addresses, accountWide: t.accountWide } : null;
}

function userInfo(u: UserWithCount, throttle?: AccountThrottle): UserInfo {
  return {
    id: u.id,
    email: u.email,
    name: u.name,
    role: (ROLES.includes(u.role) ? u.role : "member") as Role,
    groups: jsonList(u.groups),
    login: u.oidcSubject !== null ? "oidc" : "local",
    machines: u._count.nodes,
    createdAt: u.createdAt.toISOString(),
    lastLoginAt: u.lastLoginAt?.toISOString() ?? null,
    loginThrottle: throttleInfo(throttle),
  };
}

function notFound(id: string): ControlError {
  return new ControlError("not_found", 404, `no user with id ${id}`);
}

const withCount = { _count: { select: { nodes: true } } } as const;

/**
 * Run `fn` so that concurrent changes cannot both pass a check of the admin
 * count: serializable on PostgreSQL (retried on a serialization failure);
 * SQLite already runs one write transaction at a time.
 */
async function guarded<T>(ctx: AdminContext, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const pg = ctx.db.target.provider === "postgresql";
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.db.prisma.$transaction(fn, pg ? { isolationLevel: "Serializable" } : undefined);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (pg && code === "P2034" && attempt < 5) continue;
      throw err;
    }
  }
}

export async function listUsers(ctx: AdminContext, actor: Actor, query: unknown): Promise<Page<UserInfo>> {
  requireScope(actor, "users:read");
  const q = parseOr400(UserQuery, query, "invalid user query");
  const after = decodeCursor(q.cursor, z.tuple([z.string().max(254)]));
  const and: Models.Prisma.UserWhereInput[] = [];
  if (q.role !== undefined) and.push({ role: q.role });
  const text = q.q?.trim();
  if (text) {
    const c = containsFilter(ctx, text);
    and.push({ OR: [{ email: c }, { name: c }] });
  }
  const where: Models.Prisma.UserWhereInput = { AND: and };
  const [rows, total] = await Promise.all([
    ctx.db.prisma.user.findMany({
      where: after ? { AND: [...and, { email: { gt: after[0] } }] } : where,
      include: withCount,
      orderBy: { email: "asc" },
      take: q.limit + 1,
    }),
    ctx.db.prisma.user.count({ where }),
  ]);
  const throttles = await accountThrottles(
    ctx.db,
    rows.slice(0, q.limit).map((u) => u.email),
  );
  return pageOf(
    rows,
    q.limit,
    total,
    (u) => [u.email],
    (u) => userInfo(u, throttles.get(u.email)),
  );
}

export async function getUser(ctx: AdminContext, actor: Actor, id: string): Promise<UserInfo> {
  requireScope(actor, "users:read");
  const u = await ctx.db.prisma.user.findUnique({ where: { id }, include: withCount });
  if (!u) throw notFound(id);
  return userInfo(u, (await accountThrottles(ctx.db, [u.email])).get(u.email));
}

/**
 * Let a user sign in again at once from everywhere: every failure counted
 * against their account (per address and account-wide) is forgotten.
 * Audited when there was something to clear. Failures counted against an
 * address across accounts (password spraying) stay.
 */
export async function clearLoginThrottle(ctx: AdminContext, actor: Actor, id: string): Promise<UserInfo> {
  requireScope(actor, "users:write");
  await ctx.db.prisma.$transaction(async (tx) => {
    const u = await tx.user.findUnique({ where: { id }, select: { email: true } });
    if (!u) throw notFound(id);
    const { cleared, before } = await clearAccountThrottle(tx, u.email);
    if (cleared === 0) return;
    await audit(tx, {
      actor: actorRef(actor),
      action: "user.login_unthrottled",
      target: `user:${id}`,
      detail: {
        email: u.email,
        before: before && {
          until: before.until.toISOString(),
          addresses: before.addresses,
          accountWide: before.accountWide,
        },
      },
    });
  });
  return getUser(ctx, actor, id);
}

/** Change a user's role. Demoting the last admin is refused (409). */
export async function updateUser(
  ctx: AdminContext,
  actor: Actor,
  id: string,
  body: unknown,
): Promise<UserInfo> {
  requireScope(actor, "users:write");
  const req = parseOr400(UpdateUserRequest, body, "invalid user update");
  const result = await guarded(ctx, async (tx) => {
    const u = await tx.user.findUnique({ where: { id }, include: { nodes: { select: { id: true } } } });
    if (!u) throw notFound(id);
    if (u.role === req.role) return null;
    if (u.role === "admin") {
      const admins = await tx.user.count({ where: { role: "admin" } });
      if (admins <= 1) {
        throw new ControlError(
          "conflict",
          409,
          `${u.email} is the last admin; make someone else an admin first`,
        );
      }
    }
    await tx.user.update({ where: { id }, data: { role: req.role } });
    await audit(tx, {
      actor: actorRef(actor),
      action: "user.role",
      target: `user:${id}`,
      detail: { before: { role: u.role }, after: { role: req.role } },
    });
    return recordChange(ctx.db, tx, { type: "nodes", ids: u.nodes.map((n) => n.id) });
  });
  // Roles are part of the tailnet the policy sees (autogroup:admin, autogroup:auditor).
  if (result) ctx.events.publish(result);
  return getUser(ctx, actor, id);
}

/**
 * Revoke what a departing user handed out that would otherwise outlive them:
 * pre-auth keys they created (tagged keys belong to no user, so the cascade
 * misses them; an untagged one for someone else too) and invitations they
 * sent that are still open. Each is audited, with the removal as its cause.
 */
async function revokeGrantsOf(tx: Tx, actor: Actor, userId: string, now: Date): Promise<void> {
  const keys = await tx.preAuthKey.findMany({
    where: { createdBy: `user:${userId}`, revokedAt: null, expiresAt: { gt: now } },
    select: { id: true, prefix: true, tags: true },
  });
  if (keys.length) {
    await tx.preAuthKey.updateMany({
      where: { id: { in: keys.map((k) => k.id) } },
      data: { revokedAt: now },
    });
  }
  for (const k of keys) {
    await audit(tx, {
      actor: actorRef(actor),
      action: "preauthkey.revoke",
      target: `preauthkey:${k.id}`,
      detail: { prefix: k.prefix, tags: jsonList(k.tags), reason: `its creator user:${userId} was removed` },
    });
  }
  const invitations = await tx.invitation.findMany({
    where: { createdBy: userId, acceptedAt: null, expiresAt: { gt: now } },
    select: { id: true, email: true, role: true },
  });
  if (invitations.length) {
    await tx.invitation.deleteMany({ where: { id: { in: invitations.map((i) => i.id) } } });
  }
  for (const i of invitations) {
    await audit(tx, {
      actor: actorRef(actor),
      action: "invitation.revoke",
      target: `invitation:${i.id}`,
      detail: { before: { email: i.email, role: i.role }, reason: `its creator user:${userId} was removed` },
    });
  }
}

/**
 * Remove a user and, by cascade, their machines, sessions, API tokens and
 * pre-auth keys; the pre-auth keys and open invitations they created are
 * revoked too (revokeGrantsOf). You cannot remove yourself or the last
 * admin (409).
 */
export async function removeUser(ctx: AdminContext, actor: Actor, id: string): Promise<void> {
  requireScope(actor, "users:write");
  if (id === actor.userId) throw new ControlError("conflict", 409, "you cannot remove your own account");
  const change = await guarded(ctx, async (tx) => {
    const u = await tx.user.findUnique({
      where: { id },
      include: { nodes: { select: { id: true, name: true, userId: true, tags: true } } },
    });
    if (!u) throw notFound(id);
    if (u.role === "admin" && (await tx.user.count({ where: { role: "admin" } })) <= 1) {
      throw new ControlError("conflict", 409, `${u.email} is the last admin and cannot be removed`);
    }
    await revokeGrantsOf(tx, actor, id, new Date());
    // Their machines go by cascade: their names are kept for the removed user, i.e. for nobody, for 30 days.
    await retireNames(tx, u.nodes);
    await tx.user.delete({ where: { id } });
    await audit(tx, {
      actor: actorRef(actor),
      action: "user.remove",
      target: `user:${id}`,
      detail: {
        before: {
          email: u.email,
          name: u.name,
          role: u.role,
          machines: u.nodes.map((n) => ({ id: n.id, name: n.name })),
        },
        after: null,
      },
    });
    return recordChange(ctx.db, tx, { type: "nodes", ids: u.nodes.map((n) => n.id) });
  });
  ctx.events.publish(change);
}
