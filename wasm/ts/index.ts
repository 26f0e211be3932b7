import init, { TransportKey, WgDevice } from "../pkg/web/trellis_wasm.js";
import { WireGuardDevice as Device, type WgDeviceClass } from "./device";

export { TransportKey };
export type * from "./device";
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

/** A WireGuard device backed by the browser build (call `loadWasm` first). */
export class WireGuardDevice extends Device {
  constructor(privateKey: Uint8Array, seed?: Uint8Array) {
    super(WgDevice as unknown as WgDeviceClass, privateKey, seed);
  }
}
