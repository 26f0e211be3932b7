import { authorizeMachine } from "@trellis/control/admin";
import { adminRoute, getRuntime, json } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Approve a machine waiting for admin approval. */
export function POST(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  return adminRoute("POST /api/v1/machines/:id/authorize", req, async (actor) =>
    json(await authorizeMachine(getRuntime(), actor, (await ctx.params).id)),
  );
}
