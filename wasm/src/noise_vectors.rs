//! Known-answer test of the full handshake transcript against an independent
//! implementation: `testdata/handshake-vector.json` is written by the Go
//! program in `testdata/handshake-vector/` with github.com/flynn/noise
//! (Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, WireGuard's prologue, psk at
//! position 2) and mac1 computed with golang.org/x/crypto/blake2s. Our bytes
//! must equal it exactly; the expected values are never edited by hand.

use crate::constants::*;
use crate::cookie::{CookieChecker, CookieGenerator};
use crate::noise::{self, Identity};
use crate::primitives::{aead_open, aead_seal};

const VECTOR: &str = include_str!("../testdata/handshake-vector.json");

/// The raw JSON text of `"key": value` in the flat object (string contents
/// without quotes, or the number). The file is flat, one field a line, with
/// hex strings and integers only, so no general JSON parser is needed.
fn field(key: &str) -> &'static str {
    let pat = format!("\"{key}\":");
    let at = VECTOR
        .find(&pat)
        .unwrap_or_else(|| panic!("vector has no field {key}"));
    let rest = VECTOR[at + pat.len()..].trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        &s[..s.find('"').expect("closing quote")]
    } else {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        &rest[..end]
    }
}

fn bytes(key: &str) -> Vec<u8> {
    crate::test_util::unhex(field(key))
}

fn array<const N: usize>(key: &str) -> [u8; N] {
    bytes(key)
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("{key}: {} bytes, want {N}", v.len()))
}

fn number<T: std::str::FromStr>(key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    field(key).parse().expect("integer")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compare as hex so a failure shows both sides readably.
fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(
        hex(got),
        hex(want),
        "{what} differs from the flynn/noise vector"
    );
}

#[test]
fn vector_file_is_well_formed() {
    assert_eq!(bytes("initiation").len(), INITIATION_LEN);
    assert_eq!(bytes("response").len(), RESPONSE_LEN);
    // Public keys in the vector are what our X25519 derives from its private keys.
    for who in ["initiator_static", "responder_static"] {
        let id = Identity::new(array(&format!("{who}_private")));
        assert_bytes(
            &format!("{who}_public"),
            &id.public,
            &bytes(&format!("{who}_public")),
        );
    }
    // Our TAI64N of the same Unix time.
    assert_bytes(
        "timestamp",
        &noise::tai64n(number("timestamp_unix_ms")),
        &bytes("timestamp"),
    );
}

#[test]
fn handshake_transcript_matches_flynn_noise() {
    let initiator = Identity::new(array("initiator_static_private"));
    let responder = Identity::new(array("responder_static_private"));
    let psk: [u8; 32] = array("psk");
    let i_index: u32 = number("initiator_index");
    let r_index: u32 = number("responder_index");
    let timestamp: [u8; 12] = array("timestamp");
    let now = 1_000; // mac1 does not depend on time; no cookie, so mac2 stays zero

    // Initiation: our message, with mac1 and a zero mac2, byte for byte.
    let mut init = [0u8; INITIATION_LEN];
    let state = noise::create_initiation(
        &initiator,
        &responder.public,
        i_index,
        array("initiator_ephemeral_private"),
        &timestamp,
        &mut init,
    )
    .expect("create_initiation");
    CookieGenerator::new(&responder.public).add_macs(&mut init, now);
    assert_bytes("initiation", &init, &bytes("initiation"));

    // The responder takes the vector's initiation (not ours) and answers.
    let want_init: [u8; INITIATION_LEN] = array("initiation");
    assert!(CookieChecker::new(&responder.public).check_mac1(&want_init));
    let consumed = noise::consume_initiation(&responder, &want_init).expect("consume_initiation");
    assert_eq!(consumed.peer_public, initiator.public);
    assert_eq!(consumed.remote_index, i_index);
    assert_eq!(consumed.timestamp, timestamp);
    let mut resp = [0u8; RESPONSE_LEN];
    let r_keys = noise::create_response(
        &consumed,
        &psk,
        r_index,
        array("responder_ephemeral_private"),
        &mut resp,
    )
    .expect("create_response");
    CookieGenerator::new(&initiator.public).add_macs(&mut resp, now);
    assert_bytes("response", &resp, &bytes("response"));

    // The initiator takes the vector's response.
    let want_resp: [u8; RESPONSE_LEN] = array("response");
    assert!(CookieChecker::new(&initiator.public).check_mac1(&want_resp));
    let i_keys =
        noise::consume_response(&initiator, &state, &psk, &want_resp).expect("consume_response");

    // Transport keys: flynn's Split() cipher states.
    assert_bytes(
        "initiator send key",
        &i_keys.send,
        &bytes("initiator_send_key"),
    );
    assert_bytes(
        "initiator recv key",
        &i_keys.recv,
        &bytes("initiator_recv_key"),
    );
    assert_bytes(
        "responder send key",
        &r_keys.send,
        &bytes("responder_send_key"),
    );
    assert_bytes(
        "responder recv key",
        &r_keys.recv,
        &bytes("responder_recv_key"),
    );
    assert!(i_keys.initiator && !r_keys.initiator);
    assert_eq!(
        (i_keys.local_index, i_keys.remote_index),
        (i_index, r_index)
    );
    assert_eq!(
        (r_keys.local_index, r_keys.remote_index),
        (r_index, i_index)
    );

    // The first transport message's AEAD (counter 0, no associated data) as
    // flynn's CipherState sealed it, in both directions of use.
    let plaintext = bytes("transport_plaintext");
    let want_ct = bytes("initiator_transport_counter0");
    let mut ct = vec![0u8; plaintext.len() + AEAD_TAG_LEN];
    aead_seal(&i_keys.send, 0, &plaintext, &[], &mut ct);
    assert_bytes("initiator transport ciphertext", &ct, &want_ct);
    let mut opened = vec![0u8; plaintext.len()];
    assert!(aead_open(&r_keys.recv, 0, &want_ct, &[], &mut opened));
    assert_eq!(opened, plaintext);
}

#[test]
fn a_changed_vector_byte_is_refused() {
    // The check above is not vacuous: any bit of the transcript matters.
    let responder = Identity::new(array("responder_static_private"));
    let mut init: [u8; INITIATION_LEN] = array("initiation");
    init[60] ^= 1; // inside the encrypted static
    assert!(!CookieChecker::new(&responder.public).check_mac1(&init));
    assert!(noise::consume_initiation(&responder, &init).is_err());
}
