// Who is making an admin API request, and what they may do. Roles grant
// scopes; an API token narrows them to the token's scopes (never widens).
// Members hold machines:read/write, but only over their own machines — the
// admin functions enforce that ownership (see admin/machines.ts).
import { Scope, type Role } from "@trellis/proto";
import { ControlError } from "../errors";

export interface Actor {
  userId: string;
  email: string;
  name: string;
  role: Role;
  /**
   * How the request authenticated: the console's session cookie, an API
   * token, or `local`: an operator at the server's own command line.
   */
  via: "session" | "token" | "local";
  /** Effective scopes: the role's, intersected with the token's. */
  scopes: ReadonlySet<Scope>;
  /** Session id or API token id, for audit context. */
  credentialId: string;
}

const ALL = Scope.options;
const READ = ALL.filter((s) => s.endsWith(":read"));

/** The scopes each role grants. */
export const ROLE_SCOPES: Record<Role, readonly Scope[]> = {
  admin: ALL,
  auditor: READ,
  member: ["machines:read", "machines:write"],
};

export function scopesFor(role: Role, tokenScopes?: readonly Scope[]): ReadonlySet<Scope> {
  const granted = ROLE_SCOPES[role];
  return new Set(tokenScopes ? granted.filter((s) => tokenScopes.includes(s)) : granted);
}

export function can(actor: Actor, scope: Scope): boolean {
  return actor.scopes.has(scope);
}

/** 403 unless the actor holds `scope`. */
export function requireScope(actor: Actor, scope: Scope): void {
  if (!actor.scopes.has(scope)) {
    throw new ControlError(
      "forbidden",
      403,
      actor.via === "token" && ROLE_SCOPES[actor.role].includes(scope)
        ? `this API token lacks the ${scope} scope`
        : `your role (${actor.role}) does not allow ${scope}`,
    );
  }
}

/** True when the actor sees every machine, not only their own. */
export function seesAllMachines(actor: Actor): boolean {
  return actor.role === "admin" || actor.role === "auditor";
}

/**
 * The operator at the server's command line (and the server's own jobs,
 * tests and benchmarks acting as one): every right, audited as `local`.
 */
export function localOperator(): Actor {
  return {
    userId: "local",
    email: "",
    name: "local operator",
    role: "admin",
    via: "local",
    scopes: scopesFor("admin"),
    credentialId: "local",
  };
}
