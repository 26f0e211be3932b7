// The logged-in user of a page render (server components). Pages call
// requirePageActor() first; data then comes from @trellis/control/admin with
// getRuntime() as the context, so permission checks happen in one place.
import { redirect } from "next/navigation";
import type { Actor } from "@trellis/control/auth";
import type { Scope } from "@trellis/proto";
import { sessionActor } from "./actor";

/** The session's actor, or null when nobody is logged in (or the session was revoked). */
export async function getPageActor(): Promise<Actor | null> {
  return sessionActor();
}

/**
 * The session's actor; redirects to /login when there is none and to
 * /forbidden when the actor's role lacks `scope`.
 */
export async function requirePageActor(scope?: Scope, from = "/"): Promise<Actor> {
  const actor = await sessionActor();
  if (!actor) redirect(`/login?next=${encodeURIComponent(from)}`);
  if (scope && !actor.scopes.has(scope)) redirect(`/forbidden?need=${encodeURIComponent(scope)}`);
  return actor;
}
