//! The Noise_IKpsk2 handshake of the whitepaper (§5.4.2–§5.4.5): creating and
//! consuming initiation and response messages, and deriving transport keys.
//! mac1/mac2 are added and checked by `cookie`.

use x25519_dalek::StaticSecret;
use zeroize::Zeroize;

use crate::constants::*;
use crate::primitives::*;

/// Why a handshake message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// An AEAD field did not authenticate: not for us, or corrupted.
    Decrypt,
    /// A DH produced the all-zero result (a low-order point).
    BadPoint,
}

/// This device's static identity and what is derived from it once.
pub struct Identity {
    /// Static private key.
    pub secret: StaticSecret,
    /// Static public key.
    pub public: [u8; 32],
    /// HASH(HASH(HASH(CONSTRUCTION) || IDENTIFIER) || our public key): the
    /// responder-side hash before an initiation is mixed in.
    pub initial_hash: [u8; 32],
}

/// HASH(CONSTRUCTION): the initial chaining key.
pub fn initial_chaining_key() -> [u8; 32] {
    hash(&[CONSTRUCTION])
}

/// The hash both sides start from for a given responder.
pub fn initial_hash(responder_public: &[u8; 32]) -> [u8; 32] {
    let c = initial_chaining_key();
    let h = hash(&[&c, IDENTIFIER]);
    hash(&[&h, responder_public])
}

impl Identity {
    /// Make the identity for a private key.
    pub fn new(private: [u8; 32]) -> Identity {
        let secret = StaticSecret::from(private);
        let public = public_key(&secret);
        Identity {
            secret,
            initial_hash: initial_hash(&public),
            public,
        }
    }
}

/// Initiator-side state between sending an initiation and getting the response.
pub struct InitiatorState {
    /// Our index for this handshake.
    pub local_index: u32,
    hash: [u8; 32],
    chaining: [u8; 32],
    ephemeral: StaticSecret,
}

/// Keys and indices of a completed handshake.
pub struct SessionKeys {
    /// Key for messages we send.
    pub send: [u8; 32],
    /// Key for messages we receive.
    pub recv: [u8; 32],
    /// Our index: the peer puts it in messages to us.
    pub local_index: u32,
    /// The peer's index: we put it in messages to it.
    pub remote_index: u32,
    /// Whether we initiated this handshake.
    pub initiator: bool,
}

impl Drop for InitiatorState {
    fn drop(&mut self) {
        self.hash.zeroize();
        self.chaining.zeroize();
    }
}

/// Write an initiation (without macs) into `out` and return the state to keep.
/// `ephemeral` must be 32 fresh random bytes; `timestamp` is TAI64N.
pub fn create_initiation(
    me: &Identity,
    peer_public: &[u8; 32],
    local_index: u32,
    ephemeral: [u8; 32],
    timestamp: &[u8; 12],
    out: &mut [u8; INITIATION_LEN],
) -> Result<InitiatorState, HandshakeError> {
    // The PSK enters only at the response (the "psk2" of the pattern).
    let eph = StaticSecret::from(ephemeral);
    let eph_pub = public_key(&eph);
    let mut c = initial_chaining_key();
    let mut h = initial_hash(peer_public);

    out.fill(0);
    out[0] = MSG_INITIATION;
    out[4..8].copy_from_slice(&local_index.to_le_bytes());
    out[8..40].copy_from_slice(&eph_pub);
    c = kdf1(&c, &eph_pub);
    h = hash(&[&h, &eph_pub]);

    let ss = dh(&eph, peer_public).ok_or(HandshakeError::BadPoint)?;
    let (c2, k) = kdf2(&c, &ss);
    c = c2;
    aead_seal(&k, 0, &me.public, &h, &mut out[40..88]);
    h = hash(&[&h, &out[40..88]]);

    let ss = dh(&me.secret, peer_public).ok_or(HandshakeError::BadPoint)?;
    let (c2, k) = kdf2(&c, &ss);
    c = c2;
    aead_seal(&k, 0, timestamp, &h, &mut out[88..116]);
    h = hash(&[&h, &out[88..116]]);

    Ok(InitiatorState {
        local_index,
        hash: h,
        chaining: c,
        ephemeral: eph,
    })
}

