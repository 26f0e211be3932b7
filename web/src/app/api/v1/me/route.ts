import { adminRoute, json } from "@/lib/api";

export const dynamic = "force-dynamic";

/** Who the caller is and what they may do. */
export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/me", req, (actor) =>
    Promise.resolve(
      json({
        id: actor.userId,
        email: actor.email,
        name: actor.name,
        role: actor.role,
        via: actor.via,
        scopes: [...actor.scopes].sort(),
      }),
    ),
  );
}
