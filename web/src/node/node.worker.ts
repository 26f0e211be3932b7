// The browser node's SharedWorker: one engine for every Trellis tab of this
// browser profile (client/src/browser/host.ts). Loaded by pages as
// `new SharedWorker(new URL("./node.worker.ts", import.meta.url))`, which
// Next.js (Turbopack) bundles as a worker entry of its own.
import { EngineHost, KeyStore, openWebSocket, type ToWorker } from "@trellis/client/browser";
import { loadWasm, WireGuardEngine } from "@trellis/wasm";

interface SharedScope {
  location: Location;
  onconnect: ((e: MessageEvent) => void) | null;
}
const scope = globalThis as unknown as SharedScope;

let wasm: Promise<unknown> | null = null;
const host = new EngineHost({
  baseUrl: scope.location.origin,
  keys: KeyStore.browser(),
  // Fetched and compiled when the node first joins, not for every page that opens.
  loadWasm: () => (wasm ??= loadWasm()),
  createWasmEngine: (key) => new WireGuardEngine(key, { stack: true }),
  socketFactory: openWebSocket,
});

scope.onconnect = (e) => {
  const port = e.ports[0]!;
  const deliver = host.connect(port);
  port.onmessage = (m: MessageEvent<ToWorker>) => deliver(m.data);
  port.start();
};
