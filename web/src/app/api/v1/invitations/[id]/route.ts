import { revokeInvitation } from "@trellis/control/auth";
import { adminRoute, getRuntime } from "@/lib/api";

export const dynamic = "force-dynamic";

export function DELETE(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  return adminRoute("DELETE /api/v1/invitations/:id", req, async (actor) => {
    await revokeInvitation(getRuntime(), actor, (await ctx.params).id);
    return new Response(null, { status: 204 });
  });
}
