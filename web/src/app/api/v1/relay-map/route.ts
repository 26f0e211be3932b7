import { getRuntime, handle } from "@/lib/api";

export const dynamic = "force-dynamic";

/** The relay map (also part of every netmap). */
export function GET(): Promise<Response> {
  return handle("GET /api/v1/relay-map", async () =>
    Response.json(getRuntime().relayMap(), { headers: { "cache-control": "no-store" } }),
  );
}
