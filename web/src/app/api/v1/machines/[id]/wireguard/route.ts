import { wireGuardPeerConfig } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, query } from "@/lib/api";

export const dynamic = "force-dynamic";

/** A plain WireGuard peer's wg-quick file (`?endpoint=host:port` picks the gateway's endpoint), without its private key. */
export function GET(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  return adminRoute("GET /api/v1/machines/:id/wireguard", req, async (actor) =>
    json(await wireGuardPeerConfig(getRuntime(), actor, (await ctx.params).id, query(req))),
  );
}
