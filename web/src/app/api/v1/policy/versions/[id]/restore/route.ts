import { restorePolicyVersion } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, versionId } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Save an earlier version's text as the newest version. */
export function POST(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  return adminRoute("POST /api/v1/policy/versions/:id/restore", req, async (actor) =>
    json(await restorePolicyVersion(getRuntime(), actor, versionId((await ctx.params).id))),
  );
}
