import { getRuntime, handle } from "@/lib/api";

export const dynamic = "force-dynamic";

/**
 * Health for load balancers and operators, answered to anyone: a database
 * error is reported as unavailable without its text (the server's log has
 * it whole). Who is asking cannot be told while the database is down anyway.
 */
export function GET(): Promise<Response> {
  return handle("GET /api/health", async () => {
    const health = await getRuntime().health({ detail: false });
    return Response.json(health, {
      status: health.status === "ok" ? 200 : 503,
      headers: { "cache-control": "no-store" },
    });
  });
}
