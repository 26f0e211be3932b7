import { listAudit } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, query } from "@/lib/api";

export const dynamic = "force-dynamic";

/** The audit log of configuration changes, newest first. */
export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/audit", req, async (actor) =>
    json(await listAudit(getRuntime(), actor, query(req))),
  );
}
