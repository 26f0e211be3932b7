import { getRuntime, handle, readSigned } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Register the signing node with a pre-auth key (201 when created, 200 when it was known). */
export function POST(req: Request): Promise<Response> {
  return handle("POST /api/v1/register", async () => {
    const res = await getRuntime().register(await readSigned(req));
    return Response.json(res, { status: res.created ? 201 : 200, headers: { "cache-control": "no-store" } });
  });
}
