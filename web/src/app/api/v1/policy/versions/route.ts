import { listPolicyVersions } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, query } from "@/lib/api";

export const dynamic = "force-dynamic";

export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/policy/versions", req, async (actor) =>
    json(await listPolicyVersions(getRuntime(), actor, query(req))),
  );
}
