// The one mapping from errors to HTTP answers, for the node API on node:http
// and the admin API in Next.js alike: a ControlError (or a policy the
// engine refused) is the caller's, with its status, code and issues; anything
// else is a bug, logged with its route and answered 500 without internals.
import type { Logger } from "@trellis/log";
import { NODE_AUTH_SCHEME, type ApiError } from "@trellis/proto";
import { ControlError } from "../errors";

/** Error codes of the admin API's own authentication (as opposed to node request signatures). */
const BEARER_ERRORS = new Set(["bad_token", "unauthenticated"]);

export interface ErrorReply {
  status: number;
  headers: Record<string, string>;
  body: ApiError;
}

/** An answer in the API's one error shape. */
export function errorReplyOf(status: number, body: ApiError, extra: Record<string, string> = {}): ErrorReply {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "cache-control": "no-store",
    ...extra,
  };
  // Name the scheme a 401 expects (RFC 9110 §11.6.1): API tokens, or node signatures.
  if (status === 401) {
    headers["www-authenticate"] = BEARER_ERRORS.has(body.error) ? 'Bearer realm="trellis"' : NODE_AUTH_SCHEME;
  }
  return { status, headers, body };
}

/** The answer for an error thrown while serving `route`. */
export function errorReply(err: unknown, log: Logger, route: string): ErrorReply {
  const known = ControlError.of(err);
  if (known) {
    return errorReplyOf(
      known.status,
      {
        error: known.code,
        message: known.message,
        ...(known.issues ? { issues: known.issues } : {}),
      },
      // A busy or unavailable service says when to try again (the database is
      // usually back within seconds: a restart, a failover).
      known.retryAfterSec !== undefined ? { "retry-after": String(known.retryAfterSec) } : {},
    );
  }
  log.error({ err, route }, "request failed");
  return errorReplyOf(500, { error: "internal", message: "internal server error" });
}
