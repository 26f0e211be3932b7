import { requireScope } from "@trellis/control/auth";
import { getRuntime, handle, readSigned } from "@/lib/api";
import { sessionAlongside } from "@/lib/actor";

export const dynamic = "force-dynamic";

/**
 * Register the signing node (201 when created, 200 when it was known): with a
 * pre-auth key, or — from a browser tab — with the logged-in console session,
 * which makes the node the session user's.
 */
export function POST(req: Request): Promise<Response> {
  return handle("POST /api/v1/register", async () => {
    const signed = await readSigned(req);
    const actor = await sessionAlongside(req);
    // A pre-auth key decides on its own; only a session registration needs the right to add machines.
    let sessionUser: { userId: string } | undefined;
    if (actor && !hasPreAuthKey(signed.body)) {
      requireScope(actor, "machines:write");
      sessionUser = { userId: actor.userId };
    }
    const res = await getRuntime().register(signed, sessionUser);
    return Response.json(res, { status: res.created ? 201 : 200, headers: { "cache-control": "no-store" } });
  });
}

function hasPreAuthKey(body: string): boolean {
  try {
    const v: unknown = JSON.parse(body);
    return typeof v === "object" && v !== null && "preAuthKey" in v;
  } catch {
    return false; // the runtime reports the malformed body
  }
}
