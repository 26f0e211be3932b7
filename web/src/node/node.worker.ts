// The browser node's SharedWorker: one engine for every Trellis tab of this
// browser profile (client/src/browser/host.ts). Loaded by pages as
// `new SharedWorker(new URL("./node.worker.ts", import.meta.url))`, which
// Next.js (Turbopack) bundles as a worker entry of its own.
import { EngineHost, KeyStore, openWebSocket, type ToPage } from "@trellis/client/browser";
import { loadWasm, WireGuardEngine } from "@trellis/wasm";

interface SharedScope {
  location: Location;
  onconnect: ((e: MessageEvent) => void) | null;
}
const scope = globalThis as unknown as SharedScope;

let host: EngineHost | null = null;
let cannotRun = "";
try {
  host = new EngineHost({
    baseUrl: scope.location.origin,
    keys: KeyStore.browser(),
    // Fetched and compiled when the node first joins, not for every page that opens
    // (once; a failed load is tried again by the next join).
    loadWasm,
    createWasmEngine: (key) => new WireGuardEngine(key, { stack: true }),
    socketFactory: openWebSocket,
    // Web Locks are everywhere Trellis runs (a secure context, as the key store needs); checked anyway.
    hold: !navigator.locks
      ? undefined
      : (name, lost) =>
          new Promise((acquired, failed) => {
            let release: () => void = () => undefined;
            const held = new Promise<void>((resolve) => (release = resolve));
            navigator.locks
              .request(name, { steal: true }, () => {
                acquired(release);
                return held;
              })
              .catch((err: unknown) => {
                // Stolen by a newer worker: an AbortError on the request we held.
                if (err instanceof DOMException && err.name === "AbortError") lost();
                else failed(err);
              });
          }),
    workers: (() => {
      const channel = new BroadcastChannel("trellis-node");
      return {
        post: (msg) => channel.postMessage(msg),
        listen: (receive) => (channel.onmessage = (e: MessageEvent<unknown>) => receive(e.data)),
      };
    })(),
  });
} catch (err) {
  // No node in this browser (a page that is not a secure context has no Web Crypto): every page says why.
  cannotRun = err instanceof Error ? err.message : String(err);
}

scope.onconnect = (e) => {
  const port = e.ports[0]!;
  if (!host) {
    const failed: ToPage = { t: "state", state: { phase: "failed", message: cannotRun } };
    port.postMessage(failed);
    return;
  }
  const deliver = host.connect(port);
  // Checked by the host (host.connect): pages are not trusted to send what they should.
  port.onmessage = (m: MessageEvent<unknown>) => deliver(m.data);
  port.start();
};
