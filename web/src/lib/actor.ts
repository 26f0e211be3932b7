// Who is calling: an API token (Authorization: Bearer trellis-api-…) or the
// console's session cookie. Cookie-authenticated writes must come from the
// console's own origin (CSRF: the session cookie is SameSite=Lax, and the
// Origin check refuses cross-site form posts and fetches).
import { cookies } from "next/headers";
import { ControlError } from "@trellis/control/errors";
import { checkOrigin as checkOriginOf, tokenActor, type Actor } from "@trellis/control/auth";
import { getRuntime } from "./api";
import { actorFromSessionCookie } from "./session-cookie";

/** The session cookie's actor, or null. */
export async function sessionActor(): Promise<Actor | null> {
  const jar = await cookies();
  const rt = getRuntime();
  return actorFromSessionCookie((name) => jar.get(name)?.value, rt.db, rt.config.publicUrl);
}

function checkOrigin(req: Request): void {
  checkOriginOf(
    {
      origin: req.headers.get("origin"),
      secFetchSite: req.headers.get("sec-fetch-site"),
      host: req.headers.get("host"),
    },
    getRuntime().config.publicUrl,
  );
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
