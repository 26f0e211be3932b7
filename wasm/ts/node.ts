import { createRequire } from "node:module";
import type * as Bindings from "../pkg/node/trellis_wasm";
import { WireGuardDevice as Device, type WgDeviceClass } from "./device";

/** The WASM module for Node (wasm-pack's nodejs target, instantiated synchronously on load). */
const require = createRequire(import.meta.url);
const bindings = require("../pkg/node/trellis_wasm.js") as typeof Bindings;

export const { TransportKey } = bindings;
export type TransportKey = Bindings.TransportKey;
/** Bytes of the Poly1305 tag after every sealed message. */
export const TAG_LEN = 16;

export type * from "./device";

/** A WireGuard device backed by the Node build of the WASM module. */
export class WireGuardDevice extends Device {
  constructor(privateKey: Uint8Array, seed?: Uint8Array) {
    super(bindings.WgDevice as unknown as WgDeviceClass, privateKey, seed);
  }
}
