//! Trellis's WireGuard core for WebAssembly (and native tests).
//!
//! The protocol as the WireGuard whitepaper specifies it — Noise_IKpsk2
//! handshake, cookies, transport with replay protection, timers, cryptokey
//! routing — in a sans-I/O state machine: the host moves datagrams and IP
//! packets and supplies the time and randomness; this crate never blocks,
//! sleeps or reads a clock. One protocol concern per module, named as in the
//! paper and in wireguard-go.

#![deny(missing_docs)]

pub mod aead;
pub mod allowedips;
pub mod bindings;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod chacha_simd;
pub mod cipher;
pub mod constants;
pub mod cookie;
pub mod device;
pub mod engine;
pub mod keypair;
pub mod noise;
pub mod peer;
pub mod primitives;
pub mod replay;
pub mod timers;

#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod noise_vectors;
#[cfg(test)]
mod test_util;

pub use aead::{open_in_place, seal_in_place, TransportKey, TAG_LEN};
pub use device::{Device, DropReason, Output};
