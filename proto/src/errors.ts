import { z } from "zod";

/** Every 4xx/5xx body of the HTTP API. `issues` lists per-field problems for 400s. */
export const ApiError = z.object({
  error: z.string(),
  message: z.string(),
  issues: z
    .array(
      z.object({
        path: z.string(),
        message: z.string(),
        /** 1-based place in a submitted document (policy files), when known. */
        line: z.number().int().optional(),
        column: z.number().int().optional(),
      }),
    )
    .optional(),
});
export type ApiError = z.infer<typeof ApiError>;

/** Flatten a zod error into the API's `issues` list. */
export function zodIssues(err: z.ZodError): NonNullable<ApiError["issues"]> {
  return err.issues.map((i) => ({ path: i.path.join(".") || "(body)", message: i.message }));
}
