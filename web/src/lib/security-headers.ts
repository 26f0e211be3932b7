// Headers on every response of the console's listener (pages, the admin API,
// Next's assets): the console is never framed (clickjacking of the login
// page, of approve buttons), types are not sniffed, URLs do not leak to other
// sites, and behind TLS the browser keeps to https. The web-apps origin, a
// listener of its own, sets its own (apps-origin.ts): it must be framed by
// the console.
//
// Scripts: only those carrying this response's nonce run, and what they load
// ('strict-dynamic': Next's chunks, the node's SharedWorker); no inline
// script without the nonce, no eval outside `next dev`. Next.js reads the
// nonce from the request's own Content-Security-Policy header and puts it on
// every script it renders (server.ts sets both), so every page must render
// per request — only /_global-error is prerendered, and its scripts load as
// chunks. WebAssembly compiles under 'wasm-unsafe-eval' (the WireGuard core).
// Next's static chunks get no script policy of their own: a worker script's
// response policy would govern the worker's own imports and WebAssembly.
import { randomBytes } from "node:crypto";

const BASE = "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'";

/** A fresh nonce for one response: 128 random bits, base64. */
export function newNonce(): string {
  return randomBytes(16).toString("base64");
}

/** The Content-Security-Policy of a console response whose scripts carry `nonce` (null: static assets). */
export function consoleCsp(nonce: string | null, opts: { dev?: boolean } = {}): string {
  if (nonce === null) return BASE;
  const script = [
    `'nonce-${nonce}'`,
    "'strict-dynamic'",
    "'wasm-unsafe-eval'",
    ...(opts.dev ? ["'unsafe-eval'"] : []),
  ];
  return `script-src ${script.join(" ")}; worker-src 'self'; ${BASE}`;
}

/** The headers other than the CSP for the console at `publicUrl`. */
export function consoleSecurityHeaders(publicUrl: string): [string, string][] {
  const headers: [string, string][] = [
    ["x-frame-options", "DENY"],
    ["x-content-type-options", "nosniff"],
    ["referrer-policy", "same-origin"],
    ["cross-origin-opener-policy", "same-origin"],
  ];
  if (new URL(publicUrl).protocol === "https:") {
    headers.push(["strict-transport-security", "max-age=31536000"]);
  }
  return headers;
}

/** The nonce of a policy made by consoleCsp (for inline scripts of our own). */
export function nonceOf(csp: string | null | undefined): string | undefined {
  return csp ? /'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1] : undefined;
}
