//! Fuzz `Device::receive` (and `send` and `tick` around it): see the harness
//! in `src/lib.rs` for the input format. Run with `scripts/fuzz-wasm.sh`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    trellis_wasm_fuzz::run(data);
});
