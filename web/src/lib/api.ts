import { ControlError } from "@trellis/control/errors";
import { getRuntime } from "@trellis/control/handle";
import type { ApiError } from "@trellis/proto";

export { getRuntime };

/** Build an API error response in the one shape every endpoint uses. */
export function apiError(status: number, body: ApiError): Response {
  return Response.json(body, { status, headers: { "cache-control": "no-store" } });
}

/**
 * Run a route handler body: ControlErrors become their 4xx/5xx JSON, anything
 * else is logged with context and becomes a 500 without internals.
 */
export async function handle(route: string, fn: () => Promise<Response>): Promise<Response> {
  try {
    return await fn();
  } catch (err) {
    if (ControlError.is(err)) {
      return apiError(err.status, { error: err.code, message: err.message, issues: err.issues });
    }
    getRuntime().log.error({ err, route }, "request failed");
    return apiError(500, { error: "internal", message: "internal server error" });
  }
}

/** Parse a JSON request body of bounded size; malformed JSON is a 400. */
export async function readJson(req: Request, limit = 64 * 1024): Promise<unknown> {
  const length = Number(req.headers.get("content-length") ?? "0");
  if (length > limit) throw new ControlError("body_too_large", 413, `request body exceeds ${limit} bytes`);
  const text = await req.text();
  if (text.length > limit)
    throw new ControlError("body_too_large", 413, `request body exceeds ${limit} bytes`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ControlError("invalid_json", 400, "request body is not valid JSON");
  }
}
