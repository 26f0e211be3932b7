//! ChaCha20-Poly1305 (RFC 8439) with a hand-written WebAssembly SIMD128
//! ChaCha20: four blocks at a time, one 32-bit lane per block. Compiled only
//! into the SIMD build (`-C target-feature=+simd128`); the plain build uses
//! RustCrypto's portable implementation. Poly1305 is RustCrypto's in both.

use core::arch::wasm32::*;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::{Block, Poly1305};

const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

#[inline(always)]
fn rotl16(v: v128) -> v128 {
    i8x16_shuffle::<2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13>(v, v)
}

#[inline(always)]
fn rotl8(v: v128) -> v128 {
    i8x16_shuffle::<3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14>(v, v)
}

#[inline(always)]
fn rotl<const L: u32, const R: u32>(v: v128) -> v128 {
    v128_or(u32x4_shl(v, L), u32x4_shr(v, R))
}

#[inline(always)]
fn quarter(x: &mut [v128; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = u32x4_add(x[a], x[b]);
    x[d] = rotl16(v128_xor(x[d], x[a]));
    x[c] = u32x4_add(x[c], x[d]);
    x[b] = rotl::<12, 20>(v128_xor(x[b], x[c]));
    x[a] = u32x4_add(x[a], x[b]);
    x[d] = rotl8(v128_xor(x[d], x[a]));
    x[c] = u32x4_add(x[c], x[d]);
    x[b] = rotl::<7, 25>(v128_xor(x[b], x[c]));
}

/// Keystream for four consecutive blocks starting at `counter`, as four 64-byte blocks.
#[inline(always)]
fn four_blocks(key: &[u32; 8], nonce: &[u32; 3], counter: u32, out: &mut [v128; 16]) {
    let init: [v128; 16] = [
        u32x4_splat(SIGMA[0]),
        u32x4_splat(SIGMA[1]),
        u32x4_splat(SIGMA[2]),
        u32x4_splat(SIGMA[3]),
        u32x4_splat(key[0]),
        u32x4_splat(key[1]),
        u32x4_splat(key[2]),
        u32x4_splat(key[3]),
        u32x4_splat(key[4]),
        u32x4_splat(key[5]),
        u32x4_splat(key[6]),
        u32x4_splat(key[7]),
        u32x4(
            counter,
            counter.wrapping_add(1),
            counter.wrapping_add(2),
            counter.wrapping_add(3),
        ),
        u32x4_splat(nonce[0]),
        u32x4_splat(nonce[1]),
        u32x4_splat(nonce[2]),
    ];
    let mut x = init;
    for _ in 0..10 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    for i in 0..16 {
        x[i] = u32x4_add(x[i], init[i]);
    }
    // Transpose each group of four words so that out[4*block + group] holds
    // words 4*group..4*group+4 of that block, ready to XOR with 16 input bytes.
    for g in 0..4 {
        let (a, b, c, d) = (x[4 * g], x[4 * g + 1], x[4 * g + 2], x[4 * g + 3]);
        let t0 = i32x4_shuffle::<0, 4, 1, 5>(a, b);
        let t1 = i32x4_shuffle::<0, 4, 1, 5>(c, d);
        let t2 = i32x4_shuffle::<2, 6, 3, 7>(a, b);
        let t3 = i32x4_shuffle::<2, 6, 3, 7>(c, d);
        out[g] = i32x4_shuffle::<0, 1, 4, 5>(t0, t1);
        out[4 + g] = i32x4_shuffle::<2, 3, 6, 7>(t0, t1);
        out[8 + g] = i32x4_shuffle::<0, 1, 4, 5>(t2, t3);
        out[12 + g] = i32x4_shuffle::<2, 3, 6, 7>(t2, t3);
    }
}

fn words<const N: usize>(b: &[u8]) -> [u32; N] {
    let mut w = [0u32; N];
    for (i, c) in b.chunks_exact(4).take(N).enumerate() {
        w[i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

/// XOR `buf` with the ChaCha20 keystream from block `counter` on.
pub fn chacha20_xor(key: &[u8; 32], nonce: &[u8; 12], mut counter: u32, buf: &mut [u8]) {
    let k = words::<8>(key);
    let n = words::<3>(nonce);
    let mut ks = [u32x4_splat(0); 16];
    let mut chunks = buf.chunks_exact_mut(256);
    for chunk in &mut chunks {
        four_blocks(&k, &n, counter, &mut ks);
        counter = counter.wrapping_add(4);
        for (i, v) in ks.iter().enumerate() {
            let p = chunk[i * 16..].as_mut_ptr() as *mut v128;
            // SAFETY: `chunk` is 256 bytes and i < 16, so p..p+16 is in bounds;
            // unaligned v128 loads and stores are allowed in WebAssembly.
            unsafe { v128_store(p, v128_xor(v128_load(p), *v)) };
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        four_blocks(&k, &n, counter, &mut ks);
        let mut stream = [0u8; 256];
        for (i, v) in ks.iter().enumerate() {
            // SAFETY: stream is 256 bytes and i < 16.
            unsafe { v128_store(stream[i * 16..].as_mut_ptr() as *mut v128, *v) };
        }
        for (b, s) in rest.iter_mut().zip(stream.iter()) {
            *b ^= s;
        }
    }
}

fn poly_key(key: &[u8; 32], nonce: &[u8; 12]) -> [u8; 32] {
    let mut block0 = [0u8; 64];
    chacha20_xor(key, nonce, 0, &mut block0);
    block0[..32].try_into().unwrap()
}

fn tag(poly_key: &[u8; 32], aad: &[u8], ciphertext: &[u8]) -> [u8; 16] {
    let mut mac = Poly1305::new(poly_key.into());
    mac.update_padded(aad);
    mac.update_padded(ciphertext);
    let mut lens = Block::default();
    lens[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    lens[8..].copy_from_slice(&(ciphertext.len() as u64).to_le_bytes());
    mac.update(&[lens]);
    mac.finalize().into()
}

/// Encrypt `buf` in place; returns the tag.
pub fn seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    let pk = poly_key(key, nonce);
    chacha20_xor(key, nonce, 1, buf);
    tag(&pk, aad, buf)
}

/// Check the tag and decrypt `buf` in place; false (buffer untouched) if it does not verify.
pub fn open(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    expected: &[u8; 16],
) -> bool {
    let pk = poly_key(key, nonce);
    let t = tag(&pk, aad, buf);
    let diff = t
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return false;
    }
    chacha20_xor(key, nonce, 1, buf);
    true
}
