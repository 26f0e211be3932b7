import { getRuntime, handle, readSigned } from "@/lib/api";

export const dynamic = "force-dynamic";

/** The signing node reports its UDP endpoints and home relay region. */
export function POST(req: Request): Promise<Response> {
  return handle("POST /api/v1/endpoints", async () =>
    Response.json(await getRuntime().updateEndpoints(await readSigned(req))),
  );
}
