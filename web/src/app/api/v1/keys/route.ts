import { createKey, listKeys } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/keys", req, async (actor) =>
    json({ items: await listKeys(getRuntime(), actor) }),
  );
}

/** Create a pre-auth key; the key itself is in this response only. */
export function POST(req: Request): Promise<Response> {
  return adminRoute("POST /api/v1/keys", req, async (actor) =>
    json(await createKey(getRuntime(), actor, await readJson(req)), 201),
  );
}
