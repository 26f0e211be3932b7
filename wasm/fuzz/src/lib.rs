//! The harness of the `receive` fuzz target: a device under test (B) with one
//! peer (A, a second in-memory device), optionally past a handshake so that
//! transport messages reach decryption and cryptokey routing, and the fuzz
//! input replayed against it as a short script of datagrams, packets and
//! clock ticks.
//!
//! Input format: byte 0 picks the setup (see [`Setup`]; bit 2: B receives
//! through `Device::receive_in_place`, the native data plane's path, which
//! must behave exactly as `receive`); then records of
//! `op: u8, len: u16 LE, body: [u8; len]` (a short last record takes what is
//! left). In `op`, bits 0-1 are the action, bit 2 the source endpoint of a
//! datagram, bit 3 "fix mac1", bits 4-7 how far the clock moves first (see
//! [`STEPS`], which include steps back: hosts pass `Date.now()`, a wall clock).
//!
//! | action | what happens |
//! | --- | --- |
//! | 0 | B receives `body` as a datagram from the chosen endpoint; with "fix mac1", a handshake-sized body first gets a valid mac1 (and zero mac2), so mutated handshake messages get past the mac check into the Noise code |
//! | 1 | A encrypts `body`, made into an IP packet addressed to B, and sends it |
//! | 2 | B sends `body` as an IP packet |
//! | 3 | both devices tick |
//!
//! After each action, datagrams between A and B are delivered both ways for a
//! few rounds. Besides "never panics", every IP packet B delivers must come
//! from A with a source address in A's allowed IPs, and have its IP length.

use trellis_wasm::allowedips::Prefix;
use trellis_wasm::constants::{INITIATION_LEN, RESPONSE_LEN};
use trellis_wasm::cookie::CookieGenerator;
use trellis_wasm::{Device, DropReason, Output};

/// How B addresses A.
pub const A_EP: u32 = 100;
/// How A addresses B.
pub const B_EP: u32 = 200;
/// Endpoints a datagram for B can come from (bit 2 of an op).
pub const ENDPOINTS: [u32; 2] = [A_EP, 300];
/// Bit of an op that makes the harness fill in mac1 of a handshake message.
pub const FIX_MAC1: u8 = 1 << 3;
/// Clock moves in milliseconds (bits 4-7 of an op): around the protocol's
/// timers (20 ms initiation gap, REKEY_TIMEOUT, KEEPALIVE_TIMEOUT,
/// REKEY_ATTEMPT_TIME, REKEY_AFTER_TIME, REJECT_AFTER_TIME, three times that)
/// and two steps back.
pub const STEPS: [i64; 16] = [
    0, 1, 15, 25, 333, 1_000, 5_000, 5_334, 10_000, 15_000, 90_000, 120_000, 180_000, 540_000,
    -1_000, -200_000,
];
/// Start of the clock: a plausible `Date.now()`.
pub const T0: u64 = 1_700_000_000_000;
/// At most this many records run per input.
pub const MAX_RECORDS: usize = 48;
const PUMP_ROUNDS: usize = 6;

const A_KEY: [u8; 32] = [1; 32];
const A_SEED: [u8; 32] = [11; 32];
const B_KEY: [u8; 32] = [2; 32];
const B_SEED: [u8; 32] = [22; 32];
const PSK: [u8; 32] = [9; 32];
/// A's inner addresses (its allowed IPs at B).
pub const A_IP: [u8; 4] = [100, 64, 0, 1];
/// A's IPv6 inner address.
pub const A_IP6: [u8; 16] = [
    0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
];
/// B's inner addresses (its allowed IPs at A).
pub const B_IP: [u8; 4] = [100, 64, 0, 2];
/// B's IPv6 inner address.
pub const B_IP6: [u8; 16] = [
    0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
];

/// The state B is in before the script runs (byte 0 of the input, mod 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// No traffic yet; B does not know A's endpoint.
    Fresh,
    /// B sent an initiation to A; A's response is withheld.
    Initiated,
    /// A initiated, B responded, A confirmed with data: B has a session.
    Established,
    /// As `Established`, with B under load (cookies required).
    UnderLoad,
}

impl Setup {
    /// The setup for an input's first byte.
    pub fn from_byte(b: u8) -> Setup {
        [
            Setup::Fresh,
            Setup::Initiated,
            Setup::Established,
            Setup::UnderLoad,
        ][usize::from(b % 4)]
    }
}

