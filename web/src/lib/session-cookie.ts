// The console session a request carries: next-auth's cookie (encrypted with
// NEXTAUTH_SECRET) holds only a session id, looked up on every request. Read
// by route handlers and pages (lib/actor.ts) and by the server process for
// node requests that carry a session (a browser tab registering its key).
import { decode } from "next-auth/jwt";
import { sessionActor, type Actor } from "@trellis/control/auth";

/**
 * The one cookie name next-auth sets for this deployment (useSecureCookies
 * follows TRELLIS_PUBLIC_URL's scheme). On https only the `__Secure-` name
 * is read: a browser accepts that name only from a secure origin, while the
 * plain one could have been planted over http or by a sibling subdomain.
 */
export function sessionCookieName(publicUrl: string): string {
  return publicUrl.startsWith("https://") ? "__Secure-next-auth.session-token" : "next-auth.session-token";
}

/** The actor of the session named by `cookie(name)`, or null when there is none (or it was revoked). */
export async function actorFromSessionCookie(
  cookie: (name: string) => string | undefined,
  db: Parameters<typeof sessionActor>[0],
  publicUrl: string,
): Promise<Actor | null> {
  const secret = process.env.NEXTAUTH_SECRET;
  if (!secret) return null;
  const value = cookie(sessionCookieName(publicUrl));
  if (!value) return null;
  const token = await decode({ token: value, secret }).catch(() => null);
  const sid = token?.sid;
  return typeof sid === "string" ? sessionActor(db, sid) : null;
}
