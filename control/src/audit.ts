// The audit log's one writer. Every entry names its actor and target in the
// same form — `user:<id>`, `node:<id>`, `system` (the server acting on its
// own: expiry, auto-approval, identity-provider sync) or `local` (an
// operator at the server's command line) — and its action from one
// vocabulary. In code and in stored actions a machine is a "node"; the
// console calls it a machine when it shows them.
import type { Database } from "@trellis/db";
import type { Actor } from "./auth/actor";

export const AUDIT_ACTIONS = [
  "setup.link",
  "setup.complete",
  "user.create",
  "user.role",
  "user.remove",
  "user.link_oidc",
  "user.sync_oidc",
  "user.login_throttled",
  "user.login_unthrottled",
  "address.login_throttled",
  "invitation.create",
  "invitation.revoke",
  "apitoken.create",
  "apitoken.revoke",
  "preauthkey.create",
  "preauthkey.revoke",
  "node.register",
  "node.reauthenticate",
  "node.rotate_key",
  "node.logout",
  "node.rename",
  "node.tags",
  "node.key_expiry",
  "node.authorize",
  "node.expire",
  "node.remove",
  "node.ephemeral_removed",
  "node.routes",
  "node.routes_auto_approved",
  "policy.update",
  "policy.restore",
  "settings.update",
  "dns.update",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Who acted: a user, a node, the server itself, or the local operator. */
export type AuditRef = `user:${string}` | `node:${string}` | "system" | "local";

export const userRef = (id: string): `user:${string}` => `user:${id}`;
export const nodeRef = (id: string): `node:${string}` => `node:${id}`;

/** How an acting person is recorded: the local operator as `local`, anyone else as their user. */
export function actorRef(actor: Actor): AuditRef {
  return actor.via === "local" ? "local" : userRef(actor.userId);
}

type Tx = Pick<Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0], "auditEvent">;

export interface AuditEntry {
  actor: AuditRef;
  action: AuditAction;
  /** What was acted on, as `<kind>:<id>` (`node:…`, `user:…`, `policy:3`, `settings:tailnet`, `address:203.0.113.7`, …). */
  target: string;
  /** Before/after or other context; stored as JSON. */
  detail?: Record<string, unknown>;
}

/** Record one entry, in the caller's transaction (so the entry exists exactly when the change does). */
export async function audit(tx: Tx, entry: AuditEntry): Promise<void> {
  await tx.auditEvent.create({
    data: {
      actor: entry.actor,
      action: entry.action,
      target: entry.target,
      detail: JSON.stringify(entry.detail ?? {}),
    },
  });
}
