import { getPolicyVersion } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, versionId } from "@/lib/api";

export const dynamic = "force-dynamic";

export function GET(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  return adminRoute("GET /api/v1/policy/versions/:id", req, async (actor) =>
    json(await getPolicyVersion(getRuntime(), actor, versionId((await ctx.params).id))),
  );
}
