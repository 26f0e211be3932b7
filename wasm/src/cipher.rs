//! ChaCha20-Poly1305 as every other module calls it: the SIMD128
//! implementation in the SIMD build of the WASM module, RustCrypto's portable
//! one everywhere else (the plain WASM build and native tests).

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use chacha20poly1305::{aead::AeadInPlace, ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};

/// Whether this build uses the SIMD128 ChaCha20.
pub const SIMD: bool = cfg!(all(target_arch = "wasm32", target_feature = "simd128"));

/// Encrypt `buf` in place and return the Poly1305 tag.
pub fn seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        crate::chacha_simd::seal(key, nonce, aad, buf)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        ChaCha20Poly1305::new(Key::from_slice(key))
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
            .expect("message within ChaCha20-Poly1305 limits")
            .into()
    }
}

/// Verify `tag` and decrypt `buf` in place; false if it does not authenticate.
pub fn open(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> bool {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        crate::chacha_simd::open(key, nonce, aad, buf, tag)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        ChaCha20Poly1305::new(Key::from_slice(key))
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
            .is_ok()
    }
}

/// WireGuard's nonce for a message counter: 32 zero bits, then the counter little-endian.
pub fn counter_nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}
