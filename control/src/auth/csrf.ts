// CSRF by origin (docs/decisions.md): a state change authenticated by the
// session cookie must come from the console's own origin. Browsers set
// Origin and Sec-Fetch-Site on every cross-site write, and scripts cannot
// forge them.
import { ControlError } from "../errors";

/** The request headers the check reads. */
export interface OriginHeaders {
  origin: string | null;
  secFetchSite: string | null;
  host: string | null;
}

/** 403 unless a cookie-authenticated change comes from the console (`publicUrl`'s origin). */
export function checkOrigin(h: OriginHeaders, publicUrl: string): void {
  const expected = new URL(publicUrl).origin;
  let sameHost = false;
  if (h.origin !== null && h.host !== null) {
    try {
      sameHost = new URL(h.origin).host === h.host;
    } catch {
      throw new ControlError("csrf", 403, "cross-site request refused");
    }
  }
  if (h.secFetchSite === "cross-site" || (h.origin !== null && h.origin !== expected && !sameHost)) {
    throw new ControlError("csrf", 403, "cross-site request refused");
  }
  if (h.origin === null && h.secFetchSite === null) {
    // Neither header: not a browser (browsers send Origin on every non-GET fetch and form post).
    throw new ControlError("csrf", 403, "a cookie-authenticated change must come from the console");
  }
}
