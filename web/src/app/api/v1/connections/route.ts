import { listConnections } from "@trellis/control/admin";
import { adminRoute, getRuntime, handle, json, query, readSigned } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Largest connection report (500 records); keep equal to MAX_CONNECTION_REPORT_BYTES in control/src/connlog.ts. */
const MAX_REPORT_BYTES = 256 * 1024;

/** Connection logs reported by nodes, newest first (admin API). */
export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/connections", req, async (actor) =>
    json(await listConnections(getRuntime(), actor, query(req))),
  );
}

/** The signing node reports connections it opened or accepted: `{accepted}`. */
export function POST(req: Request): Promise<Response> {
  return handle("POST /api/v1/connections", async () =>
    Response.json(await getRuntime().reportConnections(await readSigned(req, MAX_REPORT_BYTES)), {
      headers: { "cache-control": "no-store" },
    }),
  );
}
