//! WireGuard transport encryption: ChaCha20-Poly1305 keyed per session, with the
//! message counter as nonce.

use wasm_bindgen::prelude::*;

use crate::cipher::{self, counter_nonce};

/// Length of the Poly1305 tag appended to every sealed message.
pub const TAG_LEN: usize = 16;

/// Seal `buf[..len]` in place and write the tag at `buf[len..len + 16]`.
/// Returns false when `buf` has no room for the tag.
pub fn seal_in_place(key: &[u8; 32], counter: u64, buf: &mut [u8], len: usize) -> bool {
    if buf.len() < len + TAG_LEN {
        return false;
    }
    let (msg, rest) = buf.split_at_mut(len);
    let tag = cipher::seal(key, &counter_nonce(counter), &[], msg);
    rest[..TAG_LEN].copy_from_slice(&tag);
    true
}

/// Open `buf` (ciphertext followed by its tag) in place. Returns the plaintext
/// length, or None when the tag does not verify (the buffer is then garbage).
pub fn open_in_place(key: &[u8; 32], counter: u64, buf: &mut [u8]) -> Option<usize> {
    let len = buf.len().checked_sub(TAG_LEN)?;
    let (msg, tag) = buf.split_at_mut(len);
    let tag: [u8; TAG_LEN] = (&*tag).try_into().ok()?;
    cipher::open(key, &counter_nonce(counter), &[], msg, &tag).then_some(len)
}

/// One direction's transport key, as JS sees it.
#[wasm_bindgen]
pub struct TransportKey {
    key: [u8; 32],
}

#[wasm_bindgen]
impl TransportKey {
    /// Make a key from its 32 bytes.
    #[wasm_bindgen(constructor)]
    pub fn new(key: &[u8]) -> Result<TransportKey, JsError> {
        if key.len() != 32 {
            return Err(JsError::new("transport key must be 32 bytes"));
        }
        Ok(TransportKey {
            key: key.try_into().expect("length checked"),
        })
    }

    /// Whether this build encrypts with the SIMD128 ChaCha20.
    pub fn simd() -> bool {
        cipher::SIMD
    }

    /// Seal one message: returns ciphertext plus tag.
    pub fn seal(&self, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        out.resize(plaintext.len() + TAG_LEN, 0);
        let ok = seal_in_place(&self.key, counter, &mut out, plaintext.len());
        debug_assert!(ok);
        out
    }

    /// Open one message; errors when the tag does not verify.
    pub fn open(&self, counter: u64, sealed: &[u8]) -> Result<Vec<u8>, JsError> {
        let mut buf = sealed.to_vec();
        match open_in_place(&self.key, counter, &mut buf) {
            Some(len) => {
                buf.truncate(len);
                Ok(buf)
            }
            None => Err(JsError::new("authentication failed")),
        }
    }

    /// Seal `count` messages of `len` bytes laid out back to back in `buf`, each
    /// followed by room for its tag (stride `len + 16`), with counters
    /// `first_counter..`. One call crosses the JS/WASM boundary for the batch.
    pub fn seal_batch(
        &self,
        first_counter: u64,
        buf: &mut [u8],
        len: usize,
        count: usize,
    ) -> Result<(), JsError> {
        let Some(stride) = len.checked_add(TAG_LEN) else {
            return Err(JsError::new("message length out of range"));
        };
        if stride
            .checked_mul(count)
            .is_none_or(|need| buf.len() < need)
        {
            return Err(JsError::new("buffer too small for the batch"));
        }
        for (i, chunk) in buf.chunks_exact_mut(stride).take(count).enumerate() {
            seal_in_place(&self.key, first_counter.wrapping_add(i as u64), chunk, len);
        }
        Ok(())
    }

    /// Open `count` sealed messages of `stride` bytes each laid out back to back.
    /// Returns how many authenticated; the rest are left as garbage.
    pub fn open_batch(
        &self,
        first_counter: u64,
        buf: &mut [u8],
        stride: usize,
        count: usize,
    ) -> Result<u32, JsError> {
        if stride < TAG_LEN
            || stride
                .checked_mul(count)
                .is_none_or(|need| buf.len() < need)
        {
            return Err(JsError::new("buffer too small for the batch"));
        }
        let mut ok = 0;
        for (i, chunk) in buf.chunks_exact_mut(stride).take(count).enumerate() {
            if open_in_place(&self.key, first_counter.wrapping_add(i as u64), chunk).is_some() {
                ok += 1;
            }
        }
        Ok(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::unhex as hex;

    // RFC 8439 §2.8.2: AEAD_CHACHA20_POLY1305 test vector. Its nonce is
    // 07000000 4041424344454647, i.e. not WireGuard's layout, so it checks
    // `cipher` directly (the TS tests check the SIMD build against node:crypto).
    #[test]
    fn rfc8439_aead_vector() {
        let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce = hex("070000004041424344454647");
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let mut buf = pt.to_vec();
        let tag = cipher::seal(
            &key.clone().try_into().unwrap(),
            &nonce.clone().try_into().unwrap(),
            &aad,
            &mut buf,
        );
        assert_eq!(
            buf[..16],
            hex("d31a8d34648e60db7b86afbc53ef7ec2")[..],
            "first ciphertext block"
        );
        assert_eq!(tag.as_slice(), &hex("1ae10b594f09e26a7e902ecbd0600691")[..]);
        let mut back = buf.clone();
        let key32: [u8; 32] = key.try_into().unwrap();
        let nonce12: [u8; 12] = nonce.try_into().unwrap();
        assert!(cipher::open(&key32, &nonce12, &aad, &mut back, &tag));
        assert_eq!(&back[..], &pt[..]);
    }

    #[test]
    fn wireguard_nonce_layout() {
        let n = counter_nonce(0x0102030405060708);
        assert_eq!(&n[..], &[0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = TransportKey::new(&[7u8; 32]).unwrap();
        let sealed = key.seal(42, b"hello tailnet");
        assert_eq!(sealed.len(), 13 + TAG_LEN);
        assert_eq!(key.open(42, &sealed).ok().unwrap(), b"hello tailnet");
        // Wrong counter or a flipped bit must fail authentication.
        let mut buf = sealed.clone();
        assert!(open_in_place(&key.key, 43, &mut buf).is_none());
        let mut buf = sealed.clone();
        buf[0] ^= 1;
        assert!(open_in_place(&key.key, 42, &mut buf).is_none());
        // Too short to hold a tag.
        assert!(open_in_place(&key.key, 42, &mut [0u8; 15]).is_none());
    }

    #[test]
    fn batch_matches_single() {
        let key = TransportKey::new(&[9u8; 32]).unwrap();
        let len = 100;
        let stride = len + TAG_LEN;
        let mut buf = vec![0u8; stride * 3];
        for i in 0..3 {
            buf[i * stride..i * stride + len].fill(i as u8 + 1);
        }
        key.seal_batch(10, &mut buf, len, 3).ok().unwrap();
        for i in 0..3 {
            let single = key.seal(10 + i as u64, &vec![i as u8 + 1; len]);
            assert_eq!(&buf[i * stride..(i + 1) * stride], &single[..]);
        }
        assert_eq!(key.open_batch(10, &mut buf, stride, 3).ok().unwrap(), 3);
    }
}