/// What a responder learns from a valid initiation.
pub struct ConsumedInitiation {
    /// The initiator's static public key (look it up among the peers).
    pub peer_public: [u8; 32],
    /// The initiator's index.
    pub remote_index: u32,
    /// The initiator's TAI64N timestamp (must exceed the last one seen from it).
    pub timestamp: [u8; 12],
    remote_ephemeral: [u8; 32],
    hash: [u8; 32],
    chaining: [u8; 32],
}

/// Decrypt an initiation addressed to `me`.
pub fn consume_initiation(
    me: &Identity,
    msg: &[u8; INITIATION_LEN],
) -> Result<ConsumedInitiation, HandshakeError> {
    let remote_index = u32::from_le_bytes(msg[4..8].try_into().unwrap());
    let e: [u8; 32] = msg[8..40].try_into().unwrap();
    let mut c = kdf1(&initial_chaining_key(), &e);
    let mut h = hash(&[&me.initial_hash, &e]);

    let ss = dh(&me.secret, &e).ok_or(HandshakeError::BadPoint)?;
    let (c2, k) = kdf2(&c, &ss);
    c = c2;
    let mut peer_public = [0u8; 32];
    if !aead_open(&k, 0, &msg[40..88], &h, &mut peer_public) {
        return Err(HandshakeError::Decrypt);
    }
    h = hash(&[&h, &msg[40..88]]);

    let ss = dh(&me.secret, &peer_public).ok_or(HandshakeError::BadPoint)?;
    let (c2, k) = kdf2(&c, &ss);
    c = c2;
    let mut timestamp = [0u8; 12];
    if !aead_open(&k, 0, &msg[88..116], &h, &mut timestamp) {
        return Err(HandshakeError::Decrypt);
    }
    h = hash(&[&h, &msg[88..116]]);
    Ok(ConsumedInitiation {
        peer_public,
        remote_index,
        timestamp,
        remote_ephemeral: e,
        hash: h,
        chaining: c,
    })
}

/// Write the response (without macs) to a consumed initiation and derive the session.
pub fn create_response(
    init: &ConsumedInitiation,
    psk: &[u8; 32],
    local_index: u32,
    ephemeral: [u8; 32],
    out: &mut [u8; RESPONSE_LEN],
) -> Result<SessionKeys, HandshakeError> {
    let eph = StaticSecret::from(ephemeral);
    let eph_pub = public_key(&eph);
    let mut c = init.chaining;
    let mut h = init.hash;
    out.fill(0);
    out[0] = MSG_RESPONSE;
    out[4..8].copy_from_slice(&local_index.to_le_bytes());
    out[8..12].copy_from_slice(&init.remote_index.to_le_bytes());
    out[12..44].copy_from_slice(&eph_pub);
    c = kdf1(&c, &eph_pub);
    h = hash(&[&h, &eph_pub]);
    c = kdf1(
        &c,
        &dh(&eph, &init.remote_ephemeral).ok_or(HandshakeError::BadPoint)?,
    );
    c = kdf1(
        &c,
        &dh(&eph, &init.peer_public).ok_or(HandshakeError::BadPoint)?,
    );
    let (c2, tau, k) = kdf3(&c, psk);
    c = c2;
    h = hash(&[&h, &tau]);
    aead_seal(&k, 0, &[], &h, &mut out[44..60]);
    let (first, second) = kdf2(&c, &[]);
    c.zeroize();
    h.zeroize();
    Ok(SessionKeys {
        send: second,
        recv: first,
        local_index,
        remote_index: init.remote_index,
        initiator: false,
    })
}

