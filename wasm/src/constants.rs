//! Protocol constants, named as in the WireGuard whitepaper (§5.4, §6).

/// Noise construction name hashed into the initial chaining key.
pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// WireGuard's protocol identifier, mixed into the initial hash.
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
/// Label for the mac1 key.
pub const LABEL_MAC1: &[u8] = b"mac1----";
/// Label for the cookie-reply key.
pub const LABEL_COOKIE: &[u8] = b"cookie--";

/// Start a new handshake after this many messages on a session.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Never send or accept more messages than this on one session.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
/// Milliseconds after which the initiator of a session starts a new handshake.
pub const REKEY_AFTER_TIME: u64 = 120_000;
/// Milliseconds after which a session is no longer used at all.
pub const REJECT_AFTER_TIME: u64 = 180_000;
/// Milliseconds to keep retrying a handshake before giving up.
pub const REKEY_ATTEMPT_TIME: u64 = 90_000;
/// Milliseconds to wait for a handshake response before retrying.
pub const REKEY_TIMEOUT: u64 = 5_000;
/// Upper bound of the random jitter added to each handshake retry, in milliseconds.
pub const REKEY_TIMEOUT_JITTER_MAX: u64 = 333;
/// Milliseconds of receiving without sending after which a keepalive is sent.
pub const KEEPALIVE_TIMEOUT: u64 = 10_000;
/// Milliseconds after which the cookie secret rotates and stored cookies expire.
pub const COOKIE_REFRESH_TIME: u64 = 120_000;

/// Packets held per peer while a handshake is in progress.
pub const MAX_STAGED_PACKETS: usize = 128;
/// Handshake messages per second above which the device considers itself under load.
pub const UNDER_LOAD_HANDSHAKES_PER_SEC: u32 = 64;
/// Once under load, stay so for at least this long (milliseconds).
pub const UNDER_LOAD_AFTER_TIME: u64 = 1_000;
/// Handshake messages per second accepted from one source endpoint under load.
pub const HANDSHAKES_PER_SEC_PER_SOURCE: u32 = 20;
/// Burst of handshake messages allowed from one source endpoint.
pub const HANDSHAKE_BURST_PER_SOURCE: u32 = 5;

/// Message types on the wire.
pub const MSG_INITIATION: u8 = 1;
/// Handshake response.
pub const MSG_RESPONSE: u8 = 2;
/// Cookie reply.
pub const MSG_COOKIE_REPLY: u8 = 3;
/// Transport data.
pub const MSG_TRANSPORT: u8 = 4;

/// Sizes of the fixed-length messages.
pub const INITIATION_LEN: usize = 148;
/// Size of a handshake response.
pub const RESPONSE_LEN: usize = 92;
/// Size of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 64;
/// Transport header: type, reserved, receiver index, counter.
pub const TRANSPORT_HEADER_LEN: usize = 16;
/// Poly1305 tag length.
pub const AEAD_TAG_LEN: usize = 16;
/// Largest transport message accepted (an IP packet of 65535 bytes plus overhead).
pub const MAX_TRANSPORT_LEN: usize = TRANSPORT_HEADER_LEN + 65535 + 16 + AEAD_TAG_LEN;
