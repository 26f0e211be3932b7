// Web sessions. next-auth keeps its encrypted JWT in the cookie; that JWT
// carries only a Session row's id, so a session ends the moment its row is
// deleted (logout, user removed, role change does not need it: the role is
// read fresh on every request).
import { randomBytes } from "node:crypto";
import type { Database } from "@trellis/db";
import { Role } from "@trellis/proto";
import { scopesFor, type Actor } from "./actor";
import { oidcRolesStale } from "./oidc";

/** Sessions last 7 days from login. */
export const SESSION_TTL_MS = 7 * 24 * 3600 * 1000;
/** lastSeenAt is refreshed at most this often, so a page view is not a write. */
const TOUCH_EVERY_MS = 60_000;

export async function createSession(
  db: Database,
  userId: string,
  userAgent = "",
  now = new Date(),
): Promise<{ id: string; expiresAt: Date }> {
  const id = randomBytes(32).toString("base64url");
  const expiresAt = new Date(now.getTime() + SESSION_TTL_MS);
  await db.prisma.$transaction([
    db.prisma.session.create({ data: { id, userId, expiresAt, userAgent: userAgent.slice(0, 200) } }),
    db.prisma.user.update({ where: { id: userId }, data: { lastLoginAt: now } }),
  ]);
  return { id, expiresAt };
}

/** The actor of a live session, or null (unknown, expired, or its user is gone). */
export async function sessionActor(db: Database, sessionId: string, now = new Date()): Promise<Actor | null> {
  if (typeof sessionId !== "string" || sessionId.length === 0 || sessionId.length > 100) return null;
  const row = await db.prisma.session.findUnique({ where: { id: sessionId }, include: { user: true } });
  if (!row) return null;
  if (row.expiresAt <= now) {
    await db.prisma.session.deleteMany({ where: { id: sessionId } });
    return null;
  }
  const role = Role.safeParse(row.user.role);
  if (!role.success) return null;
  // A single-sign-on user's role is only as fresh as their last login (oidc.ts): log in again.
  if (oidcRolesStale(row.user, now)) return null;
  if (now.getTime() - row.lastSeenAt.getTime() > TOUCH_EVERY_MS) {
    await db.prisma.session.updateMany({ where: { id: sessionId }, data: { lastSeenAt: now } });
  }
  return {
    userId: row.user.id,
    email: row.user.email,
    name: row.user.name,
    role: role.data,
    via: "session",
    scopes: scopesFor(role.data),
    credentialId: row.id,
  };
}

export async function deleteSession(db: Database, sessionId: string): Promise<void> {
  await db.prisma.session.deleteMany({ where: { id: sessionId } });
}

/** Remove expired sessions (called periodically by the server). */
export async function pruneSessions(db: Database, now = new Date()): Promise<number> {
  const { count } = await db.prisma.session.deleteMany({ where: { expiresAt: { lte: now } } });
  return count;
}
