import { revokeApiToken } from "@trellis/control/auth";
import { adminRoute, getRuntime, json } from "@/lib/api";

export const dynamic = "force-dynamic";

export function DELETE(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  return adminRoute("DELETE /api/v1/tokens/:id", req, async (actor) =>
    json(await revokeApiToken(getRuntime(), actor, (await ctx.params).id)),
  );
}
