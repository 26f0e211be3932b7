// Cookies of tailnet apps. Every app is served under the service worker's one
// origin, so the browser's own jar would mix them (and send one app's session
// to another); the service worker keeps them here instead, one jar per app
// origin (scheme, machine, port), and sets Cookie / reads Set-Cookie itself.
// tough-cookie does the RFC 6265 work (domain, path, expiry). Browser-safe.
import { Cookie, CookieJar, MemoryCookieStore } from "tough-cookie";

export class CookieJarError extends Error {
  override readonly name = "CookieJarError";
  constructor(
    message: string,
    /** `invalid`: a URL or saved state that cannot be used. */
    readonly code: "invalid",
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface AppCookieJarsOptions {
  /** Apps with a jar; the least recently used one is forgotten past this (default 100). */
  maxJars?: number;
  /** Cookies per app; the least recently used are dropped past this (default 180, as browsers keep per domain). */
  maxCookiesPerJar?: number;
  /**
   * Treat apps as secure contexts: Secure cookies are stored and sent over
   * http:// (default true). The page is on the service worker's https origin
   * and WireGuard encrypts the hop, so an app that marks cookies Secure (it
   * believes it is behind TLS) must still get them back.
   */
  secure?: boolean;
}

/** A Set-Cookie longer than this is ignored, as browsers ignore cookies over 4 KiB. */
const MAX_SET_COOKIE_CHARS = 8192;
const FORMAT = "trellis-app-cookies/1";

interface Saved {
  format: typeof FORMAT;
  jars: { origin: string; cookies: unknown[] }[];
}

export class AppCookieJars {
  /** In least- to most-recently-used order (a Map keeps insertion order; use re-inserts). */
  private readonly jars = new Map<string, CookieJar>();
  private readonly maxJars: number;
  private readonly maxCookies: number;
  private readonly secure: boolean;

  constructor(opts: AppCookieJarsOptions = {}) {
    this.maxJars = opts.maxJars ?? 100;
    this.maxCookies = opts.maxCookiesPerJar ?? 180;
    this.secure = opts.secure ?? true;
  }

  /** Number of app jars held. */
  get size(): number {
    return this.jars.size;
  }

  /** The jar of an app origin (e.g. `http://server:80`), created on first use. */
  jar(origin: string): CookieJar {
    const key = originOf(origin);
    let jar = this.jars.get(key);
    if (jar) {
      this.jars.delete(key);
    } else {
      // Every jar is one app's alone, so the public-suffix rule (which stops
      // one site setting cookies for its siblings) has nothing to protect, and
      // would refuse `Domain=server` from a machine named `server`.
      jar = new CookieJar(new MemoryCookieStore(), {
        rejectPublicSuffixes: false,
        allowSecureOnLocal: false,
      });
      while (this.jars.size >= this.maxJars) {
        const oldest = this.jars.keys().next().value;
        if (oldest === undefined) break;
        this.jars.delete(oldest);
      }
    }
    this.jars.set(key, jar);
    return jar;
  }

  /**
   * Store a response's Set-Cookie headers for the URL that was requested.
   * Cookies the jar refuses (bad syntax, a foreign Domain) are skipped, as a
   * browser skips them; they are not the page's errors.
   */
  async setFromResponse(url: string, setCookieHeaders: string[]): Promise<void> {
    const jar = this.jar(url);
    const target = this.cookieUrl(url);
    for (const header of setCookieHeaders) {
      if (header.length > MAX_SET_COOKIE_CHARS) continue;
      await jar.setCookie(header, target, { ignoreError: true });
    }
    await this.trim(jar);
  }

  /** The Cookie header's value for a request to `url` ("" when none apply). */
  async cookieHeader(url: string): Promise<string> {
    const key = originOf(url);
    if (!this.jars.has(key)) return "";
    return this.jar(key).getCookieString(this.cookieUrl(url));
  }

  /** Every jar as JSON (session cookies included: the service worker decides what to persist). */
  async serialize(): Promise<string> {
    const saved: Saved = { format: FORMAT, jars: [] };
    for (const [origin, jar] of this.jars) {
      const cookies = await jar.store.getAllCookies();
      saved.jars.push({ origin, cookies: cookies.map((c) => c.toJSON()) });
    }
    return JSON.stringify(saved);
  }

  /** Jars from `serialize`; cookies that no longer parse are dropped, bounds apply. */
  static async deserialize(s: string, opts: AppCookieJarsOptions = {}): Promise<AppCookieJars> {
    let saved: unknown;
    try {
      saved = JSON.parse(s);
    } catch (e) {
      throw new CookieJarError("saved cookie jars are not JSON", "invalid", { cause: e });
    }
    if (!isSaved(saved))
      throw new CookieJarError("saved cookie jars are not in the expected format", "invalid");
    const jars = new AppCookieJars(opts);
    for (const { origin, cookies } of saved.jars) {
      const jar = jars.jar(origin);
      for (const json of cookies) {
        const cookie = Cookie.fromJSON(json);
        if (cookie) await jar.store.putCookie(cookie);
      }
      await jars.trim(jar);
    }
    return jars;
  }

  /** Forget an app's cookies. */
  clear(origin: string): void {
    this.jars.delete(originOf(origin));
  }

  private cookieUrl(url: string): string {
    const u = new URL(url);
    // Secure cookies are stored and sent only for secure URLs (see `secure`).
    if (this.secure && u.protocol === "http:") u.protocol = "https:";
    else if (this.secure && u.protocol === "ws:") u.protocol = "wss:";
    return u.href;
  }

  /** Drop the least recently used cookies past the bound (expired ones first). */
  private async trim(jar: CookieJar): Promise<void> {
    const all = await jar.store.getAllCookies();
    if (all.length <= this.maxCookies) return;
    const now = Date.now();
    const rank = (c: Cookie) => {
      const exp = c.expiryTime();
      if (exp !== undefined && exp <= now) return -Infinity;
      const used = c.lastAccessed instanceof Date ? c.lastAccessed : c.creation;
      return used instanceof Date ? used.getTime() : 0;
    };
    all.sort((a, b) => rank(a) - rank(b));
    for (const c of all.slice(0, all.length - this.maxCookies)) {
      await jar.store.removeCookie(c.domain, c.path, c.key);
    }
  }
}

/** The jar key: the origin of a URL or origin string (scheme, host, port; default ports made explicit). */
function originOf(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new CookieJarError(`not a URL: ${JSON.stringify(url)}`, "invalid", { cause: e });
  }
  if (u.protocol !== "http:" && u.protocol !== "https:" && u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new CookieJarError(`not an app URL: ${JSON.stringify(url)}`, "invalid");
  }
  // ws://server:80 shares its app's jar, as WebSocket handshakes send the page's cookies.
  const scheme = u.protocol === "ws:" ? "http:" : u.protocol === "wss:" ? "https:" : u.protocol;
  const port = u.port || (scheme === "https:" ? "443" : "80");
  return `${scheme}//${u.hostname}:${port}`;
}

function isSaved(v: unknown): v is Saved {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    o.format === FORMAT &&
    Array.isArray(o.jars) &&
    o.jars.every(
      (j: unknown) =>
        typeof j === "object" &&
        j !== null &&
        typeof (j as Record<string, unknown>).origin === "string" &&
        Array.isArray((j as Record<string, unknown>).cookies),
    )
  );
}
