//! mac1, mac2 and cookie replies (whitepaper §5.4.4, §5.4.7): mac1 proves the
//! sender knows our public key; under load, mac2 proves it can receive at its
//! source address, via a cookie we send it encrypted.

use crate::constants::*;
use crate::primitives::{hash, mac, xaead_open, xaead_seal};

/// Offsets of mac1 and mac2 in a handshake message of `len` bytes.
fn mac_offsets(len: usize) -> (usize, usize) {
    (len - 32, len - 16)
}

/// Checks macs on messages sent to us and makes cookie replies (responder side).
pub struct CookieChecker {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    secret: [u8; 32],
    secret_at: Option<u64>,
}

impl CookieChecker {
    /// For our own static public key.
    pub fn new(our_public: &[u8; 32]) -> CookieChecker {
        CookieChecker {
            mac1_key: hash(&[LABEL_MAC1, our_public]),
            cookie_key: hash(&[LABEL_COOKIE, our_public]),
            secret: [0; 32],
            secret_at: None,
        }
    }

    /// Is mac1 of this handshake message right?
    pub fn check_mac1(&self, msg: &[u8]) -> bool {
        let (m1, _) = mac_offsets(msg.len());
        constant_eq(&mac(&self.mac1_key, &[&msg[..m1]]), &msg[m1..m1 + 16])
    }

    fn cookie(
        &mut self,
        source: &[u8],
        now: u64,
        fresh_secret: impl FnOnce() -> [u8; 32],
    ) -> [u8; 16] {
        let stale = match self.secret_at {
            None => true,
            Some(at) => now.saturating_sub(at) >= COOKIE_REFRESH_TIME,
        };
        if stale {
            self.secret = fresh_secret();
            self.secret_at = Some(now);
        }
        mac(&self.secret, &[source])
    }

    /// Is mac2 right for a sender at `source` (the cookie it should hold now)?
    pub fn check_mac2(&mut self, msg: &[u8], source: &[u8], now: u64) -> bool {
        let Some(at) = self.secret_at else {
            return false;
        };
        if now.saturating_sub(at) >= COOKIE_REFRESH_TIME {
            return false;
        }
        let cookie = mac(&self.secret, &[source]);
        let (_, m2) = mac_offsets(msg.len());
        constant_eq(&mac(&cookie, &[&msg[..m2]]), &msg[m2..m2 + 16])
    }

    /// The cookie reply to a handshake message from `source`.
    pub fn create_reply(
        &mut self,
        msg: &[u8],
        source: &[u8],
        now: u64,
        nonce: [u8; 24],
        fresh_secret: impl FnOnce() -> [u8; 32],
    ) -> [u8; COOKIE_REPLY_LEN] {
        let cookie = self.cookie(source, now, fresh_secret);
        let (m1, _) = mac_offsets(msg.len());
        let mut out = [0u8; COOKIE_REPLY_LEN];
        out[0] = MSG_COOKIE_REPLY;
        // The reply goes to the sender's index (bytes 4..8 of both handshake messages).
        out[4..8].copy_from_slice(&msg[4..8]);
        out[8..32].copy_from_slice(&nonce);
        xaead_seal(
            &self.cookie_key,
            &nonce,
            &cookie,
            &msg[m1..m1 + 16],
            &mut out[32..64],
        );
        out
    }
}

/// Adds macs to messages we send to one peer and keeps the cookie it gave us.
pub struct CookieGenerator {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    last_mac1: Option<[u8; 16]>,
    cookie: Option<([u8; 16], u64)>,
}

impl CookieGenerator {
    /// For a peer's static public key.
    pub fn new(peer_public: &[u8; 32]) -> CookieGenerator {
        CookieGenerator {
            mac1_key: hash(&[LABEL_MAC1, peer_public]),
            cookie_key: hash(&[LABEL_COOKIE, peer_public]),
            last_mac1: None,
            cookie: None,
        }
    }

    /// Fill in mac1, and mac2 when we hold a fresh cookie (zeros otherwise).
    pub fn add_macs(&mut self, msg: &mut [u8], now: u64) {
        let (m1, m2) = mac_offsets(msg.len());
        let mac1 = mac(&self.mac1_key, &[&msg[..m1]]);
        msg[m1..m1 + 16].copy_from_slice(&mac1);
        self.last_mac1 = Some(mac1);
        // A cookie is good for COOKIE_REFRESH_TIME, less a margin for the trip.
        let mac2 = match self.cookie {
            Some((c, at)) if now.saturating_sub(at) < COOKIE_REFRESH_TIME - REKEY_TIMEOUT => {
                mac(&c, &[&msg[..m2]])
            }
            _ => [0u8; 16],
        };
        msg[m2..m2 + 16].copy_from_slice(&mac2);
    }

    /// Take the cookie from a reply to the last message we sent; false if it does not open.
    pub fn consume_reply(&mut self, reply: &[u8; COOKIE_REPLY_LEN], now: u64) -> bool {
        let Some(aad) = self.last_mac1 else {
            return false;
        };
        let nonce: [u8; 24] = reply[8..32].try_into().unwrap();
        let mut cookie = [0u8; 16];
        if !xaead_open(&self.cookie_key, &nonce, &reply[32..64], &aad, &mut cookie) {
            return false;
        }
        self.cookie = Some((cookie, now));
        true
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac1_binds_the_responder_key() {
        let responder = [7u8; 32];
        let mut gen = CookieGenerator::new(&responder);
        let mut msg = [1u8; INITIATION_LEN];
        gen.add_macs(&mut msg, 0);
        assert!(CookieChecker::new(&responder).check_mac1(&msg));
        assert!(!CookieChecker::new(&[8u8; 32]).check_mac1(&msg));
        msg[10] ^= 1;
        assert!(!CookieChecker::new(&responder).check_mac1(&msg));
    }

    #[test]
    fn cookie_round_trip_makes_mac2_valid_for_that_source_only() {
        let responder = [7u8; 32];
        let mut checker = CookieChecker::new(&responder);
        let mut gen = CookieGenerator::new(&responder);
        let mut msg = [2u8; INITIATION_LEN];
        gen.add_macs(&mut msg, 1000);
        assert!(!checker.check_mac2(&msg, b"src-a", 1000));
        let reply = checker.create_reply(&msg, b"src-a", 1000, [5; 24], || [42; 32]);
        assert!(gen.consume_reply(&reply, 1000));
        gen.add_macs(&mut msg, 2000);
        assert!(checker.check_mac2(&msg, b"src-a", 2000));
        assert!(!checker.check_mac2(&msg, b"src-b", 2000));
        // After the secret's lifetime, the old cookie no longer counts.
        assert!(!checker.check_mac2(&msg, b"src-a", 1000 + COOKIE_REFRESH_TIME));
    }

    #[test]
    fn a_reply_for_another_message_is_refused() {
        let responder = [7u8; 32];
        let mut checker = CookieChecker::new(&responder);
        let mut gen = CookieGenerator::new(&responder);
        let mut a = [2u8; INITIATION_LEN];
        let mut b = [3u8; INITIATION_LEN];
        gen.add_macs(&mut a, 0);
        let mut other = CookieGenerator::new(&responder);
        other.add_macs(&mut b, 0);
        let reply = checker.create_reply(&b, b"x", 0, [1; 24], || [9; 32]);
        assert!(!gen.consume_reply(&reply, 0));
    }
}
