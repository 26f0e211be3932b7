import { peekInvitation } from "@trellis/control/auth";
import { ControlError } from "@trellis/control/errors";
import { getRuntime, handle, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Who an invitation is for (the token comes in the body, never in a URL). */
export function POST(req: Request): Promise<Response> {
  return handle("POST /api/invitations/peek", async () => {
    const body = (await readJson(req, 4096)) as { token?: unknown };
    const token = typeof body === "object" && body !== null ? body.token : undefined;
    const found =
      typeof token === "string" && token.length <= 128 ? await peekInvitation(getRuntime().db, token) : null;
    if (!found)
      throw new ControlError("bad_invitation", 404, "this invitation link is not valid or has expired");
    return json(found);
  });
}
