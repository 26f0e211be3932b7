import { acceptInvitation } from "@trellis/control/auth";
import { getRuntime, handle, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Create the invited local account. */
export function POST(req: Request): Promise<Response> {
  return handle("POST /api/invitations/accept", async () => {
    const user = await acceptInvitation(getRuntime().db, await readJson(req, 4096));
    return json({ user }, 201);
  });
}
