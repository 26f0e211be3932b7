import { createInvitation, listInvitations } from "@trellis/control/auth";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/invitations", req, async (actor) =>
    json({ items: await listInvitations(getRuntime(), actor) }),
  );
}

/** Invite someone; the link is in the response only. */
export function POST(req: Request): Promise<Response> {
  return adminRoute("POST /api/v1/invitations", req, async (actor) => {
    const rt = getRuntime();
    const { token, invitation } = await createInvitation(rt, actor, await readJson(req));
    return json({ invitation, url: `${rt.config.publicUrl}/invite#token=${token}` }, 201);
  });
}
