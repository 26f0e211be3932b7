// Users who log in through an OpenID Connect provider. The first login creates
// the account, and only from an email the provider says it verified
// (email_verified: true); later logins find it by issuer and subject (never
// by email alone, which the provider may let users change). An email that
// already has an account — a local one, the setup admin's included — is
// never taken over by a login: it is refused with `account_exists`, since
// whoever controls that address at the provider is not thereby the
// account's owner. Roles follow the groups claim when role groups are
// configured, re-read at every login; rights the provider vouched for more
// than a week ago are not honoured (oidcRolesStale): such a user's sessions
// and API tokens stop until they log in again, so a user the provider has
// disabled, or moved out of an admin group, keeps their old role at most a week.
import type { Database } from "@trellis/db";
import type { Role } from "@trellis/proto";
import { ControlError } from "../errors";
import { audit, userRef } from "../audit";
import type { ControlEvent } from "../events";
import { recordChange } from "../outbox";

/** How long a role read from the provider is honoured without the user logging in again. */
export const OIDC_ROLE_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

/** Whether `user` signs in through OIDC and the provider last vouched for their groups too long ago. */
export function oidcRolesStale(
  user: { oidcSubject?: string | null; oidcSyncedAt?: Date | null },
  now = new Date(),
): boolean {
  if (!user.oidcSubject) return false;
  return !user.oidcSyncedAt || now.getTime() - user.oidcSyncedAt.getTime() > OIDC_ROLE_MAX_AGE_MS;
}

export interface OidcSettings {
  issuer: string;
  /** Provider groups whose members are admins / auditors; everyone else is a member. */
  adminGroups: string[];
  auditorGroups: string[];
  /** When non-empty, only members of these groups may log in. */
  allowedGroups: string[];
}

export interface OidcProfile {
  sub: string;
  email?: string | null;
  emailVerified?: boolean;
  name?: string | null;
  groups?: string[];
}

function roleFromGroups(groups: string[], s: OidcSettings): Role | null {
  if (s.adminGroups.some((g) => groups.includes(g))) return "admin";
  if (s.auditorGroups.some((g) => groups.includes(g))) return "auditor";
  return s.adminGroups.length || s.auditorGroups.length ? "member" : null;
}

/**
 * Create or update the Trellis user of an OIDC login; returns its id. A
 * role or groups that changed change what the policy grants the user's
 * machines (group:…, autogroup:admin): that change goes to `publish`.
 */
export async function upsertOidcUser(
  db: Database,
  s: OidcSettings,
  p: OidcProfile,
  publish: (e: ControlEvent) => void = () => undefined,
): Promise<string> {
  const groups = [...new Set((p.groups ?? []).filter((g) => typeof g === "string" && g.length <= 200))]
    .slice(0, 100)
    .sort();
  if (s.allowedGroups.length && !s.allowedGroups.some((g) => groups.includes(g))) {
    throw new ControlError("not_allowed", 403, "your account is not in a group allowed to use this tailnet");
  }
  const email = p.email?.trim().toLowerCase();
  if (!email) throw new ControlError("no_email", 403, "the identity provider did not return an email");
  const subject = `${s.issuer}#${p.sub}`;
  const mapped = roleFromGroups(groups, s);
  const { id, change } = await db.prisma.$transaction(async (tx) => {
    let user = await tx.user.findUnique({ where: { oidcSubject: subject } });
    if (!user) {
      if (p.emailVerified !== true) {
        throw new ControlError(
          "email_unverified",
          403,
          `the identity provider has not verified ${email}; verify it there, then log in again`,
        );
      }
      if (await tx.user.findUnique({ where: { email }, select: { id: true } })) {
        throw new ControlError(
          "account_exists",
          409,
          `an account for ${email} already exists; log in with its password (single sign-on is not linked to existing accounts)`,
        );
      }
      // Admin only through a configured admin group, never by being first:
      // the first admin comes from the setup token (setup.ts), so whoever the
      // provider lets in before setup is finished is a member.
      const role: Role = mapped ?? "member";
      user = await tx.user.create({
        data: {
          email,
          name: p.name?.trim().slice(0, 100) || email,
          role,
          oidcSubject: subject,
          oidcSyncedAt: new Date(),
          groups: JSON.stringify(groups),
        },
      });
      await audit(tx, {
        actor: userRef(user.id),
        action: "user.create",
        target: `user:${user.id}`,
        detail: { after: { email, role, login: "oidc", groups } },
      });
      return { id: user.id, change: null };
    }
    const data: { groups: string; oidcSyncedAt: Date; role?: string; name?: string } = {
      groups: JSON.stringify(groups),
      oidcSyncedAt: new Date(),
    };
    if (mapped && mapped !== user.role) data.role = mapped;
    const updated = await tx.user.update({ where: { id: user.id }, data });
    if (data.role || updated.groups !== user.groups) {
      await audit(tx, {
        actor: "system",
        action: "user.sync_oidc",
        target: `user:${user.id}`,
        detail: {
          before: { role: user.role, groups: JSON.parse(user.groups) as unknown },
          after: { role: updated.role, groups },
        },
      });
      const nodes = await tx.node.findMany({ where: { userId: user.id }, select: { id: true } });
      if (nodes.length) {
        const change = await recordChange(db, tx, { type: "nodes", ids: nodes.map((n) => n.id) });
        return { id: user.id, change };
      }
    }
    return { id: user.id, change: null };
  });
  if (change) publish(change);
  return id;
}
