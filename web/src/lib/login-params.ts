// What the login page takes from its URL: where to go after logging in, and
// which error to show. Both are attacker-chosen (anyone can send a link to
// /login?next=…&error=…), so `next` must resolve to this origin and `error`
// must be a code we know; its text is ours, never the URL's. Bundle-safe.
import { waitWords } from "@trellis/proto/admin";

/** Where the console goes when `next` is missing or refused. */
export const DEFAULT_NEXT = "/machines";

// A placeholder origin: `next` is resolved against it and must stay on it.
const BASE = "https://trellis.invalid";

/**
 * `next` as a path of this origin (path, query, fragment), or DEFAULT_NEXT.
 * Resolved with the URL parser, as the browser will: `/\evil.com`,
 * `/\t/evil.com`, `//evil.com` and `https://evil.com` all leave the origin.
 */
export function safeNext(next: string | null | undefined): string {
  if (typeof next !== "string" || !next.startsWith("/") || next.length > 2048) return DEFAULT_NEXT;
  let url: URL;
  try {
    url = new URL(next, BASE);
  } catch {
    return DEFAULT_NEXT;
  }
  if (url.origin !== BASE) return DEFAULT_NEXT;
  const path = url.pathname + url.search + url.hash;
  // A path that itself begins with two slashes would be read as a host when followed.
  return /^\/[/\\]/.test(path) ? DEFAULT_NEXT : path;
}

/** Errors the login page shows from its URL: next-auth's codes and the server's (ControlError codes). */
const LOGIN_ERRORS: Record<string, string> = {
  OAuthSignin: "could not start single sign-on; try again",
  OAuthCallback: "single sign-on did not complete; try again",
  OAuthAccountNotLinked: "this email is already used by another login method",
  OAuthCreateAccount: "single sign-on could not create your account",
  Callback: "login did not complete; try again",
  AccessDenied: "access denied",
  CredentialsSignin: "wrong email or password",
  SessionRequired: "log in to see this page",
  Configuration: "login is misconfigured on the server; see its log",
  bad_credentials: "wrong email or password",
  rate_limited: "too many failed sign-ins; try again later",
  server_error: "login failed on the server; try again",
  not_allowed: "your account is not in a group allowed to use this tailnet",
  no_email: "the identity provider did not return an email",
  email_unverified: "the identity provider has not verified your email; verify it there, then log in again",
  account_exists:
    "an account with your email already exists; log in with its password (single sign-on is not linked to existing accounts)",
};

/** The message of a known error code, else null. */
export function knownLoginError(code: string): string | null {
  return Object.hasOwn(LOGIN_ERRORS, code) ? LOGIN_ERRORS[code]! : null;
}

/** The message for an error code from the URL; unknown codes get a generic message, never their own text. */
export function loginErrorMessage(code: string | null | undefined): string | null {
  if (typeof code !== "string" || code === "") return null;
  return knownLoginError(code) ?? "login did not complete; try again";
}

/**
 * A refused login as the server hands it to the login form through
 * next-auth's `error`: the code, then the throttle's state — `:left=N`
 * failures before sign-in slows down, or `:wait=MS` before the next try.
 */
export function encodeLoginError(
  code: string,
  throttle: { remaining: number; retryAfterMs: number } | null,
): string {
  if (!throttle) return code;
  return throttle.retryAfterMs > 0
    ? `${code}:wait=${Math.ceil(throttle.retryAfterMs)}`
    : `${code}:left=${Math.max(0, Math.floor(throttle.remaining))}`;
}

/** What the login form learns from the server's answer to its own request. */
export interface LoginFailure {
  code: string;
  /** Failures left before sign-in slows down; null: not said. */
  left: number | null;
  /** Milliseconds to wait before the next try; null: none. */
  waitMs: number | null;
}

/** Read `encodeLoginError`'s text; anything else is a bare code (worded generically when unknown). */
export function parseLoginError(text: string): LoginFailure {
  const m = /^(\w{1,40})(?::(left|wait)=(\d{1,10}))?$/.exec(text);
  if (!m) return { code: text, left: null, waitMs: null };
  const n = m[3] === undefined ? null : Number(m[3]);
  return { code: m[1]!, left: m[2] === "left" ? n : null, waitMs: m[2] === "wait" ? n : null };
}

/**
 * The login form's one message for a failure, `waitLeftMs` after it still
 * to wait (the form counts down): how many failures are left before
 * sign-in slows down, or how long to wait, in words.
 */
export function describeLoginFailure(f: LoginFailure, waitLeftMs: number): string {
  const wrong = "wrong email or password";
  if (f.code === "rate_limited") {
    return waitLeftMs > 0
      ? `too many failed sign-ins; try again in ${waitWords(waitLeftMs)}`
      : "you can try again now";
  }
  if (f.code === "bad_credentials" || f.code === "CredentialsSignin") {
    if (f.waitMs !== null) {
      return waitLeftMs > 0
        ? `${wrong}; wait ${waitWords(waitLeftMs)} before trying again`
        : `${wrong}; you can try again now`;
    }
    if (f.left !== null) {
      return `${wrong}; ${f.left} attempt${f.left === 1 ? "" : "s"} left before sign-in slows down`;
    }
    return wrong;
  }
  return knownLoginError(f.code) ?? "login did not complete; try again";
}
