import { getTailnetSettings, updateTailnetSettings } from "@trellis/control/settings";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/settings", req, async (actor) =>
    json(await getTailnetSettings(getRuntime(), actor)),
  );
}

export function PUT(req: Request): Promise<Response> {
  return adminRoute("PUT /api/v1/settings", req, async (actor) =>
    json(await updateTailnetSettings(getRuntime(), actor, await readJson(req, 256 * 1024))),
  );
}
