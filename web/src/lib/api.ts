import { ControlError } from "@trellis/control/errors";
import { getRuntime } from "@trellis/control/handle";
import type { Actor } from "@trellis/control/auth";
import { NODE_AUTH_SCHEME, type ApiError } from "@trellis/proto";
import { requestActor } from "./actor";

export { getRuntime };

/** Error codes of the admin API's own authentication (as opposed to node request signatures). */
const BEARER_ERRORS = new Set(["bad_token", "unauthenticated"]);

/** Build an API error response in the one shape every endpoint uses. */
export function apiError(status: number, body: ApiError): Response {
  const headers: Record<string, string> = { "cache-control": "no-store" };
  // Name the scheme a 401 expects (RFC 9110 §11.6.1): API tokens, or node signatures.
  if (status === 401) {
    headers["www-authenticate"] = BEARER_ERRORS.has(body.error) ? 'Bearer realm="trellis"' : NODE_AUTH_SCHEME;
  }
  return Response.json(body, { status, headers });
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

/** The size limit of a request body, checked before and while reading it. */
async function readBounded(req: Request, limit: number): Promise<string> {
  const length = Number(req.headers.get("content-length") ?? "0");
  if (length > limit) throw new ControlError("body_too_large", 413, `request body exceeds ${limit} bytes`);
  const text = await req.text();
  if (text.length > limit)
    throw new ControlError("body_too_large", 413, `request body exceeds ${limit} bytes`);
  return text;
}

/**
 * A node's request as the control runtime verifies it: method, request target
 * (path and query, as signed), the Authorization header and the raw body.
 */
export async function readSigned(
  req: Request,
  limit = 64 * 1024,
): Promise<{ method: string; path: string; authorization: string | null; body: string }> {
  const url = new URL(req.url);
  return {
    method: req.method,
    path: url.pathname + url.search,
    authorization: req.headers.get("authorization"),
    body: req.method === "GET" || req.method === "HEAD" ? "" : await readBounded(req, limit),
  };
}

/** Parse a JSON request body of bounded size; malformed JSON is a 400. */
export async function readJson(req: Request, limit = 64 * 1024): Promise<unknown> {
  const text = await readBounded(req, limit);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ControlError("invalid_json", 400, "request body is not valid JSON");
  }
}

/** A JSON response that no cache keeps. */
export function json(data: unknown, status = 200): Response {
  return Response.json(data, { status, headers: { "cache-control": "no-store" } });
}

/** The query string as a plain object (the control library validates it). */
export function query(req: Request): Record<string, string> {
  return Object.fromEntries(new URL(req.url).searchParams);
}

/**
 * An admin API handler: authenticate the caller (API token or console
 * session), then run `fn`; the control library checks scopes and validates.
 */
export function adminRoute(route: string, req: Request, fn: (actor: Actor) => Promise<Response>) {
  return handle(route, async () => fn(await requestActor(req)));
}

/** A policy version id from a path segment; 400 unless a positive integer. */
export function versionId(raw: string): number {
  const id = Number(raw);
  if (!/^\d{1,9}$/.test(raw) || !Number.isSafeInteger(id)) {
    throw new ControlError("invalid_request", 400, "a policy version id is a positive integer");
  }
  return id;
}
