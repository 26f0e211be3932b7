//! The WireGuard device: peers, the index table, and the two directions of
//! the data plane. `send` takes an IP packet and yields datagrams; `receive`
//! takes a datagram and yields IP packets and replies. Time comes from the
//! host on every call, in milliseconds.

use std::collections::HashMap;
use std::ops::Range;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::allowedips::{AllowedIps, Prefix};
use crate::cipher;
use crate::constants::*;
use crate::cookie::CookieChecker;
use crate::keypair::{Keypair, Slot};
use crate::noise::{self, Identity};
use crate::peer::Peer;
use crate::replay::ReplayCheck;

/// Why a packet was dropped. Every drop is counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than its message type requires.
    Truncated = 1,
    /// Longer than its message type allows.
    Oversized,
    /// Unknown message type or non-zero reserved bytes.
    BadType,
    /// mac1 wrong: not addressed to our key.
    BadMac1,
    /// Under load without a valid mac2: answered with a cookie reply instead.
    CookieRequired,
    /// Too many handshake messages from this source.
    RateLimited,
    /// The initiator's static key is not one of our peers.
    UnknownKey,
    /// No session or handshake has this receiver index.
    UnknownIndex,
    /// An AEAD did not authenticate.
    DecryptFailed,
    /// Transport counter already received.
    Replay,
    /// Transport counter older than the replay window.
    CounterOutOfWindow,
    /// Initiation timestamp not newer than the last one (a replayed initiation).
    StaleTimestamp,
    /// Initiations from this peer arrive too fast.
    HandshakeFlood,
    /// Inner source address not in the sending peer's allowed IPs.
    AllowedIps,
    /// Session past REJECT_AFTER_TIME.
    ExpiredSession,
    /// No peer's allowed IPs contain the destination.
    NoRoute,
    /// Not an IPv4 or IPv6 packet.
    BadPacket,
    /// The peer has no endpoint to send to.
    NoEndpoint,
    /// A staged packet was dropped for a newer one (queue full) or the handshake gave up.
    StagedDropped,
    /// A response for a handshake we are not doing.
    UnexpectedResponse,
}

/// Every reason, for the host's stats table.
pub const DROP_REASONS: [DropReason; 20] = [
    DropReason::Truncated,
    DropReason::Oversized,
    DropReason::BadType,
    DropReason::BadMac1,
    DropReason::CookieRequired,
    DropReason::RateLimited,
    DropReason::UnknownKey,
    DropReason::UnknownIndex,
    DropReason::DecryptFailed,
    DropReason::Replay,
    DropReason::CounterOutOfWindow,
    DropReason::StaleTimestamp,
    DropReason::HandshakeFlood,
    DropReason::AllowedIps,
    DropReason::ExpiredSession,
    DropReason::NoRoute,
    DropReason::BadPacket,
    DropReason::NoEndpoint,
    DropReason::StagedDropped,
    DropReason::UnexpectedResponse,
];

impl DropReason {
    /// Stable name for logs and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Oversized => "oversized",
            DropReason::BadType => "bad_type",
            DropReason::BadMac1 => "bad_mac1",
            DropReason::CookieRequired => "cookie_required",
            DropReason::RateLimited => "rate_limited",
            DropReason::UnknownKey => "unknown_key",
            DropReason::UnknownIndex => "unknown_index",
            DropReason::DecryptFailed => "decrypt_failed",
            DropReason::Replay => "replay",
            DropReason::CounterOutOfWindow => "counter_out_of_window",
            DropReason::StaleTimestamp => "stale_timestamp",
            DropReason::HandshakeFlood => "handshake_flood",
            DropReason::AllowedIps => "allowed_ips",
            DropReason::ExpiredSession => "expired_session",
            DropReason::NoRoute => "no_route",
            DropReason::BadPacket => "bad_packet",
            DropReason::NoEndpoint => "no_endpoint",
            DropReason::StagedDropped => "staged_dropped",
            DropReason::UnexpectedResponse => "unexpected_response",
        }
    }
}

/// What the host must do after a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes to this endpoint.
    Datagram {
        /// Endpoint handle.
        endpoint: u32,
        /// The WireGuard message.
        data: Vec<u8>,
    },
    /// Deliver this decrypted IP packet (it came from this peer).
    Packet {
        /// Peer id.
        peer: u32,
        /// The IP packet.
        data: Vec<u8>,
    },
    /// A packet was dropped.
    Drop(DropReason),
}

