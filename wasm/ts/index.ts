import init, { TransportKey } from "../pkg/web/trellis_wasm.js";

export { TransportKey };
/** Bytes of the Poly1305 tag after every sealed message. */
export const TAG_LEN = 16;

let ready: Promise<void> | null = null;

/**
 * Load the WASM module in a browser or worker (once). `source` defaults to the
 * `.wasm` file next to the glue, resolved by the bundler.
 */
export function loadWasm(source?: URL | string | Response | BufferSource): Promise<void> {
  ready ??= init(source === undefined ? undefined : { module_or_path: source }).then(() => undefined);
  return ready;
}
