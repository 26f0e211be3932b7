// What Node-flavoured libraries bundled for the page expect of their world:
// dev-tunnels-ssh reads `Buffer`, `global` and `process.nextTick`. Imported
// before them by every app page. It takes its WebCrypto paths only in a
// secure context (HTTPS or localhost), like the node itself.
import { Buffer } from "buffer";

const g = globalThis as unknown as {
  Buffer?: typeof Buffer;
  global?: unknown;
  process?: {
    env?: Record<string, string>;
    nextTick?: (fn: (...a: unknown[]) => void, ...a: unknown[]) => void;
  };
};
g.Buffer ??= Buffer;
g.global ??= globalThis;
g.process ??= { env: {} };
g.process.nextTick ??= (fn, ...args) => queueMicrotask(() => fn(...args));

export {};
