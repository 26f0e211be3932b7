// CSRF by origin (docs/decisions.md): a state change authenticated by the
// session cookie must come from the console's own origin — exactly the
// origin of TRELLIS_PUBLIC_URL, scheme and port included. Browsers send
// Origin on every non-GET fetch and form post, and Sec-Fetch-Site, and
// scripts cannot forge either.
import { ControlError } from "../errors";

/** The request headers the check reads. */
export interface OriginHeaders {
  origin: string | null;
  secFetchSite: string | null;
  /** Not used for the decision (a Host matching is no proof of origin); kept for callers' symmetry. */
  host?: string | null;
}

/**
 * 403 unless a cookie-authenticated change comes from the console:
 * `Origin` equal to `publicUrl`'s origin (an opaque `null`, another scheme
 * or port, or another host are refused), or, with no Origin at all,
 * `Sec-Fetch-Site: same-origin`. Without either header the request is not
 * a browser's same-origin request and is refused.
 */
export function checkOrigin(h: OriginHeaders, publicUrl: string): void {
  const expected = new URL(publicUrl).origin;
  if (h.secFetchSite !== null && h.secFetchSite !== "same-origin" && h.origin !== expected) {
    throw csrf(`cross-site request refused (Sec-Fetch-Site: ${h.secFetchSite.slice(0, 20)})`);
  }
  if (h.origin !== null) {
    if (h.origin !== expected) {
      throw csrf(`cross-site request refused: the console's origin is ${expected} (TRELLIS_PUBLIC_URL)`);
    }
    return;
  }
  if (h.secFetchSite !== "same-origin") {
    throw csrf("a cookie-authenticated change must come from the console");
  }
}

function csrf(message: string): ControlError {
  return new ControlError("csrf", 403, message);
}
