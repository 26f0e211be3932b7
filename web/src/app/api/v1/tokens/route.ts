import { createApiToken, listApiTokens } from "@trellis/control/auth";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

/** The caller's API tokens. */
export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/tokens", req, async (actor) =>
    json({ items: await listApiTokens(getRuntime(), actor) }),
  );
}

/** Create an API token; the token itself is in this response only. */
export function POST(req: Request): Promise<Response> {
  return adminRoute("POST /api/v1/tokens", req, async (actor) =>
    json(await createApiToken(getRuntime(), actor, await readJson(req)), 201),
  );
}
