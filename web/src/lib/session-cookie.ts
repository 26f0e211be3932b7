// The console session a request carries: next-auth's cookie (encrypted with
// NEXTAUTH_SECRET) holds only a session id, looked up on every request. Read
// by route handlers and pages (lib/actor.ts) and by the server process for
// node requests that carry a session (a browser tab registering its key).
import { decode } from "next-auth/jwt";
import { sessionActor, type Actor } from "@trellis/control/auth";

const COOKIE_NAMES = ["__Secure-next-auth.session-token", "next-auth.session-token"];

/** The actor of the session named by `cookie(name)`, or null when there is none (or it was revoked). */
export async function actorFromSessionCookie(
  cookie: (name: string) => string | undefined,
  db: Parameters<typeof sessionActor>[0],
): Promise<Actor | null> {
  const secret = process.env.NEXTAUTH_SECRET;
  if (!secret) return null;
  for (const name of COOKIE_NAMES) {
    const value = cookie(name);
    if (!value) continue;
    const token = await decode({ token: value, secret }).catch(() => null);
    const sid = token?.sid;
    if (typeof sid === "string") return sessionActor(db, sid);
  }
  return null;
}
