// Pre-auth keys in the admin API: create (the key is in this answer only),
// list, revoke. An untagged key names the user who will own the machines it
// registers; when the request names nobody, that is its creator.
import type { PreAuthKeyInfo } from "@trellis/proto";
import { actorRef } from "../audit";
import { requireScope, type Actor } from "../auth/actor";
import { createPreAuthKey, listPreAuthKeys, revokePreAuthKey } from "../preauth";
import type { AdminContext } from "./context";
import { checkTags } from "./machines";

export async function createKey(
  ctx: AdminContext,
  actor: Actor,
  body: unknown,
): Promise<{ key: string; info: PreAuthKeyInfo }> {
  requireScope(actor, "keys:write");
  if (typeof body === "object" && body !== null && !Array.isArray(body) && actor.via !== "local") {
    const b = body as { tags?: unknown; userId?: unknown };
    const untagged = b.tags === undefined || (Array.isArray(b.tags) && b.tags.length === 0);
    if (untagged && b.userId === undefined) body = { ...b, userId: actor.userId };
  }
  // The rule the machine page applies to tags applies to the keys that hand them out
  // (as Tailscale's API refuses a key with tags the policy does not permit).
  const tags = (body as { tags?: unknown } | null)?.tags;
  if (Array.isArray(tags) && tags.length > 0 && tags.every((t) => typeof t === "string")) {
    await checkTags(ctx, actor, tags as string[]);
  }
  return createPreAuthKey(ctx.db, body, actorRef(actor));
}

export async function listKeys(ctx: AdminContext, actor: Actor): Promise<PreAuthKeyInfo[]> {
  requireScope(actor, "keys:read");
  return listPreAuthKeys(ctx.db);
}

export async function revokeKey(ctx: AdminContext, actor: Actor, id: string): Promise<PreAuthKeyInfo> {
  requireScope(actor, "keys:write");
  return revokePreAuthKey(ctx.db, id, actorRef(actor));
}
