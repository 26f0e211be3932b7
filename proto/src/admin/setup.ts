import { z } from "zod";

/** Body of `POST /api/setup`: creates the first admin with the one-time setup token. */
export const SetupRequest = z.object({
  token: z.string().min(16).max(128),
  email: z.email().max(254),
  name: z.string().trim().min(1).max(100),
  password: z
    .string()
    .min(12, "password must be at least 12 characters")
    .max(256, "password must be at most 256 characters"),
});
export type SetupRequest = z.infer<typeof SetupRequest>;

export const SetupStatus = z.object({
  /** True once an admin exists; the setup page then refuses to run. */
  complete: z.boolean(),
});
export type SetupStatus = z.infer<typeof SetupStatus>;
