// Pre-auth keys in the admin API: what creating one takes and how one is listed.
import { z } from "zod";

// --- Pre-auth keys (admin API) ------------------------------------------------------

export const TagText = z
  .string()
  .max(64)
  .regex(/^tag:[A-Za-z][A-Za-z0-9-]*$/, 'must be "tag:" followed by a letter, then letters, digits or -');

/** Longest a pre-auth key may live (as Tailscale: 90 days). */
export const PREAUTH_MAX_TTL_S = 90 * 24 * 3600;

/** Body of creating a pre-auth key. Either `tags` or `userId` says who owns the nodes it registers. */
export const CreatePreAuthKeyRequest = z
  .strictObject({
    reusable: z.boolean().default(false),
    ephemeral: z.boolean().default(false),
    tags: z.array(TagText).max(16).default([]),
    /** Owner of nodes registered with an untagged key. */
    userId: z.string().min(1).max(64).optional(),
    expiresInSeconds: z.number().int().min(60).max(PREAUTH_MAX_TTL_S).default(PREAUTH_MAX_TTL_S),
    description: z.string().trim().max(200).default(""),
  })
  .refine((r) => r.tags.length > 0 || r.userId !== undefined, {
    message: "a key needs tags or a user to own the nodes it registers",
    path: ["tags"],
  })
  .refine((r) => !(r.tags.length > 0 && r.userId !== undefined), {
    message: "a tagged key registers tagged nodes, which have no user",
    path: ["userId"],
  });
export type CreatePreAuthKeyRequest = z.input<typeof CreatePreAuthKeyRequest>;

/** A pre-auth key as listed: never the key itself, only its display prefix. */
export const PreAuthKeyInfo = z.object({
  id: z.string(),
  prefix: z.string(),
  reusable: z.boolean(),
  ephemeral: z.boolean(),
  tags: z.array(z.string()),
  userId: z.string().nullable(),
  createdAt: z.string(),
  expiresAt: z.string(),
  revokedAt: z.string().nullable(),
  usedCount: z.number().int(),
  createdBy: z.string(),
  description: z.string(),
  /** When the key last registered a node; null: never used. */
  lastUsedAt: z.string().nullable(),
});
export type PreAuthKeyInfo = z.infer<typeof PreAuthKeyInfo>;

export const PreAuthKeyList = z.object({ items: z.array(PreAuthKeyInfo) });
export type PreAuthKeyList = z.infer<typeof PreAuthKeyList>;

/** A key just made: the key itself is in this response only. */
export const CreatedPreAuthKey = z.object({ key: z.string(), info: PreAuthKeyInfo });
export type CreatedPreAuthKey = z.infer<typeof CreatedPreAuthKey>;
