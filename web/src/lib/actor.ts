// Who is calling: an API token (Authorization: Bearer trellis-api-…) or the
// console's session cookie. Cookie-authenticated writes must come from the
// console's own origin (CSRF: the session cookie is SameSite=Lax, and the
// Origin check refuses cross-site form posts and fetches).
import { cookies } from "next/headers";
import { decode } from "next-auth/jwt";
import { ControlError } from "@trellis/control/errors";
import { sessionActor as actorOfSession, tokenActor, type Actor } from "@trellis/control/auth";
import { getRuntime } from "./api";

const COOKIE_NAMES = ["__Secure-next-auth.session-token", "next-auth.session-token"];

/** The session cookie's actor, or null. */
export async function sessionActor(): Promise<Actor | null> {
  const jar = await cookies();
  const secret = process.env.NEXTAUTH_SECRET;
  if (!secret) return null;
  for (const name of COOKIE_NAMES) {
    const value = jar.get(name)?.value;
    if (!value) continue;
    const token = await decode({ token: value, secret }).catch(() => null);
    const sid = token?.sid;
    if (typeof sid === "string") return actorOfSession(getRuntime().db, sid);
  }
  return null;
}

function checkOrigin(req: Request): void {
  const origin = req.headers.get("origin");
  const site = req.headers.get("sec-fetch-site");
  const expected = new URL(getRuntime().config.publicUrl).origin;
  const host = req.headers.get("host");
  const sameHost = origin !== null && host !== null && new URL(origin).host === host;
  if (site === "cross-site" || (origin !== null && origin !== expected && !sameHost)) {
    throw new ControlError("csrf", 403, "cross-site request refused");
  }
  if (origin === null && site === null) {
    // Neither header: not a browser (browsers send Origin on every non-GET fetch and form post).
    throw new ControlError("csrf", 403, "a cookie-authenticated change must come from the console");
  }
}

/** The caller of an admin API request; 401 when there is none. */
export async function requestActor(req: Request): Promise<Actor> {
  const auth = req.headers.get("authorization");
  if (auth !== null) {
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    if (!m) throw new ControlError("bad_token", 401, "expected Authorization: Bearer <API token>");
    return tokenActor(getRuntime().db, m[1]!);
  }
  const actor = await sessionActor();
  if (!actor) {
    throw new ControlError(
      "unauthenticated",
      401,
      "log in to the console or pass an API token as Authorization: Bearer <token>",
    );
  }
  if (req.method !== "GET" && req.method !== "HEAD") checkOrigin(req);
  return actor;
}

/**
 * The console session riding along on a node request (a browser tab
 * registering its own key), or null when there is none. Such a request
 * changes state with the cookie, so it gets the same origin check.
 */
export async function sessionAlongside(req: Request): Promise<Actor | null> {
  const actor = await sessionActor();
  if (actor) checkOrigin(req);
  return actor;
}