/// An IPv4 packet (UDP, no checksum) with this payload.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    p[0] = 0x45;
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20..].copy_from_slice(payload);
    p
}

fn prefix(s: &str) -> Prefix {
    Prefix::parse(s).expect("valid prefix")
}

/// What B did over a run, for the seed tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// IP packets B delivered.
    pub packets_at_b: usize,
    /// Lengths of the datagrams B sent.
    pub datagrams_from_b: Vec<usize>,
    /// Drops B reported, in order.
    pub drops_at_b: Vec<DropReason>,
}

/// The two devices and the clock.
pub struct World {
    /// The peer, driven by the harness.
    pub a: Device,
    /// The device under test.
    pub b: Device,
    /// Current time (ms).
    pub now: u64,
    /// A's peer id at B.
    pub a_id: u32,
    /// The initiation B sent during setup (`Setup::Initiated`).
    pub b_initiation: Option<Vec<u8>>,
    /// Datagrams for B that setup did not deliver (A's response in `Setup::Initiated`).
    pub withheld: Vec<Vec<u8>>,
    /// What B did since setup.
    pub summary: Summary,
    /// B receives in place (the native data plane's path) rather than by `receive`.
    pub in_place: bool,
}

impl World {
    /// Two devices that know each other, in the given state.
    pub fn new(setup: Setup) -> World {
        let mut a = Device::new(A_KEY, A_SEED);
        let mut b = Device::new(B_KEY, B_SEED);
        let (a_pub, b_pub) = (a.public_key(), b.public_key());
        a.upsert_peer(
            b_pub,
            Some(PSK),
            &[prefix("100.64.0.2/32"), prefix("fd7a:115c:a1e0::2/128")],
            Some(B_EP),
            0,
        );
        let a_id = b.upsert_peer(
            a_pub,
            Some(PSK),
            &[prefix("100.64.0.1/32"), prefix("fd7a:115c:a1e0::1/128")],
            (setup == Setup::Initiated).then_some(A_EP),
            0,
        );
        let mut w = World {
            a,
            b,
            now: T0,
            a_id,
            b_initiation: None,
            withheld: Vec::new(),
            summary: Summary::default(),
            in_place: false,
        };
        match setup {
            Setup::Fresh => {}
            Setup::Initiated => {
                let mut out = Vec::new();
                w.b.send(&ipv4(B_IP, A_IP, b"from b"), w.now, &mut out);
                let init = datagram_to(&out, A_EP).expect("B sends an initiation");
                let mut out = Vec::new();
                w.a.receive(&init, B_EP, w.now, &mut out);
                w.withheld = datagrams_to(&out, B_EP);
                assert_eq!(w.withheld.len(), 1, "A answers with a response");
                w.b_initiation = Some(init);
            }
            Setup::Established | Setup::UnderLoad => {
                let mut out = Vec::new();
                w.a.send(&ipv4(A_IP, B_IP, b"from a"), w.now, &mut out);
                w.pump(datagrams_to(&out, B_EP), Vec::new());
                assert_eq!(w.summary.packets_at_b, 1, "setup handshake completes");
                if setup == Setup::UnderLoad {
                    w.b.set_under_load(true);
                }
            }
        }
        w.summary = Summary::default();
        w
    }

    /// Move the clock by one of [`STEPS`] (never below zero).
    pub fn step(&mut self, i: usize) {
        self.now = self.now.saturating_add_signed(STEPS[i % STEPS.len()]);
    }

