import { getRuntime, handle, readSigned } from "@/lib/api";

export const dynamic = "force-dynamic";

/** The signing node logs out: its key stops working now (ephemeral nodes are deleted) and its map streams end. */
export function POST(req: Request): Promise<Response> {
  return handle("POST /api/v1/logout", async () =>
    Response.json(await getRuntime().logout(await readSigned(req)), {
      headers: { "cache-control": "no-store" },
    }),
  );
}
