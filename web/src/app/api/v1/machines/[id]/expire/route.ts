import { expireMachineKey } from "@trellis/control/admin";
import { adminRoute, getRuntime, json } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Expire the machine's key now: it must re-authenticate. */
export function POST(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  return adminRoute("POST /api/v1/machines/:id/expire", req, async (actor) =>
    json(await expireMachineKey(getRuntime(), actor, (await ctx.params).id)),
  );
}