    /// B processes a datagram by `receive`, or in place (`in_place`), with
    /// the packet it yields as an output either way.
    fn b_receive(&mut self, d: &[u8], endpoint: u32) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.in_place {
            self.b.receive(d, endpoint, self.now, &mut out);
            return out;
        }
        let mut buf = d.to_vec();
        if let Some((peer, range)) = self
            .b
            .receive_in_place(&mut buf, endpoint, self.now, &mut out)
        {
            out.push(Output::Packet {
                peer,
                data: buf[range].to_vec(),
            });
        }
        out
    }

    /// B receives one datagram.
    pub fn receive_at_b(&mut self, d: &[u8], endpoint: u32) {
        let out = self.b_receive(d, endpoint);
        let to_a = self.observe_b(&out);
        self.pump(Vec::new(), to_a);
    }

    /// Check and record what B produced; returns its datagrams for A.
    fn observe_b(&mut self, out: &[Output]) -> Vec<Vec<u8>> {
        for o in out {
            match o {
                Output::Packet { peer, data } => {
                    assert_eq!(*peer, self.a_id, "a packet from the only peer");
                    check_inner_source(data);
                    self.summary.packets_at_b += 1;
                }
                Output::Datagram { data, .. } => {
                    check_wire_message(data);
                    self.summary.datagrams_from_b.push(data.len());
                }
                Output::Drop(r) => self.summary.drops_at_b.push(*r),
            }
        }
        datagrams_to(out, A_EP)
    }

    /// Deliver datagrams between A and B until quiet (bounded).
    pub fn pump(&mut self, mut to_b: Vec<Vec<u8>>, mut to_a: Vec<Vec<u8>>) {
        for _ in 0..PUMP_ROUNDS {
            if to_a.is_empty() && to_b.is_empty() {
                return;
            }
            let mut next_a = Vec::new();
            for d in to_b.drain(..) {
                let out = self.b_receive(&d, A_EP);
                next_a.extend(self.observe_b(&out));
            }
            let mut next_b = Vec::new();
            for d in to_a.drain(..) {
                let mut out = Vec::new();
                self.a.receive(&d, B_EP, self.now, &mut out);
                next_b.extend(datagrams_to(&out, B_EP));
            }
            to_a = next_a;
            to_b = next_b;
        }
    }

    /// Run one record.
    pub fn record(&mut self, op: u8, body: &[u8]) {
        self.step(usize::from(op >> 4));
        match op & 3 {
            0 => {
                let endpoint = ENDPOINTS[usize::from((op >> 2) & 1)];
                if op & FIX_MAC1 != 0 {
                    let mut d = body.to_vec();
                    with_mac1(&mut d, &self.b.public_key());
                    self.receive_at_b(&d, endpoint);
                } else {
                    self.receive_at_b(body, endpoint);
                }
            }
            1 => {
                let mut out = Vec::new();
                self.a.send(&packet_for_b(body), self.now, &mut out);
                self.pump(datagrams_to(&out, B_EP), Vec::new());
            }
            2 => {
                let mut out = Vec::new();
                self.b.send(body, self.now, &mut out);
                let to_a = self.observe_b(&out);
                self.pump(Vec::new(), to_a);
            }
            _ => {
                let mut out = Vec::new();
                self.b.tick(self.now, &mut out);
                let to_a = self.observe_b(&out);
                let mut out = Vec::new();
                self.a.tick(self.now, &mut out);
                self.pump(datagrams_to(&out, B_EP), to_a);
            }
        }
    }
}

/// Make `body` an IP packet A routes to B: IPv6 if its version nibble says 6,
/// else IPv4, with the destination set to B; source, length fields and the rest stay
/// as the fuzzer wrote them, so B's length and allowed-IPs checks get exercised
/// on packets that authenticate.
pub fn packet_for_b(body: &[u8]) -> Vec<u8> {
    let mut p = body.to_vec();
    let v6 = p.first().is_some_and(|b| b >> 4 == 6);
    if v6 {
        if p.len() < 40 {
            p.resize(40, 0);
        }
        p[0] = 0x60 | (p[0] & 0x0f);
        p[24..40].copy_from_slice(&B_IP6);
    } else {
        if p.len() < 20 {
            p.resize(20, 0);
        }
        p[0] = 0x40 | (p[0] & 0x0f);
        p[16..20].copy_from_slice(&B_IP);
    }
    p
}

/// Give an initiation- or response-sized datagram a valid mac1 for `receiver`.
pub fn with_mac1(d: &mut [u8], receiver: &[u8; 32]) {
    if d.len() == INITIATION_LEN || d.len() == RESPONSE_LEN {
        CookieGenerator::new(receiver).add_macs(d, 0);
    }
}

fn datagrams_to(out: &[Output], endpoint: u32) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Datagram { endpoint: e, data } if *e == endpoint => Some(data.clone()),
            _ => None,
        })
        .collect()
}

fn datagram_to(out: &[Output], endpoint: u32) -> Option<Vec<u8>> {
    datagrams_to(out, endpoint).into_iter().next()
}

