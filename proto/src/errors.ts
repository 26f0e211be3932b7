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

const TYPE_WORDS: Record<string, string> = {
  string: "text",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  array: "a list",
  object: "an object",
  bigint: "a whole number",
};

const FORMAT_WORDS: Record<string, string> = {
  email: "an email address",
  url: "a URL",
  uuid: "a UUID",
  datetime: "a date and time such as 2030-01-31T12:00:00Z",
  date: "a date such as 2030-01-31",
  ipv4: "an IPv4 address",
  ipv6: "an IPv6 address",
};

function count(n: number | bigint, one: string, many: string): string {
  return `${n} ${Number(n) === 1 ? one : many}`;
}

/**
 * Issue messages in plain words for people (the console shows them at their
 * field): "must not be empty", "must be at most 65535", not the schema
 * library's "Too small: expected string to have >=1 characters". A message a
 * schema states itself is kept. Pass as `{ error: plainError }` to a parse.
 */
export const plainError: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case "invalid_type":
      if (iss.input === undefined) return "is required";
      return `must be ${TYPE_WORDS[iss.expected] ?? iss.expected}`;
    case "too_small": {
      const n = iss.minimum;
      if (iss.origin === "string")
        return Number(n) <= 1
          ? "must not be empty"
          : `must be at least ${count(n, "character", "characters")}`;
      if (iss.origin === "array" || iss.origin === "set")
        return Number(n) <= 1 ? "must not be empty" : `must have at least ${count(n, "entry", "entries")}`;
      return iss.inclusive === false ? `must be more than ${n}` : `must be at least ${n}`;
    }
    case "too_big": {
      const n = iss.maximum;
      if (iss.origin === "string") return `must be at most ${count(n, "character", "characters")}`;
      if (iss.origin === "array" || iss.origin === "set")
        return `must have at most ${count(n, "entry", "entries")}`;
      return iss.inclusive === false ? `must be less than ${n}` : `must be at most ${n}`;
    }
    case "invalid_format":
      return iss.format === "regex"
        ? "is not in the expected form"
        : `must be ${FORMAT_WORDS[iss.format] ?? `a valid ${iss.format}`}`;
    case "invalid_value":
      return `must be one of: ${iss.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "unrecognized_keys":
      return `unknown field${iss.keys.length === 1 ? "" : "s"}: ${iss.keys.join(", ")}`;
    case "not_multiple_of":
      return `must be a multiple of ${iss.divisor}`;
    default:
      return undefined;
  }
};

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
