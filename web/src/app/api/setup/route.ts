import { getRuntime, handle, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Whether first-run setup is still open. */
export function GET(): Promise<Response> {
  return handle("GET /api/setup", async () =>
    Response.json({ complete: await getRuntime().isSetupComplete() }),
  );
}

/** Create the first admin with the one-time token printed by the server. */
export function POST(req: Request): Promise<Response> {
  return handle("POST /api/setup", async () => {
    const user = await getRuntime().completeSetup(await readJson(req));
    return Response.json({ user }, { status: 201 });
  });
}
