// The admin API's route handlers: parse, authorize, call @trellis/control,
// shape the answer. Bodies are read and errors answered by the same code as
// the node API on node:http (@trellis/control/http).
import { ControlError } from "@trellis/control/errors";
import { getRuntime } from "@trellis/control/handle";
import { errorReply, errorReplyOf, parseJson, readBody } from "@trellis/control/http";
import type { Actor } from "@trellis/control/auth";
import type { ApiError } from "@trellis/proto";
import { requestActor } from "./actor";

export { getRuntime };

/** Build an API error response in the one shape every endpoint uses. */
export function apiError(status: number, body: ApiError): Response {
  const r = errorReplyOf(status, body);
  return Response.json(r.body, { status: r.status, headers: r.headers });
}

/**
 * Run a route handler body: ControlErrors become their 4xx/5xx JSON, anything
 * else is logged with context and becomes a 500 without internals.
 */
export async function handle(route: string, fn: () => Promise<Response>): Promise<Response> {
  try {
    return await fn();
  } catch (err) {
    const r = errorReply(err, getRuntime().log, route);
    return Response.json(r.body, { status: r.status, headers: r.headers });
  }
}

/**
 * Parse a JSON request body of at most `limit` bytes; malformed JSON is a 400.
 * The bytes are counted as they arrive (a chunked body declares no length):
 * reading stops at the first byte over the limit.
 */
export async function readJson(req: Request, limit = 64 * 1024): Promise<unknown> {
  return parseJson(await readBody(req.body, limit, req.headers.get("content-length")));
}

/**
 * The request with its body read (at most `limit` bytes, counted as they
 * arrive) and held, for handlers that would otherwise read a whole body
 * themselves (next-auth's req.text() and req.json()); 413 when larger.
 */
export async function withBoundedBody<R extends Request>(
  req: R,
  limit: number,
  make: (input: string, init: BoundedInit) => R,
): Promise<R> {
  if (req.method === "GET" || req.method === "HEAD") return req;
  const bytes = await readBody(req.body, limit, req.headers.get("content-length"));
  const headers = new Headers(req.headers);
  headers.delete("content-length");
  headers.delete("transfer-encoding");
  return make(req.url, { method: req.method, headers, body: bytes as BodyInit, signal: req.signal });
}

/** What {@link withBoundedBody} builds its request from. */
export interface BoundedInit {
  method: string;
  headers: Headers;
  body: BodyInit;
  signal: AbortSignal;
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
    throw new ControlError(
      "invalid_request",
      400,
      "a policy version id is a whole number (0 is the built-in default)",
    );
  }
  return id;
}
