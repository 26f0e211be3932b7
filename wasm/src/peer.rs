//! A peer: its static key, preshared key, endpoint, handshake in progress,
//! sessions, staged packets and timer state.

use std::collections::VecDeque;

use crate::allowedips::Prefix;
use crate::cookie::CookieGenerator;
use crate::keypair::Keypairs;
use crate::noise::InitiatorState;

/// Per-peer counters the host can show.
#[derive(Default, Clone, Copy)]
pub struct PeerStats {
    /// Plaintext bytes received.
    pub rx_bytes: u64,
    /// Plaintext bytes sent.
    pub tx_bytes: u64,
    /// When the last handshake completed (ms), 0 if never.
    pub last_handshake: u64,
    /// Handshakes completed.
    pub handshakes: u64,
}

/// One peer of the device.
pub struct Peer {
    /// Host-visible id.
    pub id: u32,
    /// Static public key.
    pub public: [u8; 32],
    /// Preshared key (zeros when none).
    pub psk: [u8; 32],
    /// Where to send (an opaque handle the host maps to an address or path).
    pub endpoint: Option<u32>,
    /// Our side of mac1/mac2 towards this peer.
    pub cookie: CookieGenerator,
    /// The initiation we sent and await a response to.
    pub handshake: Option<InitiatorState>,
    /// When the current handshake attempt series began (for REKEY_ATTEMPT_TIME).
    pub handshake_started: Option<u64>,
    /// When we last sent an initiation.
    pub last_initiation_sent: Option<u64>,
    /// When to retry the initiation if no response came.
    pub retry_at: Option<u64>,
    /// Highest TAI64N timestamp seen in an initiation from this peer.
    pub last_timestamp: [u8; 12],
    /// When we last accepted an initiation from this peer (flood limit).
    pub last_initiation_received: Option<u64>,
    /// Sessions.
    pub keypairs: Keypairs,
    /// Packets waiting for a session.
    pub staged: VecDeque<Vec<u8>>,
    /// When we last sent anything (data or keepalive).
    pub last_sent: Option<u64>,
    /// When we last received an authenticated packet.
    pub last_received: Option<u64>,
    /// Passive keepalive due at (after receiving data and sending nothing).
    pub keepalive_due: Option<u64>,
    /// Start a handshake at this time if nothing is received by then.
    pub new_handshake_due: Option<u64>,
    /// Whether the "session about to expire" handshake was already started.
    pub sent_lastminute_handshake: bool,
    /// Persistent keepalive interval in seconds (0: off).
    pub persistent_keepalive: u32,
    /// Allowed IPs, kept here too so the host can list them.
    pub allowed: Vec<Prefix>,
    /// Counters.
    pub stats: PeerStats,
}

impl Peer {
    /// A new peer with no sessions.
    pub fn new(id: u32, public: [u8; 32], psk: [u8; 32]) -> Peer {
        Peer {
            id,
            public,
            psk,
            endpoint: None,
            cookie: CookieGenerator::new(&public),
            handshake: None,
            handshake_started: None,
            last_initiation_sent: None,
            retry_at: None,
            last_timestamp: [0; 12],
            last_initiation_received: None,
            keypairs: Keypairs::default(),
            staged: VecDeque::new(),
            last_sent: None,
            last_received: None,
            keepalive_due: None,
            new_handshake_due: None,
            sent_lastminute_handshake: false,
            persistent_keepalive: 0,
            allowed: Vec::new(),
            stats: PeerStats::default(),
        }
    }
}
