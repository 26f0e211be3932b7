import { machineAccess } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Which TCP ports the caller's machine may open on another, and why a port is or is not allowed. */
export function POST(req: Request): Promise<Response> {
  return adminRoute("POST /api/v1/me/access", req, async (actor) =>
    json(await machineAccess(getRuntime(), actor, await readJson(req))),
  );
}
