//! Trellis's WireGuard core for WebAssembly.
//!
//! This first layer is WireGuard's transport AEAD: ChaCha20-Poly1305 with the
//! nonce WireGuard uses (32 zero bits, then the 64-bit little-endian message
//! counter) and an empty associated-data string (whitepaper §5.4.6). The
//! handshake, timers and replay window build on it.

#![deny(missing_docs)]

pub mod aead;

pub use aead::{open_in_place, seal_in_place, TransportKey, TAG_LEN};
