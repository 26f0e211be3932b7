import { getRuntime, handle, readSigned } from "@/lib/api";

export const dynamic = "force-dynamic";

/** The signing node's netmap as Server-Sent Events: a full map, then deltas and heartbeats. */
export function GET(req: Request): Promise<Response> {
  return handle("GET /api/v1/map", async () => {
    const stream = await getRuntime().openMapStream(await readSigned(req), req.signal);
    return new Response(stream, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store, no-transform",
        // Reverse proxies (nginx) must not buffer the stream.
        "x-accel-buffering": "no",
      },
    });
  });
}
