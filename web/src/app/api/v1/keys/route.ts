import { auditActor, requireScope } from "@trellis/control/auth";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/keys", req, async (actor) => {
    requireScope(actor, "keys:read");
    return json({ items: await getRuntime().listPreAuthKeys() });
  });
}

/** Create a pre-auth key; the key itself is in this response only. */
export function POST(req: Request): Promise<Response> {
  return adminRoute("POST /api/v1/keys", req, async (actor) => {
    requireScope(actor, "keys:write");
    const body = await readJson(req);
    // An untagged key with no owner named registers machines owned by its creator.
    if (typeof body === "object" && body !== null && !Array.isArray(body)) {
      const b = body as { tags?: unknown; userId?: unknown };
      if (
        (b.tags === undefined || (Array.isArray(b.tags) && b.tags.length === 0)) &&
        b.userId === undefined
      ) {
        (b as { userId: string }).userId = actor.userId;
      }
    }
    return json(await getRuntime().createPreAuthKey(body, auditActor(actor)), 201);
  });
}
