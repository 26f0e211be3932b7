//! The cryptographic functions of the whitepaper (§5.4): HASH, MAC, HMAC, KDFn,
//! AEAD, XAEAD and DH, on audited RustCrypto and dalek crates.

use blake2::digest::{FixedOutput, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};

use crate::cipher::{self, counter_nonce};
use hmac::SimpleHmac;
use x25519_dalek::{PublicKey, StaticSecret};

type Blake2sMac128 = Blake2sMac<blake2::digest::consts::U16>;

/// HASH(input): BLAKE2s-256 of the concatenated parts.
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

/// MAC(key, input): keyed BLAKE2s with a 16-byte output.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut m = <Blake2sMac128 as blake2::digest::KeyInit>::new_from_slice(key)
        .expect("key of 1..=32 bytes");
    for p in parts {
        Update::update(&mut m, p);
    }
    m.finalize_fixed().into()
}

/// HMAC(key, input) over BLAKE2s.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <SimpleHmac<Blake2s256> as hmac::Mac>::new_from_slice(key)
        .expect("HMAC takes any key length");
    for p in parts {
        hmac::Mac::update(&mut m, p);
    }
    hmac::Mac::finalize(m).into_bytes().into()
}

/// KDF1(key, input).
pub fn kdf1(key: &[u8; 32], input: &[u8]) -> [u8; 32] {
    let t0 = hmac(key, &[input]);
    hmac(&t0, &[&[1]])
}

/// KDF2(key, input).
pub fn kdf2(key: &[u8; 32], input: &[u8]) -> ([u8; 32], [u8; 32]) {
    let t0 = hmac(key, &[input]);
    let t1 = hmac(&t0, &[&[1]]);
    let t2 = hmac(&t0, &[&t1, &[2]]);
    (t1, t2)
}

/// KDF3(key, input).
pub fn kdf3(key: &[u8; 32], input: &[u8]) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let t0 = hmac(key, &[input]);
    let t1 = hmac(&t0, &[&[1]]);
    let t2 = hmac(&t0, &[&t1, &[2]]);
    let t3 = hmac(&t0, &[&t2, &[3]]);
    (t1, t2, t3)
}

/// AEAD(key, counter, plaintext, aad) into `out` (plaintext.len() + 16 bytes).
pub fn aead_seal(key: &[u8; 32], counter: u64, plaintext: &[u8], aad: &[u8], out: &mut [u8]) {
    let n = plaintext.len();
    out[..n].copy_from_slice(plaintext);
    let tag = cipher::seal(key, &counter_nonce(counter), aad, &mut out[..n]);
    out[n..n + 16].copy_from_slice(&tag);
}

/// Open AEAD `sealed` (ciphertext + tag) into `out`; false if it does not authenticate.
pub fn aead_open(key: &[u8; 32], counter: u64, sealed: &[u8], aad: &[u8], out: &mut [u8]) -> bool {
    let Some(n) = sealed.len().checked_sub(16) else {
        return false;
    };
    out[..n].copy_from_slice(&sealed[..n]);
    let tag: [u8; 16] = sealed[n..].try_into().expect("16-byte tag");
    cipher::open(key, &counter_nonce(counter), aad, &mut out[..n], &tag)
}

/// XAEAD seal (XChaCha20-Poly1305) into `out`.
pub fn xaead_seal(key: &[u8; 32], nonce: &[u8; 24], plaintext: &[u8], aad: &[u8], out: &mut [u8]) {
    let n = plaintext.len();
    out[..n].copy_from_slice(plaintext);
    let tag = XChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, &mut out[..n])
        .expect("message within AEAD limits");
    out[n..n + 16].copy_from_slice(&tag);
}

/// XAEAD open; false if it does not authenticate.
pub fn xaead_open(
    key: &[u8; 32],
    nonce: &[u8; 24],
    sealed: &[u8],
    aad: &[u8],
    out: &mut [u8],
) -> bool {
    let Some(n) = sealed.len().checked_sub(16) else {
        return false;
    };
    out[..n].copy_from_slice(&sealed[..n]);
    let tag = Tag::clone_from_slice(&sealed[n..]);
    XChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, &mut out[..n], &tag)
        .is_ok()
}

/// DH(private, public): X25519. None for a low-order public key (all-zero result).
pub fn dh(private: &StaticSecret, public: &[u8; 32]) -> Option<[u8; 32]> {
    let shared = private.diffie_hellman(&PublicKey::from(*public));
    if shared.was_contributory() {
        Some(shared.to_bytes())
    } else {
        None
    }
}

/// The public key of a private key.
pub fn public_key(private: &StaticSecret) -> [u8; 32] {
    PublicKey::from(private).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::unhex as hex;

    #[test]
    fn blake2s_known_answer() {
        // RFC 7693 Appendix B: BLAKE2s-256("abc").
        assert_eq!(
            hash(&[b"abc"]).to_vec(),
            hex("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982")
        );
    }

    #[test]
    fn x25519_known_answer() {
        // RFC 7748 §6.1: Alice's private key, Bob's public key, shared secret.
        let alice: [u8; 32] =
            hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .try_into()
                .unwrap();
        let bob_pub: [u8; 32] =
            hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
                .try_into()
                .unwrap();
        let shared = dh(&StaticSecret::from(alice), &bob_pub).unwrap();
        assert_eq!(
            shared.to_vec(),
            hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        );
        assert_eq!(
            public_key(&StaticSecret::from(alice)).to_vec(),
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
    }

    #[test]
    fn dh_rejects_low_order_points() {
        let k = StaticSecret::from([7u8; 32]);
        assert!(dh(&k, &[0u8; 32]).is_none());
    }

    #[test]
    fn aead_round_trip_and_xaead() {
        let key = [3u8; 32];
        let mut sealed = [0u8; 21];
        aead_seal(&key, 9, b"hello", b"ad", &mut sealed);
        let mut out = [0u8; 5];
        assert!(aead_open(&key, 9, &sealed, b"ad", &mut out));
        assert_eq!(&out, b"hello");
        assert!(!aead_open(&key, 10, &sealed, b"ad", &mut out));
        let nonce = [5u8; 24];
        let mut xsealed = [0u8; 22];
        xaead_seal(&key, &nonce, b"cookie", b"mac1", &mut xsealed);
        let mut out = [0u8; 6];
        assert!(xaead_open(&key, &nonce, &xsealed, b"mac1", &mut out));
        assert_eq!(&out, b"cookie");
        assert!(!xaead_open(&key, &nonce, &xsealed, b"mac2", &mut out));
    }

    #[test]
    fn hmac_blake2s_matches_its_definition() {
        // HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)) with BLAKE2s's 64-byte block.
        let key = [0x0bu8; 32];
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&key);
        let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        let inner = hash(&[&ipad, b"message"]);
        assert_eq!(hmac(&key, &[b"message"]), hash(&[&opad, &inner]));
    }
}
