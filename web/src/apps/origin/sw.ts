// The web-apps origin's service worker: it serves `/<machine>:<port>/<path>`
// (and the absolute paths an app's pages use) by carrying each request over
// a TCP connection of the browser's node as HTTP/1.1. The connections come
// from the console page that frames the app, through a MessagePort it
// hands over (the "bridge"); the console's origin, its cookies and the
// node's keys stay out of this origin's reach. Set-Cookie goes to a jar per
// app (persisted in this origin's IndexedDB: the worker is restarted when
// idle), redirects and absolute paths stay inside the app. Bundled by
// web/apps-origin.ts with esbuild.
import { AppCookieJars, HttpClient, HttpError, type Duplex } from "@trellis/client/apps/web";
import { BridgeClient, BridgeGone, parseTarget, type Target } from "./protocol";

declare const self: ServiceWorkerGlobalScope;

/** Request bodies larger than this are refused (uploads stream in a later version). */
const MAX_REQUEST_BODY = 32 * 1024 * 1024;
/** HTML read whole to add the page script; larger pages pass untouched. */
const MAX_INJECT_HTML = 8 * 1024 * 1024;
const BRIDGE_WAIT_MS = 8000;

// --- Bridges: connections of the browser's node, per app -------------------------------

const bridges = new Map<string, BridgeClient[]>();
/** HTTP clients (with their kept connections) per app. */
const clientsByTarget = new Map<string, HttpClient>();
const bridgeWaiters = new Map<string, (() => void)[]>();

function addBridge(target: Target, port: MessagePort): void {
  const list = bridges.get(target.key) ?? [];
  // A few per app (one per console tab showing it); the newest first. A bridge whose console page
  // closed leaves at once.
  const b: BridgeClient = new BridgeClient(port, () => dropBridge(target, b));
  bridges.set(target.key, [b, ...list].slice(0, 4));
  // A new bridge comes from a console page that just opened: the older ones' console pages may be
  // gone, and kept connections through them with it (silently: the streams cross that page).
  resetClient(target);
  for (const fn of bridgeWaiters.get(target.key) ?? []) fn();
  bridgeWaiters.delete(target.key);
}

function dropBridge(target: Target, b: BridgeClient): void {
  resetClient(target);
  bridges.set(
    target.key,
    (bridges.get(target.key) ?? []).filter((x) => x !== b),
  );
  b.port.close();
}

/** Forget the app's kept connections (they may run through a console page that is gone). */
function resetClient(target: Target): void {
  clientsByTarget.get(target.key)?.close();
  clientsByTarget.delete(target.key);
}

/** The first bridge of the app whose console page still answers; the silent ones are dropped. */
async function liveBridge(target: Target): Promise<BridgeClient | null> {
  for (const b of [...(bridges.get(target.key) ?? [])]) {
    if (await b.alive()) return b;
    dropBridge(target, b);
  }
  return null;
}

/** A bridge for the app, asking the app's pages for one (through their console page) when there is none. */
async function bridgeFor(target: Target): Promise<BridgeClient | null> {
  const have = bridges.get(target.key)?.[0];
  if (have) return have;
  const arrived = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), BRIDGE_WAIT_MS);
    const list = bridgeWaiters.get(target.key) ?? [];
    list.push(() => (clearTimeout(timer), resolve(true)));
    bridgeWaiters.set(target.key, list);
  });
  for (const c of await self.clients.matchAll({ type: "window" }))
    c.postMessage({ t: "trellis-need-bridge", target: target.key });
  return (await arrived) ? (bridges.get(target.key)?.[0] ?? null) : null;
}

function dialer(target: Target): () => Promise<Duplex> {
  return async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const b = await bridgeFor(target);
      if (!b)
        throw new HttpError(`no Trellis page is showing ${target.key}: open it from the console`, "closed");
      try {
        return await b.connect();
      } catch (e) {
        // A silent bridge belongs to a console page that closed: forget it, try another.
        if (e instanceof BridgeGone) {
          dropBridge(target, b);
          continue;
        }
        throw e;
      }
    }
    throw new HttpError(`the Trellis page showing ${target.key} no longer answers`, "closed");
  };
}

