import type * as Bindings from "../pkg/web/trellis_wasm.js";
import { WireGuardDevice as Device, type WgDeviceClass } from "./device";
import { WireGuardEngine as Engine, type WgEngineClass } from "./engine";
import { chooseVariant } from "./simd";

export type * from "./device";
export type * from "./engine";
export { simdSupported } from "./simd";
/** Bytes of the Poly1305 tag after every sealed message. */
export const TAG_LEN = 16;

let loaded: Promise<typeof Bindings> | null = null;
let bindings: typeof Bindings | null = null;

/**
 * Load the WASM module in a browser or worker (once): the SIMD build where the
 * engine supports SIMD128, the plain one elsewhere. Resolves to whether SIMD
 * is in use.
 */
export async function loadWasm(opts: { variant?: "simd" | "plain" } = {}): Promise<boolean> {
  loaded ??= (async () => {
    const mod = (
      chooseVariant(opts.variant) === "simd"
        ? await import("../pkg/web-simd/trellis_wasm.js")
        : await import("../pkg/web/trellis_wasm.js")
    ) as typeof Bindings & { default: () => Promise<unknown> };
    await mod.default();
    bindings = mod;
    return mod;
  })();
  // A failed load (the network, mostly) is not kept: the next call tries again.
  loaded.catch(() => (loaded = null));
  return (await loaded).TransportKey.simd();
}

function ready(): typeof Bindings {
  if (!bindings) throw new Error("call loadWasm() before using the WASM module");
  return bindings;
}

/** One direction's transport key (call `loadWasm` first). */
export function transportKey(key: Uint8Array): Bindings.TransportKey {
  return new (ready().TransportKey)(key);
}

/** A WireGuard device backed by the browser build (call `loadWasm` first). */
export class WireGuardDevice extends Device {
  constructor(privateKey: Uint8Array, seed?: Uint8Array) {
    super(ready().WgDevice as unknown as WgDeviceClass, privateKey, seed);
  }
}

/** The node engine (device, packet filter, userspace stack) on the browser build (call `loadWasm` first). */
export class WireGuardEngine extends Engine {
  constructor(privateKey: Uint8Array, opts: { stack: boolean; seed?: Uint8Array; now?: number }) {
    const b = ready();
    super(
      b.WgEngine as unknown as WgEngineClass,
      (code) => b.WgDevice.drop_reason_name(code),
      privateKey,
      opts,
    );
  }
}
