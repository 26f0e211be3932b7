import { validatePolicyText } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Dry run: would this policy save? (Errors with line and column.) */
export function POST(req: Request): Promise<Response> {
  return adminRoute("POST /api/v1/policy/validate", req, async (actor) => {
    const body = (await readJson(req, 1024 * 1024 + 4096)) as { text?: unknown } | null;
    return json(await validatePolicyText(getRuntime(), actor, body?.text));
  });
}
