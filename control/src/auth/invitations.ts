// Invitations: an admin invites an email with a role; the link (token in the
// URL fragment, only its SHA-256 stored) lets that person create a local
// account once, before it expires.
import { createHash, randomBytes } from "node:crypto";
import type { Database, Models } from "@trellis/db";
import { AcceptInvitationRequest, CreateInvitationRequest, Role, type InvitationInfo } from "@trellis/proto";
import { ControlError } from "../errors";
import { parseOr400 } from "../errors-util";
import { hashPassword } from "../password";
import { requireScope, type Actor } from "./actor";
import { audit, actorRef, userRef } from "../audit";

/** What these admin functions need of the admin context (admin/context.ts). */
type AdminDb = { readonly db: Database };

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function info(i: Models.Invitation): InvitationInfo {
  return {
    id: i.id,
    email: i.email,
    role: Role.catch("member").parse(i.role),
    createdBy: i.createdBy,
    createdAt: i.createdAt.toISOString(),
    expiresAt: i.expiresAt.toISOString(),
    acceptedAt: i.acceptedAt?.toISOString() ?? null,
  };
}

/** Create an invitation; returns the one-time token (the link is `<publicUrl>/invite#token=<token>`). */
export async function createInvitation(
  ctx: AdminDb,
  actor: Actor,
  body: unknown,
  now = new Date(),
): Promise<{ token: string; invitation: InvitationInfo }> {
  requireScope(actor, "users:write");
  const req = parseOr400(CreateInvitationRequest, body, "invalid invitation");
  const email = req.email.toLowerCase();
  if (await ctx.db.prisma.user.findUnique({ where: { email } })) {
    throw new ControlError("conflict", 409, `${email} already has an account`);
  }
  const token = randomBytes(24).toString("base64url");
  const row = await ctx.db.prisma.$transaction(async (tx) => {
    const created = await tx.invitation.create({
      data: {
        hash: sha256Hex(token),
        email,
        role: req.role,
        createdBy: actor.userId,
        expiresAt: new Date(now.getTime() + req.expiresInHours * 3_600_000),
      },
    });
    await audit(tx, {
      actor: actorRef(actor),
      action: "invitation.create",
      target: `invitation:${created.id}`,
      detail: { after: { email, role: req.role } },
    });
    return created;
  });
  return { token, invitation: info(row) };
}

/** Open (unaccepted) and recent invitations, newest first. */
export async function listInvitations(ctx: AdminDb, actor: Actor): Promise<InvitationInfo[]> {
  requireScope(actor, "users:read");
  const rows = await ctx.db.prisma.invitation.findMany({ orderBy: { createdAt: "desc" }, take: 200 });
  return rows.map(info);
}

export async function revokeInvitation(ctx: AdminDb, actor: Actor, id: string): Promise<void> {
  requireScope(actor, "users:write");
  await ctx.db.prisma.$transaction(async (tx) => {
    const row = await tx.invitation.findUnique({ where: { id } });
    if (!row) throw new ControlError("not_found", 404, `no invitation with id ${id}`);
    await tx.invitation.delete({ where: { id } });
    await audit(tx, {
      actor: actorRef(actor),
      action: "invitation.revoke",
      target: `invitation:${id}`,
      detail: { before: { email: row.email, role: row.role } },
    });
  });
}

/** What the invite page shows before the account is created. */
export async function peekInvitation(db: Database, token: string, now = new Date()) {
  const row = await db.prisma.invitation.findUnique({ where: { hash: sha256Hex(token) } });
  if (!row || row.acceptedAt || row.expiresAt <= now) return null;
  return { email: row.email, role: row.role };
}

/** The invitation when it can still be accepted; else 403 `bad_invitation`. */
function openInvitation(row: Models.Invitation | null, now: Date): Models.Invitation {
  if (!row || row.expiresAt <= now) {
    throw new ControlError("bad_invitation", 403, "this invitation link is not valid or has expired");
  }
  if (row.acceptedAt) throw new ControlError("bad_invitation", 403, "this invitation was already used");
  return row;
}

/**
 * Create the invited account. The invitation is consumed by a conditional
 * update in the same transaction, so one link creates one account.
 */
export async function acceptInvitation(db: Database, body: unknown, now = new Date()) {
  const req = parseOr400(AcceptInvitationRequest, body, "invalid form");
  // The link is checked before the KDF: no scrypt for a wrong or used link.
  openInvitation(await db.prisma.invitation.findUnique({ where: { hash: sha256Hex(req.token) } }), now);
  const passwordHash = await hashPassword(req.password);
  return db.prisma.$transaction(async (tx) => {
    const row = openInvitation(
      await tx.invitation.findUnique({ where: { hash: sha256Hex(req.token) } }),
      now,
    );
    const { count } = await tx.invitation.updateMany({
      where: { id: row.id, acceptedAt: null },
      data: { acceptedAt: now },
    });
    if (count !== 1) throw new ControlError("bad_invitation", 403, "this invitation was already used");
    if (await tx.user.findUnique({ where: { email: row.email } })) {
      throw new ControlError("conflict", 409, `${row.email} already has an account; log in instead`);
    }
    const user = await tx.user.create({
      data: { email: row.email, name: req.name, role: row.role, passwordHash },
      select: { id: true, email: true, name: true, role: true },
    });
    await audit(tx, {
      actor: userRef(user.id),
      action: "user.create",
      target: `user:${user.id}`,
      detail: { after: { ...user }, invitation: row.id },
    });
    return user;
  });
}