/// A packet B delivers comes from one of A's allowed IPs and is exactly as
/// long as its IP header says.
fn check_inner_source(p: &[u8]) {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            assert!(p.len() >= 20);
            assert_eq!(&p[12..16], &A_IP, "inner source is A's allowed IP");
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        }
        Some(6) => {
            assert!(p.len() >= 40);
            assert_eq!(&p[8..24], &A_IP6, "inner source is A's allowed IP");
            assert_eq!(40 + usize::from(u16::from_be_bytes([p[4], p[5]])), p.len());
        }
        _ => panic!("delivered a non-IP packet: {p:02x?}"),
    }
}

/// Whatever B sends is a well-formed WireGuard message.
fn check_wire_message(d: &[u8]) {
    assert!(d.len() >= 4 && d[1..4] == [0, 0, 0], "header of {d:02x?}");
    match d[0] {
        1 => assert_eq!(d.len(), 148),
        2 => assert_eq!(d.len(), 92),
        3 => assert_eq!(d.len(), 64),
        4 => assert!(
            d.len() >= 32 && (d.len() - 32).is_multiple_of(16),
            "transport length"
        ),
        t => panic!("B sent message type {t}"),
    }
}

/// Run one fuzz input; returns what B did.
pub fn run(data: &[u8]) -> Summary {
    let Some((&first, mut rest)) = data.split_first() else {
        return Summary::default();
    };
    let mut w = World::new(Setup::from_byte(first));
    w.in_place = first & 4 != 0;
    for _ in 0..MAX_RECORDS {
        let Some((&op, tail)) = rest.split_first() else {
            break;
        };
        let (len, tail) = match tail {
            [lo, hi, tail @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), tail),
            _ => (tail.len(), &[][..]),
        };
        let (body, tail) = tail.split_at(len.min(tail.len()));
        w.record(op, body);
        rest = tail;
    }
    w.summary
}

/// Encode a script: setup, then `(op, body)` records.
pub fn encode(setup: Setup, records: &[(u8, &[u8])]) -> Vec<u8> {
    let mut v = vec![setup as u8];
    for (op, body) in records {
        v.push(*op);
        v.extend_from_slice(&(body.len() as u16).to_le_bytes());
        v.extend_from_slice(body);
    }
    v
}

/// An op byte: action, endpoint index, clock step index.
pub fn op(action: u8, endpoint: u8, step: u8) -> u8 {
    (action & 3) | ((endpoint & 1) << 2) | (step << 4)
}

