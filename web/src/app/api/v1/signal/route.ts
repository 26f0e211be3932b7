import { getRuntime, handle, readSigned } from "@/lib/api";

export const dynamic = "force-dynamic";

/** The signing node hands a sealed WebRTC signal to a peer's map stream: 202 when queued. */
export function POST(req: Request): Promise<Response> {
  return handle("POST /api/v1/signal", async () =>
    Response.json(await getRuntime().signal(await readSigned(req)), {
      status: 202,
      headers: { "cache-control": "no-store" },
    }),
  );
}
