import { listMachines } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, query } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Machines the caller may see (members: their own), filtered and paginated. */
export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/machines", req, async (actor) =>
    json(await listMachines(getRuntime(), actor, query(req))),
  );
}
