/**
 * Does this engine run WebAssembly SIMD128? Validates a tiny module that uses
 * a v128 instruction (the probe wasm-feature-detect uses), which costs
 * microseconds and needs no network.
 */
export function simdSupported(): boolean {
  // Reached through globalThis: Node-only tsconfigs (no DOM lib) lack the global's type.
  const wasm = (globalThis as { WebAssembly?: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
  try {
    return (
      wasm !== undefined &&
      wasm.validate(
        new Uint8Array([
          0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15,
          253, 98, 11,
        ]),
      )
    );
  } catch {
    return false;
  }
}

/** Which build to load: SIMD where the engine has it, unless `preferred` says otherwise. */
export function chooseVariant(preferred?: "simd" | "plain"): "simd" | "plain" {
  if (preferred === "plain") return "plain";
  return simdSupported() ? "simd" : "plain";
}