/// Bytes `Device::send_in_place` needs before the IP packet (the transport header).
pub const SEND_HEADROOM: usize = TRANSPORT_HEADER_LEN;
/// Bytes `Device::send_in_place` may need after the IP packet (padding and tag).
pub const SEND_TAILROOM: usize = 15 + AEAD_TAG_LEN;

/// Minimum gap between initiations accepted from one peer (wireguard-go's rate: 50/s).
const MIN_INITIATION_GAP: u64 = 20;

/// The device.
pub struct Device {
    pub(crate) identity: Identity,
    pub(crate) checker: CookieChecker,
    pub(crate) peers: HashMap<u32, Peer>,
    by_key: HashMap<[u8; 32], u32>,
    next_peer_id: u32,
    /// Our index → peer id.
    pub(crate) indices: HashMap<u32, u32>,
    allowed: AllowedIps,
    pub(crate) rng: ChaCha20Rng,
    forced_under_load: bool,
    under_load_until: u64,
    load_window: (u64, u32),
    limiter: HashMap<u32, (f64, u64)>,
    pub(crate) drops: [u64; DROP_REASONS.len() + 1],
}

/// Parse the version and the source or destination address of an IP packet.
fn ip_addr(packet: &[u8], source: bool) -> Option<(bool, &[u8])> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => Some((
            false,
            if source {
                &packet[12..16]
            } else {
                &packet[16..20]
            },
        )),
        6 if packet.len() >= 40 => Some((
            true,
            if source {
                &packet[8..24]
            } else {
                &packet[24..40]
            },
        )),
        _ => None,
    }
}

/// The real length of an IP packet inside padded plaintext, or None if malformed.
fn ip_len(packet: &[u8]) -> Option<usize> {
    let n = match packet.first()? >> 4 {
        4 if packet.len() >= 20 => u16::from_be_bytes([packet[2], packet[3]]) as usize,
        6 if packet.len() >= 40 => 40 + u16::from_be_bytes([packet[4], packet[5]]) as usize,
        _ => return None,
    };
    (n <= packet.len() && n >= 20).then_some(n)
}

impl Device {
    /// A device with this static private key; `seed` (32 random bytes from the
    /// host's CSPRNG) seeds ephemeral keys, indices and cookie secrets.
    pub fn new(private_key: [u8; 32], seed: [u8; 32]) -> Device {
        let identity = Identity::new(private_key);
        Device {
            checker: CookieChecker::new(&identity.public),
            identity,
            peers: HashMap::new(),
            by_key: HashMap::new(),
            next_peer_id: 1,
            indices: HashMap::new(),
            allowed: AllowedIps::default(),
            rng: ChaCha20Rng::from_seed(seed),
            forced_under_load: false,
            under_load_until: 0,
            load_window: (0, 0),
            limiter: HashMap::new(),
            drops: [0; DROP_REASONS.len() + 1],
        }
    }

