import { getDnsSettings, updateDnsSettings } from "@trellis/control/settings";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/dns", req, async (actor) => json(await getDnsSettings(getRuntime(), actor)));
}

export function PUT(req: Request): Promise<Response> {
  return adminRoute("PUT /api/v1/dns", req, async (actor) =>
    json(await updateDnsSettings(getRuntime(), actor, await readJson(req))),
  );
}
