import { setMachineRoutes } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Set the machine's approved subnet and exit routes (the complete set). */
export function POST(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  return adminRoute("POST /api/v1/machines/:id/routes", req, async (actor) =>
    json(await setMachineRoutes(getRuntime(), actor, (await ctx.params).id, await readJson(req))),
  );
}
