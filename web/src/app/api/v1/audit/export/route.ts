import { exportAudit } from "@trellis/control/admin";
import { ControlError } from "@trellis/control";
import { adminRoute, getRuntime, query } from "@/lib/api";

export const dynamic = "force-dynamic";

/** The audit log as a file: `?format=csv|json` and listAudit's filters (action, actor, target, since, until). */
export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/audit/export", req, async (actor) => {
    const { format = "csv", ...filters } = query(req);
    if (format !== "csv" && format !== "json") {
      throw new ControlError("invalid_request", 400, `format: "${format}" is not csv or json`, [
        { path: "format", message: "csv or json" },
      ]);
    }
    const out = await exportAudit(getRuntime(), actor, filters, format);
    const day = new Date().toISOString().slice(0, 10);
    return new Response(out.body, {
      headers: {
        "content-type": format === "csv" ? "text/csv; charset=utf-8" : "application/json",
        "content-disposition": `attachment; filename="trellis-audit-${day}.${format}"`,
        "x-trellis-entries": String(out.count),
        "x-trellis-truncated": String(out.truncated),
      },
    });
  });
}
