import { getUser, removeUser, updateUser } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

type Ctx = { params: Promise<{ id: string }> };

export function GET(req: Request, ctx: Ctx): Promise<Response> {
  return adminRoute("GET /api/v1/users/:id", req, async (actor) =>
    json(await getUser(getRuntime(), actor, (await ctx.params).id)),
  );
}

/** Change a user's role. */
export function PATCH(req: Request, ctx: Ctx): Promise<Response> {
  return adminRoute("PATCH /api/v1/users/:id", req, async (actor) =>
    json(await updateUser(getRuntime(), actor, (await ctx.params).id, await readJson(req))),
  );
}

/** Remove a user and their machines. */
export function DELETE(req: Request, ctx: Ctx): Promise<Response> {
  return adminRoute("DELETE /api/v1/users/:id", req, async (actor) => {
    await removeUser(getRuntime(), actor, (await ctx.params).id);
    return new Response(null, { status: 204 });
  });
}