/// The seed corpus: real protocol messages that reach deep paths of B.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    // An initiation from A, as a fresh B would get it.
    let mut w = World::new(Setup::Fresh);
    let mut out = Vec::new();
    w.a.send(&ipv4(A_IP, B_IP, b"x"), w.now, &mut out);
    let initiation = datagram_to(&out, B_EP).expect("A initiates");

    // A's response to the initiation B sent during setup.
    let w = World::new(Setup::Initiated);
    let response = w.withheld[0].clone();

    // A cookie reply to that same initiation, from A under load.
    let mut loaded = World::new(Setup::Fresh).a;
    loaded.set_under_load(true);
    let mut out = Vec::new();
    loaded.receive(w.b_initiation.as_ref().unwrap(), B_EP, w.now, &mut out);
    let cookie_reply = datagram_to(&out, B_EP).expect("A replies with a cookie");

    // A transport message on the established session.
    let mut w = World::new(Setup::Established);
    let mut out = Vec::new();
    w.a.send(&ipv4(A_IP, B_IP, b"seed"), w.now, &mut out);
    let transport = datagram_to(&out, B_EP).expect("A sends on its session");

    let mut bad_response = response.clone();
    bad_response[50] ^= 1;
    let mut low_order_initiation = initiation.clone();
    low_order_initiation[8..40].fill(0);

    vec![
        (
            "seed-initiation",
            encode(Setup::Fresh, &[(op(0, 0, 0), &initiation)]),
        ),
        (
            "seed-response",
            encode(Setup::Initiated, &[(op(0, 0, 0), &response)]),
        ),
        (
            "seed-cookie-reply",
            encode(Setup::Initiated, &[(op(0, 0, 0), &cookie_reply)]),
        ),
        (
            "seed-transport",
            encode(Setup::Established, &[(op(0, 0, 0), &transport)]),
        ),
        (
            // Data both ways, a replay, a keepalive, rekey and expiry by the clock.
            "seed-script",
            encode(
                Setup::Established,
                &[
                    (op(1, 0, 1), &ipv4(A_IP, B_IP, b"a to b")),
                    (op(2, 0, 1), &ipv4(B_IP, A_IP, b"b to a")),
                    (op(0, 0, 0), &transport),
                    (op(3, 0, 8), &[]),
                    (op(1, 0, 11), &ipv4(A_IP, B_IP, b"rekey")),
                    (op(3, 0, 12), &[]),
                    (op(3, 0, 13), &[]),
                ],
            ),
        ),
        (
            // Under load: A's initiation gets a cookie reply, and the retry gets through.
            "seed-under-load",
            encode(
                Setup::UnderLoad,
                &[
                    (op(1, 0, 11), &ipv4(A_IP, B_IP, b"rekey")),
                    (op(3, 0, 7), &[]),
                ],
            ),
        ),
        (
            // Handshake messages that pass mac1 but not the Noise checks: a
            // response with a corrupted AEAD, an initiation with a zero
            // (low-order) ephemeral.
            "seed-fixed-mac1",
            encode(
                Setup::Initiated,
                &[
                    (op(0, 0, 0) | FIX_MAC1, &bad_response),
                    (op(0, 0, 0) | FIX_MAC1, &low_order_initiation),
                ],
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn seed(name: &str) -> Vec<u8> {
        seeds().into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn receiving_in_place_does_exactly_what_receive_does() {
        for (name, data) in seeds() {
            let mut other = data.clone();
            other[0] ^= 4;
            let (a, b) = (run(&data), run(&other));
            assert_eq!(a, b, "{name}");
        }
    }

    #[test]
    fn seeds_reach_the_paths_they_are_for() {
        let s = run(&seed("seed-initiation"));
        assert_eq!(s.drops_at_b, vec![], "{s:?}");
        assert_eq!(s.datagrams_from_b, vec![92], "B responds");

        let s = run(&seed("seed-response"));
        assert_eq!(s.drops_at_b, vec![], "{s:?}");
        assert!(
            s.datagrams_from_b.contains(&(32 + 32)),
            "B sends its staged packet"
        );

        let s = run(&seed("seed-cookie-reply"));
        assert_eq!(s.drops_at_b, vec![], "the cookie reply opens: {s:?}");

        let s = run(&seed("seed-transport"));
        assert_eq!((s.packets_at_b, s.drops_at_b.len()), (1, 0), "{s:?}");

        let s = run(&seed("seed-script"));
        assert_eq!(s.packets_at_b, 2, "{s:?}");
        assert!(
            s.datagrams_from_b.contains(&92),
            "B answers the rekey: {s:?}"
        );
        assert!(s.drops_at_b.contains(&DropReason::Replay), "{s:?}");

        let s = run(&seed("seed-fixed-mac1"));
        assert_eq!(
            s.drops_at_b,
            vec![DropReason::DecryptFailed, DropReason::DecryptFailed],
            "{s:?}"
        );

        let s = run(&seed("seed-under-load"));
        assert!(s.drops_at_b.contains(&DropReason::CookieRequired), "{s:?}");
        assert!(
            s.packets_at_b >= 1,
            "the retry with mac2 gets through: {s:?}"
        );
    }

    /// The committed corpus is what `seeds()` makes; `TRELLIS_WRITE_SEEDS=1`
    /// rewrites it.
    #[test]
    fn committed_seed_corpus_is_current() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/receive");
        let write = std::env::var_os("TRELLIS_WRITE_SEEDS").is_some();
        for (name, bytes) in seeds() {
            let path = dir.join(name);
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else {
                let on_disk = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("{}: {e} (TRELLIS_WRITE_SEEDS=1)", path.display()));
                assert!(
                    on_disk == bytes,
                    "{name} is stale: rerun with TRELLIS_WRITE_SEEDS=1"
                );
            }
        }
    }

    #[test]
    fn odd_inputs_run() {
        for input in [
            &[][..],
            &[0],
            &[2, 0],
            &[2, 0, 5],
            &[3, 0xf3, 0xff, 0xff, 1, 2, 3],
        ] {
            run(input);
        }
    }
}
