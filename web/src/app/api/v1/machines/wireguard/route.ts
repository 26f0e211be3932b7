import { createWireGuardPeer } from "@trellis/control/admin";
import { adminRoute, getRuntime, json, readJson } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Add a plain WireGuard peer from its public key (admins); its private key never comes here. */
export function POST(req: Request): Promise<Response> {
  return adminRoute("POST /api/v1/machines/wireguard", req, async (actor) =>
    json(await createWireGuardPeer(getRuntime(), actor, await readJson(req)), 201),
  );
}