    /// Our static public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.identity.public
    }

    /// Add a peer (or update it if the key exists). Returns its id.
    pub fn upsert_peer(
        &mut self,
        public: [u8; 32],
        psk: Option<[u8; 32]>,
        allowed_ips: &[Prefix],
        endpoint: Option<u32>,
        persistent_keepalive: u32,
    ) -> u32 {
        let id = match self.by_key.get(&public) {
            Some(&id) => id,
            None => {
                let id = self.next_peer_id;
                self.next_peer_id += 1;
                self.by_key.insert(public, id);
                self.peers
                    .insert(id, Peer::new(id, public, psk.unwrap_or([0; 32])));
                id
            }
        };
        let peer = self.peers.get_mut(&id).expect("peer just found or made");
        if let Some(psk) = psk {
            peer.psk = psk;
        }
        if endpoint.is_some() {
            peer.endpoint = endpoint;
        }
        peer.persistent_keepalive = persistent_keepalive;
        self.allowed.remove_peer(id);
        for p in allowed_ips {
            self.allowed.insert(*p, id);
        }
        let owned: Vec<Prefix> = self.allowed.of_peer(id).copied().collect();
        self.peers.get_mut(&id).unwrap().allowed = owned;
        id
    }

    /// Remove a peer and forget its sessions. False if it was not there.
    pub fn remove_peer(&mut self, public: &[u8; 32]) -> bool {
        let Some(id) = self.by_key.remove(public) else {
            return false;
        };
        self.allowed.remove_peer(id);
        if let Some(mut p) = self.peers.remove(&id) {
            for idx in p.keypairs.clear() {
                self.indices.remove(&idx);
            }
            if let Some(h) = p.handshake.take() {
                self.indices.remove(&h.local_index);
            }
        }
        true
    }

    /// Set a peer's endpoint.
    pub fn set_endpoint(&mut self, public: &[u8; 32], endpoint: u32) -> bool {
        match self
            .by_key
            .get(public)
            .and_then(|id| self.peers.get_mut(id))
        {
            Some(p) => {
                p.endpoint = Some(endpoint);
                true
            }
            None => false,
        }
    }

    /// A peer by id.
    pub fn peer(&self, id: u32) -> Option<&Peer> {
        self.peers.get(&id)
    }

    /// Peer id of a public key.
    pub fn peer_id(&self, public: &[u8; 32]) -> Option<u32> {
        self.by_key.get(public).copied()
    }

    /// Force (or stop forcing) cookie replies for every handshake, as under load.
    pub fn set_under_load(&mut self, on: bool) {
        self.forced_under_load = on;
    }

    /// Drops counted for a reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    pub(crate) fn drop_packet(&mut self, out: &mut Vec<Output>, reason: DropReason) {
        self.drops[reason as usize] += 1;
        out.push(Output::Drop(reason));
    }

    pub(crate) fn fresh_index(&mut self) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if i != 0 && !self.indices.contains_key(&i) {
                return i;
            }
        }
    }

    pub(crate) fn random32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.rng.fill_bytes(&mut b);
        b
    }

    // ---- sending -------------------------------------------------------------

    /// Encrypt an outgoing IP packet for the peer that owns its destination.
    pub fn send(&mut self, packet: &[u8], now: u64, out: &mut Vec<Output>) {
        let Some(id) = self.route_outgoing(packet, now, out) else {
            return;
        };
        self.send_transport(id, packet, now, out);
        self.rekey_if_due(id, now, out);
    }

    /// Encrypt the IP packet at `buf[SEND_HEADROOM..SEND_HEADROOM + len]` in
    /// place into a transport message starting at `buf[0]`, when its peer has
    /// a usable session and an endpoint: returns the endpoint and the
    /// message's length (`buf` needs `len + SEND_TAILROOM` bytes after the
    /// headroom). Otherwise the packet takes `send`'s path (staged for a
    /// handshake, or dropped) and what that yields lands in `out`; None.
    /// The fast path allocates nothing.
    pub fn send_in_place(
        &mut self,
        buf: &mut [u8],
        len: usize,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Option<(u32, usize)> {
        let packet = buf.get(SEND_HEADROOM..SEND_HEADROOM + len)?;
        let id = self.route_outgoing(packet, now, out)?;
        let sent = self.seal_in_place(id, buf, len, now, out);
        self.rekey_if_due(id, now, out);
        sent
    }

    /// The peer an outgoing packet goes to if its session can carry it now;
    /// None when it was dropped or staged for a handshake (begun here).
    fn route_outgoing(&mut self, packet: &[u8], now: u64, out: &mut Vec<Output>) -> Option<u32> {
        let Some((v6, dst)) = ip_addr(packet, false) else {
            self.drop_packet(out, DropReason::BadPacket);
            return None;
        };
        if packet.len() > 65535 {
            self.drop_packet(out, DropReason::Oversized);
            return None;
        }
        let Some(id) = self.allowed.lookup(v6, dst) else {
            self.drop_packet(out, DropReason::NoRoute);
            return None;
        };
        let usable = self.peers[&id]
            .keypairs
            .current
            .as_ref()
            .is_some_and(|k| k.can_send(now));
        if !usable {
            let peer = self.peers.get_mut(&id).unwrap();
            if peer.staged.len() >= MAX_STAGED_PACKETS {
                peer.staged.pop_front();
                self.drop_packet(out, DropReason::StagedDropped);
            }
            self.peers
                .get_mut(&id)
                .unwrap()
                .staged
                .push_back(packet.to_vec());
            self.begin_handshake(id, now, false, out);
            return None;
        }
        Some(id)
    }

    /// Begin a handshake when the current session is old enough to rekey.
    fn rekey_if_due(&mut self, id: u32, now: u64, out: &mut Vec<Output>) {
        let peer = &self.peers[&id];
        if peer
            .keypairs
            .current
            .as_ref()
            .is_some_and(|k| k.needs_rekey(now))
        {
            self.begin_handshake(id, now, false, out);
        }
    }

    /// Encrypt `packet` (empty: a keepalive) on the peer's current session.
    pub(crate) fn send_transport(
        &mut self,
        id: u32,
        packet: &[u8],
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let mut msg = vec![0u8; SEND_HEADROOM + packet.len() + SEND_TAILROOM];
        msg[SEND_HEADROOM..SEND_HEADROOM + packet.len()].copy_from_slice(packet);
        if let Some((endpoint, n)) = self.seal_in_place(id, &mut msg, packet.len(), now, out) {
            msg.truncate(n);
            out.push(Output::Datagram {
                endpoint,
                data: msg,
            });
        }
    }

    /// Seal `buf[SEND_HEADROOM..][..len]` on the peer's current session into a
    /// transport message at `buf[0..]`: padding, counter, header and tag.
    /// Returns the endpoint and the message's length; None (and a counted drop
    /// when it has no endpoint) when the peer cannot send.
    fn seal_in_place(
        &mut self,
        id: u32,
        buf: &mut [u8],
        len: usize,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Option<(u32, usize)> {
        let peer = self.peers.get_mut(&id).unwrap();
        let Some(endpoint) = peer.endpoint else {
            self.drop_packet(out, DropReason::NoEndpoint);
            return None;
        };
        let kp = peer.keypairs.current.as_mut()?;
        let padded = (len + 15) & !15;
        let total = TRANSPORT_HEADER_LEN + padded + AEAD_TAG_LEN;
        if buf.len() < total {
            self.drop_packet(out, DropReason::Oversized);
            return None;
        }
        buf[SEND_HEADROOM + len..SEND_HEADROOM + padded].fill(0);
        buf[..4].copy_from_slice(&[MSG_TRANSPORT, 0, 0, 0]);
        buf[4..8].copy_from_slice(&kp.remote_index.to_le_bytes());
        let counter = kp.send_counter;
        kp.send_counter += 1;
        buf[8..16].copy_from_slice(&counter.to_le_bytes());
        let (body, tail) = buf[TRANSPORT_HEADER_LEN..].split_at_mut(padded);
        let tag = cipher::seal(&kp.send_key, &cipher::counter_nonce(counter), &[], body);
        tail[..AEAD_TAG_LEN].copy_from_slice(&tag);
        peer.last_sent = Some(now);
        peer.keepalive_due = None;
        if len > 0 {
            peer.stats.tx_bytes += len as u64;
            // Data with no answer within KEEPALIVE_TIMEOUT + REKEY_TIMEOUT means the session may be dead.
            peer.new_handshake_due
                .get_or_insert(now.saturating_add(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT));
        }
        Some((endpoint, total))
    }

    /// Send an initiation to a peer unless one went out less than REKEY_TIMEOUT
    /// ago (or `retry` says the retry timer fired).
    pub(crate) fn begin_handshake(
        &mut self,
        id: u32,
        now: u64,
        retry: bool,
        out: &mut Vec<Output>,
    ) {
        let peer = &self.peers[&id];
        if !retry {
            if peer.handshake.is_some() {
                return;
            }
            if peer
                .last_initiation_sent
                .is_some_and(|t| now.saturating_sub(t) < REKEY_TIMEOUT)
            {
                return;
            }
        }
        let Some(endpoint) = peer.endpoint else {
            return self.drop_packet(out, DropReason::NoEndpoint);
        };
        let index = self.fresh_index();
        let eph = self.random32();
        let jitter = u64::from(self.rng.next_u32()) % (REKEY_TIMEOUT_JITTER_MAX + 1);
        let peer = self.peers.get_mut(&id).unwrap();
        if let Some(old) = peer.handshake.take() {
            self.indices.remove(&old.local_index);
        }
        let peer = self.peers.get_mut(&id).unwrap();
        let mut msg = [0u8; INITIATION_LEN];
        let Ok(state) = noise::create_initiation(
            &self.identity,
            &peer.public,
            index,
            eph,
            &noise::tai64n(now),
            &mut msg,
        ) else {
            return;
        };
        peer.cookie.add_macs(&mut msg, now);
        peer.handshake = Some(state);
        peer.handshake_started.get_or_insert(now);
        peer.last_initiation_sent = Some(now);
        peer.retry_at = Some(now.saturating_add(REKEY_TIMEOUT + jitter));
        peer.last_sent = Some(now);
        self.indices.insert(index, id);
        out.push(Output::Datagram {
            endpoint,
            data: msg.to_vec(),
        });
    }

    // ---- receiving -----------------------------------------------------------

    fn note_handshake_load(&mut self, now: u64) -> bool {
        let (start, count) = self.load_window;
        if now.saturating_sub(start) >= 1000 {
            self.load_window = (now, 1);
        } else {
            self.load_window.1 = count + 1;
            if self.load_window.1 > UNDER_LOAD_HANDSHAKES_PER_SEC {
                self.under_load_until = now.saturating_add(UNDER_LOAD_AFTER_TIME);
            }
        }
        self.forced_under_load || now < self.under_load_until
    }

    fn allow_source(&mut self, endpoint: u32, now: u64) -> bool {
        if self.limiter.len() > 4096 {
            self.limiter
                .retain(|_, (_, at)| now.saturating_sub(*at) < 1000);
        }
        let burst = f64::from(HANDSHAKE_BURST_PER_SOURCE);
        let (tokens, at) = self.limiter.entry(endpoint).or_insert((burst, now));
        *tokens = (*tokens
            + now.saturating_sub(*at) as f64 / 1000.0 * f64::from(HANDSHAKES_PER_SEC_PER_SOURCE))
        .min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Check macs (and, under load, the cookie and rate); Some(reason) to drop.
    fn admit_handshake(
        &mut self,
        msg: &[u8],
        endpoint: u32,
        now: u64,
        out: &mut Vec<Output>,
    ) -> bool {
        if !self.checker.check_mac1(msg) {
            self.drop_packet(out, DropReason::BadMac1);
            return false;
        }
        if self.note_handshake_load(now) {
            let source = endpoint.to_le_bytes();
            if !self.checker.check_mac2(msg, &source, now) {
                let mut nonce = [0u8; 24];
                self.rng.fill_bytes(&mut nonce);
                let secret = self.random32();
                let reply = self
                    .checker
                    .create_reply(msg, &source, now, nonce, || secret);
                out.push(Output::Datagram {
                    endpoint,
                    data: reply.to_vec(),
                });
                self.drop_packet(out, DropReason::CookieRequired);
                return false;
            }
            if !self.allow_source(endpoint, now) {
                self.drop_packet(out, DropReason::RateLimited);
                return false;
            }
        }
        true
    }

    /// Process a datagram that arrived from `endpoint`.
    pub fn receive(&mut self, datagram: &[u8], endpoint: u32, now: u64, out: &mut Vec<Output>) {
        if datagram.len() < 4 {
            return self.drop_packet(out, DropReason::Truncated);
        }
        if datagram[1..4] != [0, 0, 0] {
            return self.drop_packet(out, DropReason::BadType);
        }
        let (want, kind) = match datagram[0] {
            MSG_INITIATION => (INITIATION_LEN, 1),
            MSG_RESPONSE => (RESPONSE_LEN, 2),
            MSG_COOKIE_REPLY => (COOKIE_REPLY_LEN, 3),
            MSG_TRANSPORT => (0, 4),
            _ => return self.drop_packet(out, DropReason::BadType),
        };
        if kind != 4 {
            if datagram.len() < want {
                return self.drop_packet(out, DropReason::Truncated);
            }
            if datagram.len() > want {
                return self.drop_packet(out, DropReason::Oversized);
            }
        }
        match kind {
            1 => self.receive_initiation(datagram.try_into().unwrap(), endpoint, now, out),
            2 => self.receive_response(datagram.try_into().unwrap(), endpoint, now, out),
            3 => self.receive_cookie_reply(datagram.try_into().unwrap(), now, out),
            _ => self.receive_transport(datagram, endpoint, now, out),
        }
    }

    fn receive_initiation(
        &mut self,
        msg: &[u8; INITIATION_LEN],
        endpoint: u32,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        if !self.admit_handshake(msg, endpoint, now, out) {
            return;
        }
        let Ok(init) = noise::consume_initiation(&self.identity, msg) else {
            return self.drop_packet(out, DropReason::DecryptFailed);
        };
        let Some(&id) = self.by_key.get(&init.peer_public) else {
            return self.drop_packet(out, DropReason::UnknownKey);
        };
        let peer = &self.peers[&id];
        if init.timestamp <= peer.last_timestamp {
            return self.drop_packet(out, DropReason::StaleTimestamp);
        }
        if peer
            .last_initiation_received
            .is_some_and(|t| now.saturating_sub(t) < MIN_INITIATION_GAP)
        {
            return self.drop_packet(out, DropReason::HandshakeFlood);
        }
        let index = self.fresh_index();
        let eph = self.random32();
        let peer = self.peers.get_mut(&id).unwrap();
        let mut resp = [0u8; RESPONSE_LEN];
        let Ok(keys) = noise::create_response(&init, &peer.psk, index, eph, &mut resp) else {
            return self.drop_packet(out, DropReason::DecryptFailed);
        };
        peer.cookie.add_macs(&mut resp, now);
        peer.last_timestamp = init.timestamp;
        peer.last_initiation_received = Some(now);
        peer.endpoint = Some(endpoint);
        peer.last_received = Some(now);
        peer.last_sent = Some(now);
        peer.stats.handshakes += 1;
        peer.stats.last_handshake = now;
        let gone = peer.keypairs.install_responder(Keypair::new(keys, now));
        for g in gone {
            self.indices.remove(&g);
        }
        self.indices.insert(index, id);
        out.push(Output::Datagram {
            endpoint,
            data: resp.to_vec(),
        });
    }

    fn receive_response(
        &mut self,
        msg: &[u8; RESPONSE_LEN],
        endpoint: u32,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        if !self.admit_handshake(msg, endpoint, now, out) {
            return;
        }
        let receiver = u32::from_le_bytes(msg[8..12].try_into().unwrap());
        let Some(&id) = self.indices.get(&receiver) else {
            return self.drop_packet(out, DropReason::UnknownIndex);
        };
        let peer = self.peers.get_mut(&id).unwrap();
        let Some(state) = peer
            .handshake
            .as_ref()
            .filter(|h| h.local_index == receiver)
        else {
            return self.drop_packet(out, DropReason::UnexpectedResponse);
        };
        let Ok(keys) = noise::consume_response(&self.identity, state, &peer.psk, msg) else {
            return self.drop_packet(out, DropReason::DecryptFailed);
        };
        peer.handshake = None;
        peer.handshake_started = None;
        peer.retry_at = None;
        peer.sent_lastminute_handshake = false;
        peer.endpoint = Some(endpoint);
        peer.last_received = Some(now);
        peer.new_handshake_due = None;
        peer.stats.handshakes += 1;
        peer.stats.last_handshake = now;
        // The initiator's new session is confirmed at once and replaces the current one.
        let gone = peer.keypairs.install_initiator(Keypair::new(keys, now));
        for g in gone {
            self.indices.remove(&g);
        }
        let staged: Vec<Vec<u8>> = self.peers.get_mut(&id).unwrap().staged.drain(..).collect();
        if staged.is_empty() {
            // A keepalive confirms the session to the responder.
            self.send_transport(id, &[], now, out);
        }
        for p in staged {
            self.send_transport(id, &p, now, out);
        }
    }

    fn receive_cookie_reply(
        &mut self,
        msg: &[u8; COOKIE_REPLY_LEN],
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let receiver = u32::from_le_bytes(msg[4..8].try_into().unwrap());
        let Some(&id) = self.indices.get(&receiver) else {
            return self.drop_packet(out, DropReason::UnknownIndex);
        };
        if !self
            .peers
            .get_mut(&id)
            .unwrap()
            .cookie
            .consume_reply(msg, now)
        {
            self.drop_packet(out, DropReason::DecryptFailed);
        }
        // The next (re)transmission carries mac2; the retry timer sends it.
    }

    fn receive_transport(&mut self, msg: &[u8], endpoint: u32, now: u64, out: &mut Vec<Output>) {
        if msg.len() < TRANSPORT_HEADER_LEN + AEAD_TAG_LEN {
            return self.drop_packet(out, DropReason::Truncated);
        }
        if msg.len() > MAX_TRANSPORT_LEN {
            return self.drop_packet(out, DropReason::Oversized);
        }
        let mut buf = msg.to_vec();
        if let Some((peer, range)) = self.open_transport(&mut buf, endpoint, now, out) {
            buf.truncate(range.end);
            buf.drain(..range.start);
            out.push(Output::Packet { peer, data: buf });
        }
    }

    /// Process the datagram in `buf` from `endpoint`, decrypting a transport
    /// message in place: returns the sending peer and where in `buf` its IP
    /// packet lies. Handshake messages, keepalives and drops return None and
    /// yield what `receive` would into `out`. A transport message allocates
    /// nothing unless it needs a reply.
    pub fn receive_in_place(
        &mut self,
        buf: &mut [u8],
        endpoint: u32,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Option<(u32, Range<usize>)> {
        let is_transport = buf.len() >= 4 && buf[0] == MSG_TRANSPORT && buf[1..4] == [0, 0, 0];
        if !is_transport
            || buf.len() < TRANSPORT_HEADER_LEN + AEAD_TAG_LEN
            || buf.len() > MAX_TRANSPORT_LEN
        {
            self.receive(buf, endpoint, now, out);
            return None;
        }
        self.open_transport(buf, endpoint, now, out)
    }

    /// The transport path of `receive`, in place on a message of valid length.
    fn open_transport(
        &mut self,
        buf: &mut [u8],
        endpoint: u32,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Option<(u32, Range<usize>)> {
        let receiver = u32::from_le_bytes(buf[4..8].try_into().unwrap());
        let counter = u64::from_le_bytes(buf[8..16].try_into().unwrap());
        let Some(&id) = self.indices.get(&receiver) else {
            self.drop_packet(out, DropReason::UnknownIndex);
            return None;
        };
        let peer = self.peers.get_mut(&id).unwrap();
        let Some((slot, kp)) = peer.keypairs.find(receiver) else {
            self.drop_packet(out, DropReason::UnknownIndex);
            return None;
        };
        if !kp.can_receive(now) {
            self.drop_packet(out, DropReason::ExpiredSession);
            return None;
        }
        match kp.replay.check(counter) {
            ReplayCheck::Fresh => {}
            ReplayCheck::Replayed => {
                self.drop_packet(out, DropReason::Replay);
                return None;
            }
            ReplayCheck::OutOfWindow => {
                self.drop_packet(out, DropReason::CounterOutOfWindow);
                return None;
            }
        }
        let body_len = buf.len() - TRANSPORT_HEADER_LEN - AEAD_TAG_LEN;
        let (body, tag) = buf[TRANSPORT_HEADER_LEN..].split_at_mut(body_len);
        let tag: [u8; AEAD_TAG_LEN] = (&*tag).try_into().expect("tag length");
        if !cipher::open(
            &kp.recv_key,
            &cipher::counter_nonce(counter),
            &[],
            body,
            &tag,
        ) {
            self.drop_packet(out, DropReason::DecryptFailed);
            return None;
        }
        // Only an authenticated packet moves the window.
        kp.replay.accept(counter);
        let initiator_session_age = (slot == Slot::Current && kp.initiator).then(|| kp.age(now));
        if slot == Slot::Next {
            let gone = peer.keypairs.confirm_next();
            for g in gone {
                self.indices.remove(&g);
            }
        }
        let peer = self.peers.get_mut(&id).unwrap();
        peer.endpoint = Some(endpoint);
        peer.last_received = Some(now);
        peer.new_handshake_due = None;
        if let Some(age) = initiator_session_age {
            // Rekey before the session dies under us (whitepaper §6.2).
            if age >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT
                && !peer.sent_lastminute_handshake
            {
                peer.sent_lastminute_handshake = true;
                self.begin_handshake(id, now, false, out);
            }
        }
        let plain = &buf[TRANSPORT_HEADER_LEN..buf.len() - AEAD_TAG_LEN];
        if plain.is_empty() {
            return None; // keepalive
        }
        let Some(len) = ip_len(plain) else {
            self.drop_packet(out, DropReason::BadPacket);
            return None;
        };
        let plain = &plain[..len];
        let (v6, src) = ip_addr(plain, true).expect("length checked");
        if self.allowed.lookup(v6, src) != Some(id) {
            self.drop_packet(out, DropReason::AllowedIps);
            return None;
        }
        let peer = self.peers.get_mut(&id).unwrap();
        peer.stats.rx_bytes += len as u64;
        peer.keepalive_due
            .get_or_insert(now.saturating_add(KEEPALIVE_TIMEOUT));
        Some((id, TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + len))
    }
}