// --- Cookie jars, kept across restarts ----------------------------------------------------

const DB = "trellis-apps";
function idb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore("jars");
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error ?? new Error("IndexedDB"));
  });
}
const db = idb();
const jars: Promise<AppCookieJars> = db.then(
  (d) =>
    new Promise<AppCookieJars>((resolve) => {
      const r = d.transaction("jars").objectStore("jars").get("all");
      r.onsuccess = () =>
        typeof r.result === "string"
          ? AppCookieJars.deserialize(r.result).then(resolve, () => resolve(new AppCookieJars()))
          : resolve(new AppCookieJars());
      r.onerror = () => resolve(new AppCookieJars());
    }),
);
/** Keep the jars across restarts of this worker (it is stopped when idle). */
async function saveJars(): Promise<void> {
  const s = await (await jars).serialize();
  (await db).transaction("jars", "readwrite").objectStore("jars").put(s, "all");
}

// --- Requests --------------------------------------------------------------------------------

function httpFor(target: Target): HttpClient {
  let c = clientsByTarget.get(target.key);
  if (!c) {
    c = new HttpClient(dialer(target));
    clientsByTarget.set(target.key, c);
  }
  return c;
}

/** The app a request belongs to: its own path, or the page (client) or referrer it came from. */
async function targetOf(event: FetchEvent, url: URL): Promise<{ target: Target; path: string } | null> {
  const own = parseTarget(url.pathname);
  if (own) return { target: own.target, path: own.path + url.search };
  const from = event.clientId ? (await self.clients.get(event.clientId))?.url : event.request.referrer;
  if (!from) return null;
  const fromUrl = new URL(from);
  if (fromUrl.origin !== self.location.origin) return null;
  const t = parseTarget(fromUrl.pathname);
  return t ? { target: t.target, path: url.pathname + url.search } : null;
}

/** A Location from the app, made to point inside the app's space here. */
function rewriteLocation(location: string, target: Target, base: string): string {
  const abs = new URL(location, base);
  const sameApp =
    abs.origin === target.origin ||
    (abs.hostname === target.machine && (abs.port || "80") === String(target.port)) ||
    abs.origin === self.location.origin;
  return sameApp ? `/${target.key}${abs.pathname}${abs.search}${abs.hash}` : abs.href;
}

const HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "te",
  "trailer",
]);

function problem(status: number, message: string): Response {
  return new Response(
    `<!doctype html><meta charset="utf-8"><title>Trellis</title><body style="font:16px system-ui;margin:2rem"><h1>Cannot show this page</h1><p>${message.replace(/[<&>]/g, (c) => `&#${c.charCodeAt(0)};`)}</p>`,
    { status, headers: { "content-type": "text/html; charset=utf-8" } },
  );
}

