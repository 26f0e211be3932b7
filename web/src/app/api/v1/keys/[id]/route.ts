import { auditActor, requireScope } from "@trellis/control/auth";
import { adminRoute, getRuntime, json } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Revoke a pre-auth key (nodes it registered stay). */
export function DELETE(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  return adminRoute("DELETE /api/v1/keys/:id", req, async (actor) => {
    requireScope(actor, "keys:write");
    return json(await getRuntime().revokePreAuthKey((await ctx.params).id, auditActor(actor)));
  });
}
