// Client-side calls to the admin HTTP API: same origin, cookie auth, JSON.
// Every call names the schema of its answer (from @trellis/proto/admin) and the
// answer is parsed with it, so a page never works on a shape it did not ask for.
// Error bodies are read by proto's apiErrorOf, the one reader every client shares.
import { apiErrorOf, type ApiIssue } from "@trellis/proto/admin";

export type { ApiIssue };

/**
 * What api() needs of a response schema; every zod schema fits. Structural, so
 * the console need not depend on zod itself to name one.
 */
export interface ResponseSchema<T> {
  safeParse(
    value: unknown,
  ):
    | { success: true; data: T }
    | { success: false; error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] } };
}

export type ApiFailure = { ok: false; status: number; error: string; message: string; issues: ApiIssue[] };
export type ApiResult<T> = { ok: true; status: number; data: T } | ApiFailure;

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export async function api<T>(
  method: Method,
  url: string,
  schema: ResponseSchema<T>,
  body?: unknown,
  init?: { signal?: AbortSignal },
): Promise<ApiResult<T>> {
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      credentials: "same-origin",
      headers:
        body === undefined
          ? { accept: "application/json" }
          : { "content-type": "application/json", accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: init?.signal,
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    return { ok: false, status: 0, error: "network", message: "Could not reach the server.", issues: [] };
  }
  const text = await res.text().catch(() => "");
  if (!res.ok) return { ok: false, status: res.status, ...apiErrorOf(res.status, text) };
  return parseAnswer(res.status, text, schema);
}

/** A successful answer's body checked against its schema; an empty body is `undefined` (NoContent). */
export function parseAnswer<T>(status: number, text: string, schema: ResponseSchema<T>): ApiResult<T> {
  let value: unknown = undefined;
  if (text !== "") {
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      return badAnswer(status, "it is not JSON");
    }
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, status, data: parsed.data };
  const first = parsed.error.issues[0];
  const where = first && first.path.length ? `${first.path.map(String).join(".")}: ` : "";
  return badAnswer(status, `${where}${first?.message ?? "unexpected shape"}`);
}

// The request may well have taken effect; what failed is reading its answer.
// No `issues`: they would name fields of the answer, not of the form.
function badAnswer(status: number, why: string): ApiFailure {
  return {
    ok: false,
    status,
    error: "bad_response",
    message: `The server's answer was not understood (${why}). Reload the page to see the current state.`,
    issues: [],
  };
}
