import { checkReachability } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Can A reach B on a port, and which rule allows it? */
export function POST(req: Request): Promise<Response> {
  return adminRoute("POST /api/v1/policy/reachability", req, async (actor) =>
    json(await checkReachability(getRuntime(), actor, await readJson(req))),
  );
}
