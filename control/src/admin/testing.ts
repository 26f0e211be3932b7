// Test fixtures for the admin functions: an AdminContext over a test
// database that records what it publishes, users, actors and nodes.
import { randomBytes } from "node:crypto";
import { expect } from "vitest";
import type { Database, Models } from "@trellis/db";
import { createLogger } from "@trellis/log";
import type { Role, Scope } from "@trellis/proto";
import { scopesFor, type Actor } from "../auth/actor";
import { ControlError } from "../errors";
import { EventBus, type ControlEvent } from "../events";
import { readTopology } from "../netmap";
import type { AdminContext } from "./context";
import { sharedPolicyChecker } from "../policy-check/pool";
import { PolicyStore } from "../policy-store";

export const TEST_DOMAIN = "trellis.test";

export interface TestAdminContext extends AdminContext {
  /**
   * Every event published, in order, without its outbox number (set on
   * PostgreSQL only: the tests compare what changed, on either provider).
   */
  readonly published: ControlEvent[];
}

/**
 * An AdminContext over `db` whose topology is read fresh from the database
 * on every call; policies are checked in worker threads, as in the server.
 */
export function adminContext(db: Database): TestAdminContext {
  const events = new EventBus();
  const published: ControlEvent[] = [];
  events.subscribe((e) => {
    if (e.type === "signal" || e.seq === undefined) published.push(e);
    else {
      const { seq: _seq, ...rest } = e;
      published.push(rest);
    }
  });
  return {
    db,
    events,
    log: createLogger("test", "silent"),
    published,
    policies: new PolicyStore(db),
    policyCheck: sharedPolicyChecker(),
    topology: () => readTopology(db),
    dnsDomain: () => Promise.resolve(TEST_DOMAIN),
  };
}

let seq = 0;

export function createUser(
  db: Database,
  role: Role,
  email = `${role}${++seq}@example.com`,
  extra: Partial<Models.User> = {},
): Promise<Models.User> {
  return db.prisma.user.create({ data: { email, name: email.split("@")[0]!, role, ...extra } });
}

/** The actor a user's console session (or, with `tokenScopes`, an API token of theirs) becomes. */
export function actorOf(
  user: Pick<Models.User, "id" | "email" | "name" | "role">,
  tokenScopes?: Scope[],
): Actor {
  const role = user.role as Role;
  return {
    userId: user.id,
    email: user.email,
    name: user.name,
    role,
    via: tokenScopes ? "token" : "session",
    scopes: scopesFor(role, tokenScopes),
    credentialId: `cred-${user.id}`,
  };
}

export interface NodeOptions {
  userId?: string | null;
  tags?: string[];
  advertisedRoutes?: string[];
  approvedRoutes?: string[];
  authorized?: boolean;
  online?: boolean;
  expiresAt?: Date | null;
  hostname?: string;
}

let addr = 0;

/** A node row as registration would create it (unique addresses from a per-process counter). */
export function createNode(db: Database, name: string, opts: NodeOptions = {}): Promise<Models.Node> {
  const n = ++addr;
  const tags = opts.tags ?? [];
  return db.prisma.node.create({
    data: {
      nodeKey: `nodekey:${randomBytes(32).toString("hex")}`,
      name,
      hostname: opts.hostname ?? name,
      ipv4: `100.64.${n >> 8}.${n & 255}`,
      ipv6: `fd7a:115c:a1e0::${n.toString(16)}`,
      tags: JSON.stringify(tags),
      userId: tags.length > 0 ? null : (opts.userId ?? null),
      advertisedRoutes: JSON.stringify(opts.advertisedRoutes ?? []),
      approvedRoutes: JSON.stringify(opts.approvedRoutes ?? []),
      authorized: opts.authorized ?? true,
      online: opts.online ?? false,
      expiresAt:
        opts.expiresAt !== undefined
          ? opts.expiresAt
          : tags.length > 0
            ? null
            : new Date(Date.now() + 30 * 24 * 3600 * 1000),
    },
  });
}

/** The ControlError `p` rejects with (failing the test when it resolves or throws something else). */
export async function rejection(p: Promise<unknown>): Promise<ControlError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  // What the API answers: a ControlError, or a policy the engine refused (a 400).
  const known = ControlError.of(err);
  expect(known, `expected a ControlError, got ${String(err)}`).not.toBeNull();
  return known!;
}

/** Audit events with `action`, oldest first, detail parsed. */
export async function auditEvents(db: Database, action: string) {
  const rows = await db.prisma.auditEvent.findMany({ where: { action }, orderBy: { at: "asc" } });
  return rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
}
