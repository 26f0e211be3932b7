import { getPolicy, savePolicyText } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/policy", req, async (actor) => json(await getPolicy(getRuntime(), actor)));
}

/** Save a new policy version after validating it and running its tests. */
export function PUT(req: Request): Promise<Response> {
  return adminRoute("PUT /api/v1/policy", req, async (actor) =>
    json(await savePolicyText(getRuntime(), actor, await readJson(req, 1024 * 1024 + 4096))),
  );
}
