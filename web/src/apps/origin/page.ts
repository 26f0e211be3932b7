// The script of every page on the web-apps origin: the boot page the server
// answers with before the service worker is in control, and every HTML page
// of an app (the service worker adds it). It fetches bridges — connections
// of the browser's node, from the console page that frames the app — for
// the service worker, and tells the console where the app now is. Bundled
// by web/apps-origin.ts, which prepends the console's origin.
import { TailnetWebSocket } from "@trellis/client/apps/web";
import { BRIDGE, BridgeClient, NEED_BRIDGE, parseTarget, type Target } from "./protocol";

const CONSOLE = (globalThis as unknown as { __TRELLIS_CONSOLE: string }).__TRELLIS_CONSOLE;
const here = parseTarget(location.pathname);

/** A bridge for `target` from the console page at the top of this window's frames. */
function askConsole(target: string): Promise<MessagePort> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      removeEventListener("message", onMessage);
      reject(new Error("the Trellis console did not answer"));
    }, 10_000);
    const onMessage = (e: MessageEvent) => {
      const m = e.data as { t?: string; target?: string } | null;
      if (e.origin !== CONSOLE || m?.t !== BRIDGE || m.target !== target || !e.ports[0]) return;
      clearTimeout(timer);
      removeEventListener("message", onMessage);
      resolve(e.ports[0]);
    };
    addEventListener("message", onMessage);
    window.top!.postMessage({ t: NEED_BRIDGE, target }, CONSOLE);
  });
}

/**
 * The service worker that carries an app's requests. Browsers offer none
 * outside a secure context: the web-apps origin must be https (or localhost).
 */
async function installWorker(): Promise<void> {
  if (!("serviceWorker" in navigator))
    throw new Error(
      `this browser offers no service workers at ${location.origin}: the web-apps origin must be served over https`,
    );
  await navigator.serviceWorker.register("/__trellis/sw.js", { scope: "/" });
  await navigator.serviceWorker.ready;
}

async function giveBridge(target: string): Promise<void> {
  const port = await askConsole(target);
  const sw = navigator.serviceWorker.controller ?? (await navigator.serviceWorker.ready).active;
  sw?.postMessage({ t: BRIDGE, target }, [port]);
}

async function boot(): Promise<void> {
  const say = (text: string) => {
    const p = document.getElementById("status");
    if (p) p.textContent = text;
  };
  if (!here) return say("This address is not a tailnet web app. Open web apps from the Trellis console.");
  await installWorker();
  await giveBridge(here.target.key);
  // Loaded again, the page is the service worker's: the app itself.
  location.reload();
}

/**
 * The console page's hidden bridge frame: it installs the service worker,
 * hands it a bridge before the app's frame loads, and answers the worker's
 * requests for more while the console page is open.
 */
async function bridgePage(): Promise<void> {
  const key = decodeURIComponent(location.hash.slice(1));
  if (!parseTarget(`/${key}/`)) throw new Error(`not an app: ${key}`);
  await installWorker();
  await giveBridge(key);
  navigator.serviceWorker.addEventListener("message", (e) => {
    const m = e.data as { t?: string; target?: string } | null;
    if (m?.t === NEED_BRIDGE && m.target === key) void giveBridge(key).catch(() => undefined);
  });
  window.parent.postMessage({ t: "trellis-bridge-ready", target: key }, CONSOLE);
}

if (document.documentElement.hasAttribute("data-trellis-bridge")) {
  bridgePage().catch((e: unknown) =>
    window.parent.postMessage(
      { t: "trellis-bridge-failed", message: e instanceof Error ? e.message : String(e) },
      CONSOLE,
    ),
  );
} else if (window.top === window) {
  // Opened on its own: apps show inside the console, which joins the tailnet and checks the policy.
  location.replace(`${CONSOLE}/web${location.pathname}${location.search}`);
} else if (document.documentElement.hasAttribute("data-trellis-boot")) {
  boot().catch((e: unknown) => {
    const p = document.getElementById("status");
    if (p) p.textContent = `Could not open the app: ${e instanceof Error ? e.message : String(e)}`;
  });
} else {
  if (here) installWebSocket(here.target);
  navigator.serviceWorker.addEventListener("message", (e) => {
    const m = e.data as { t?: string; target?: string } | null;
    if (m?.t === NEED_BRIDGE && typeof m.target === "string")
      void giveBridge(m.target).catch(() => undefined);
  });
  if (here)
    window.top!.postMessage({ t: "trellis-location", path: location.pathname + location.search }, CONSOLE);
}

/**
 * The app's WebSockets to its own server go over the tailnet (a service
 * worker cannot carry them): `new WebSocket` for this origin or the app's
 * own host gets a TailnetWebSocket on a bridge of this page; any other
 * address keeps the browser's WebSocket.
 */
function installWebSocket(target: Target): void {
  const Native = window.WebSocket;
  let bridge: Promise<BridgeClient> | null = null;
  const dial = async () => {
    bridge ??= askConsole(target.key).then((p) => new BridgeClient(p));
    try {
      return await (await bridge).connect();
    } catch (e) {
      bridge = null;
      throw e;
    }
  };
  function AppWebSocket(url: string | URL, protocols?: string | string[]): WebSocket {
    const u = new URL(String(url), location.href);
    const ours = u.host === location.host || u.hostname === target.machine;
    if (!ours) return new Native(url, protocols);
    const inApp = parseTarget(u.pathname);
    const path = inApp && inApp.target.key === target.key ? inApp.path : u.pathname;
    const appUrl = `ws://${target.hostHeader}${path}${u.search}`;
    return new TailnetWebSocket(appUrl, protocols, dial, {
      headers: [["origin", target.origin]],
    }) as unknown as WebSocket;
  }
  Object.assign(AppWebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  AppWebSocket.prototype = Native.prototype;
  (window as unknown as { WebSocket: unknown }).WebSocket = AppWebSocket;
}
