import { clearLoginThrottle } from "@trellis/control/admin";
import { adminRoute, getRuntime } from "@/lib/api";

export const dynamic = "force-dynamic";

type Ctx = { params: Promise<{ id: string }> };

/** Clear the failed sign-ins holding a user back, from every address (audited). */
export function DELETE(req: Request, ctx: Ctx): Promise<Response> {
  return adminRoute("DELETE /api/v1/users/:id/login-throttle", req, async (actor) => {
    await clearLoginThrottle(getRuntime(), actor, (await ctx.params).id);
    return new Response(null, { status: 204 });
  });
}