async function handle(event: FetchEvent): Promise<Response> {
  const req = event.request;
  const url = new URL(req.url);
  const found = await targetOf(event, url);
  if (!found)
    return problem(404, "This address is not a tailnet web app. Open web apps from the Trellis console.");
  const { target, path } = found;
  // An app's absolute link (`/about`) navigates to the app's space, so the page keeps its place.
  // 307 keeps a form's method and body.
  if (!parseTarget(url.pathname) && req.mode === "navigate")
    return Response.redirect(
      `${self.location.origin}/${target.key}${path}`,
      ["GET", "HEAD"].includes(req.method) ? 302 : 307,
    );

  // A page load needs a console page that answers; with none (it was reloaded or closed), the boot
  // page fetches a bridge from the console page framing it now and loads the app again.
  if (req.mode === "navigate" && !(await liveBridge(target))) return fetch("/__trellis/boot.html");

  const appUrl = `${target.origin}${path}`;
  const headers: [string, string][] = [];
  req.headers.forEach((v, n) => {
    // The browser's cookies for this origin are not the app's; the jar has those.
    if (n === "cookie" || n === "host" || n === "accept-encoding" || HOP.has(n)) return;
    if (n === "origin") return headers.push([n, target.origin]);
    if (n === "referer") {
      const r = parseTarget(new URL(v).pathname);
      return r ? headers.push([n, `${target.origin}${r.path}`]) : undefined;
    }
    headers.push([n, v]);
  });
  // A response built here is not decoded by the browser: ask only for codings this worker decodes.
  headers.push(["accept-encoding", "gzip, deflate"]);
  const cookie = await (await jars).cookieHeader(appUrl);
  if (cookie) headers.push(["cookie", cookie]);
  let body: Uint8Array | null = null;
  if (!["GET", "HEAD"].includes(req.method)) {
    const buf = await req.arrayBuffer();
    if (buf.byteLength > MAX_REQUEST_BODY)
      return problem(413, "The request body is too large for a tailnet web app.");
    body = new Uint8Array(buf);
  }
  let res;
  try {
    res = await httpFor(target).request({
      method: req.method,
      target: path,
      host: target.hostHeader,
      headers,
      body,
    });
  } catch (e) {
    const code = (e as { code?: string }).code;
    const message = (e as Error).message;
    if (e instanceof HttpError && e.code === "malformed" && /status line/.test(message))
      return problem(
        502,
        `${target.key} did not answer in HTTP. If it speaks TLS (HTTPS), that is not supported here: the tunnel already encrypts; use its plain-HTTP port.`,
      );
    if (code === "refused")
      return problem(502, `${target.key} refused the connection: nothing listens on port ${target.port}.`);
    if (code === "timeout") return problem(504, `${target.key} did not answer in time.`);
    return problem(502, `Could not reach ${target.key}: ${message}`);
  }
  const out = new Headers();
  const setCookies: string[] = [];
  for (const [n, v] of res.headers) {
    if (HOP.has(n)) continue;
    if (n === "set-cookie") setCookies.push(v);
    else if (n === "location") out.append(n, rewriteLocation(v, target, appUrl));
    // The console frames the app: a frame-ancestors rule of the app's own would hide it.
    else if (n === "x-frame-options") continue;
    else if (n === "content-security-policy")
      out.append(
        n,
        v
          .split(";")
          .filter((d) => !/^\s*frame-ancestors\b/i.test(d))
          .join(";"),
      );
    else out.append(n, v);
  }
  if (setCookies.length) {
    await (await jars).setFromResponse(appUrl, setCookies);
    await saveJars();
  }
  const noBody = res.body === null || [101, 204, 205, 304].includes(res.status);
  let resBody = res.body;
  const coding = (out.get("content-encoding") ?? "").trim().toLowerCase();
  if (!noBody && resBody && (coding === "gzip" || coding === "x-gzip" || coding === "deflate")) {
    resBody = resBody.pipeThrough(
      new DecompressionStream(coding === "deflate" ? "deflate" : "gzip") as unknown as ReadableWritablePair<
        Uint8Array,
        Uint8Array
      >,
    );
    out.delete("content-encoding");
    out.delete("content-length");
  }
  const type = out.get("content-type") ?? "";
  const length = Number(out.get("content-length") ?? "0");
  if (!noBody && /^text\/html/i.test(type) && length <= MAX_INJECT_HTML && !out.get("content-encoding")) {
    // The page script: it asks the console page for connections when this worker has none.
    const html = await new Response(resBody).text();
    const script = `<script src="/__trellis/page.js"></script>`;
    const at = html.search(/<head[^>]*>/i);
    const injected = at >= 0 ? html.replace(/<head[^>]*>/i, (m) => m + script) : script + html;
    out.delete("content-length");
    return new Response(injected, { status: res.status, statusText: res.statusText, headers: out });
  }
  return new Response(noBody ? null : resBody, {
    status: res.status,
    statusText: res.statusText,
    headers: out,
  });
}

self.addEventListener("install", () => void self.skipWaiting());
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));
self.addEventListener("message", (e) => {
  const m = e.data as { t?: string; target?: string } | null;
  if (m?.t !== "trellis-bridge" || !e.ports[0] || typeof m.target !== "string") return;
  const t = parseTarget(`/${m.target}/`);
  if (t) addBridge(t.target, e.ports[0]);
});
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith("/__trellis/")) return;
  event.respondWith(handle(event));
});
