import { listConnections } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, query } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Connection logs reported by nodes, newest first (admin API). Nodes report with POST, on the node API. */
export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/connections", req, async (actor) =>
    json(await listConnections(getRuntime(), actor, query(req))),
  );
}
