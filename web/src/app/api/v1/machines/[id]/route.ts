import { getMachine, removeMachine, updateMachine } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

type Ctx = { params: Promise<{ id: string }> };

export function GET(req: Request, ctx: Ctx): Promise<Response> {
  return adminRoute("GET /api/v1/machines/:id", req, async (actor) =>
    json(await getMachine(getRuntime(), actor, (await ctx.params).id)),
  );
}

/** Rename, retag, or turn key expiry off/on. */
export function PATCH(req: Request, ctx: Ctx): Promise<Response> {
  return adminRoute("PATCH /api/v1/machines/:id", req, async (actor) =>
    json(await updateMachine(getRuntime(), actor, (await ctx.params).id, await readJson(req))),
  );
}

export function DELETE(req: Request, ctx: Ctx): Promise<Response> {
  return adminRoute("DELETE /api/v1/machines/:id", req, async (actor) => {
    await removeMachine(getRuntime(), actor, (await ctx.params).id);
    return new Response(null, { status: 204 });
  });
}
