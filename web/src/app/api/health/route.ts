import { getRuntime, handle } from "@/lib/api";

export const dynamic = "force-dynamic";

export function GET(): Promise<Response> {
  return handle("GET /api/health", async () => {
    const health = await getRuntime().health();
    return Response.json(health, {
      status: health.status === "ok" ? 200 : 503,
      headers: { "cache-control": "no-store" },
    });
  });
}
