import { createRequire } from "node:module";
import type * as Bindings from "../pkg/node/trellis_wasm";
import { WireGuardDevice as Device, type WgDeviceClass } from "./device";
import { WireGuardEngine as Engine, type WgEngineBinding, type WgEngineClass } from "./engine";
import { chooseVariant } from "./simd";

export type * from "./device";
export type * from "./engine";
export { simdSupported } from "./simd";
export { concatBatch } from "./batch";

const require = createRequire(import.meta.url);
type Variant = "simd" | "plain";

/**
 * The Node build of the WASM module (wasm-pack's nodejs target, instantiated
 * synchronously). SIMD where V8 supports it; TRELLIS_WASM_SIMD=0 forces plain.
 */
export function nodeBindings(variant?: Variant): typeof Bindings {
  const v = chooseVariant(variant ?? (process.env.TRELLIS_WASM_SIMD === "0" ? "plain" : undefined));
  return require(
    v === "simd" ? "../pkg/node-simd/trellis_wasm.js" : "../pkg/node/trellis_wasm.js",
  ) as typeof Bindings;
}

const bindings = nodeBindings();

export const { TransportKey } = bindings;
export type TransportKey = Bindings.TransportKey;
/** Whether the loaded build uses SIMD128. */
export const SIMD: boolean = bindings.TransportKey.simd();
/** Bytes of the Poly1305 tag after every sealed message. */
export const TAG_LEN = 16;

/** A WireGuard device backed by the Node build of the WASM module. */
export class WireGuardDevice extends Device {
  constructor(privateKey: Uint8Array, seed?: Uint8Array, variant?: Variant) {
    const b = variant ? nodeBindings(variant) : bindings;
    super(b.WgDevice as unknown as WgDeviceClass, privateKey, seed);
  }
}

/** The node engine (device, packet filter, userspace stack) on the Node build. */
export class WireGuardEngine extends Engine {
  constructor(
    privateKey: Uint8Array,
    opts: { stack: boolean; seed?: Uint8Array; now?: number; variant?: Variant },
  ) {
    const b = opts.variant ? nodeBindings(opts.variant) : bindings;
    super(
      b.WgEngine as unknown as WgEngineClass,
      (code) => b.WgDevice.drop_reason_name(code),
      privateKey,
      opts,
    );
  }
}

/**
 * The engine's typed face over a binding made elsewhere with the WASM
 * engine's calls and records (the gateway's native data plane).
 */
export function engineOver(binding: WgEngineBinding, reasonOf: (code: number) => string): Engine {
  return new Engine(binding, reasonOf, new Uint8Array(32), { stack: false });
}
