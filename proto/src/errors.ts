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

export type ApiIssue = NonNullable<ApiError["issues"]>[number];

/**
 * The error an HTTP API response carries, from its status and body text: the
 * server's `{error, message, issues}` when the body is one, otherwise a code
 * `http_<status>` and a plain sentence. The one reader of error bodies for
 * every client (the console, the node's control client).
 */
export function apiErrorOf(status: number, bodyText: string): Required<ApiError> {
  let body: ApiError | null = null;
  try {
    const parsed = ApiError.safeParse(JSON.parse(bodyText));
    if (parsed.success) body = parsed.data;
  } catch {
    body = null;
  }
  return {
    error: body?.error ?? `http_${status}`,
    message:
      body?.message ??
      (status === 401 ? "Your session has ended; log in again." : `The request failed (HTTP ${status}).`),
    issues: body?.issues ?? [],
  };
}
