// Headers on every response of the console's listener (pages, the admin API,
// Next's assets): the console is never framed (clickjacking of the login
// page, of approve buttons), types are not sniffed, URLs do not leak to other
// sites, and behind TLS the browser keeps to https. The web-apps origin, a
// listener of its own, sets its own (apps-origin.ts): it must be framed by
// the console.
//
// The Content-Security-Policy here restricts what needs no cooperation from
// Next.js's inline scripts: framing, <base>, form targets and plugins. A
// script policy without 'unsafe-inline' needs per-request nonces on every
// page (Next's inline RSC payload scripts), not built yet.

/** The headers for the console at `publicUrl`. */
export function consoleSecurityHeaders(publicUrl: string): [string, string][] {
  const headers: [string, string][] = [
    [
      "content-security-policy",
      "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'",
    ],
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
