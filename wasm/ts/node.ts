import { createRequire } from "node:module";
import type * as Bindings from "../pkg/node/trellis_wasm";

/** The WASM module for Node (wasm-pack's nodejs target, instantiated synchronously on load). */
const require = createRequire(import.meta.url);
const bindings = require("../pkg/node/trellis_wasm.js") as typeof Bindings;

export const { TransportKey } = bindings;
export type TransportKey = Bindings.TransportKey;
/** Bytes of the Poly1305 tag after every sealed message. */
export const TAG_LEN = 16;
