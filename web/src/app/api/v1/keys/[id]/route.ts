import { revokeKey } from "@trellis/control/admin";
import { adminRoute, getRuntime, json } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Revoke a pre-auth key (nodes it registered stay). */
export function DELETE(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  return adminRoute("DELETE /api/v1/keys/:id", req, async (actor) =>
    json(await revokeKey(getRuntime(), actor, (await ctx.params).id)),
  );
}