/// Consume the response to our initiation and derive the session.
pub fn consume_response(
    me: &Identity,
    state: &InitiatorState,
    psk: &[u8; 32],
    msg: &[u8; RESPONSE_LEN],
) -> Result<SessionKeys, HandshakeError> {
    let remote_index = u32::from_le_bytes(msg[4..8].try_into().unwrap());
    let e: [u8; 32] = msg[12..44].try_into().unwrap();
    let mut c = kdf1(&state.chaining, &e);
    let mut h = hash(&[&state.hash, &e]);
    c = kdf1(
        &c,
        &dh(&state.ephemeral, &e).ok_or(HandshakeError::BadPoint)?,
    );
    c = kdf1(&c, &dh(&me.secret, &e).ok_or(HandshakeError::BadPoint)?);
    let (c2, tau, k) = kdf3(&c, psk);
    c = c2;
    h = hash(&[&h, &tau]);
    let mut empty = [0u8; 0];
    if !aead_open(&k, 0, &msg[44..60], &h, &mut empty) {
        return Err(HandshakeError::Decrypt);
    }
    let (first, second) = kdf2(&c, &[]);
    c.zeroize();
    h.zeroize();
    Ok(SessionKeys {
        send: first,
        recv: second,
        local_index: state.local_index,
        remote_index,
        initiator: true,
    })
}

/// TAI64N for a Unix time in milliseconds. Sub-millisecond digits are zero, so
/// the timestamp says no more about this host's clock than it must.
pub fn tai64n(unix_ms: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    let secs = 0x4000_0000_0000_000a_u64 + unix_ms / 1000;
    let nanos = ((unix_ms % 1000) * 1_000_000) as u32;
    out[..8].copy_from_slice(&secs.to_be_bytes());
    out[8..].copy_from_slice(&nanos.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> Identity {
        Identity::new([b; 32])
    }

    #[test]
    fn full_handshake_agrees_on_keys() {
        let (i, r) = (id(1), id(2));
        let psk = [9u8; 32];
        let mut init = [0u8; INITIATION_LEN];
        let st = create_initiation(
            &i,
            &r.public,
            0x1111,
            [3; 32],
            &tai64n(1_700_000_000_000),
            &mut init,
        )
        .unwrap();
        let got = consume_initiation(&r, &init).unwrap();
        assert_eq!(got.peer_public, i.public);
        assert_eq!(got.remote_index, 0x1111);
        assert_eq!(got.timestamp, tai64n(1_700_000_000_000));
        let mut resp = [0u8; RESPONSE_LEN];
        let rk = create_response(&got, &psk, 0x2222, [4; 32], &mut resp).unwrap();
        let ik = consume_response(&i, &st, &psk, &resp).unwrap();
        assert_eq!(ik.send, rk.recv);
        assert_eq!(ik.recv, rk.send);
        assert_eq!((ik.local_index, ik.remote_index), (0x1111, 0x2222));
        assert_eq!((rk.local_index, rk.remote_index), (0x2222, 0x1111));
        assert!(ik.initiator && !rk.initiator);
    }

    #[test]
    fn wrong_psk_or_wrong_responder_fails() {
        let (i, r, m) = (id(1), id(2), id(5));
        let mut init = [0u8; INITIATION_LEN];
        let st = create_initiation(&i, &r.public, 1, [3; 32], &tai64n(0), &mut init).unwrap();
        assert_eq!(
            consume_initiation(&m, &init).err(),
            Some(HandshakeError::Decrypt)
        );
        let got = consume_initiation(&r, &init).unwrap();
        let mut resp = [0u8; RESPONSE_LEN];
        create_response(&got, &[1; 32], 2, [4; 32], &mut resp).unwrap();
        assert_eq!(
            consume_response(&i, &st, &[0; 32], &resp).err(),
            Some(HandshakeError::Decrypt)
        );
    }

    #[test]
    fn tai64n_layout() {
        let t = tai64n(1_000_500);
        assert_eq!(&t[..8], &(0x4000_0000_0000_000a_u64 + 1000).to_be_bytes());
        assert_eq!(&t[8..], &500_000_000u32.to_be_bytes());
        assert!(tai64n(2000) > tai64n(1999));
    }
}
