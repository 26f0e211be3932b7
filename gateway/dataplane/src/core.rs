//! The data plane's hot path, free of Node and of file descriptors so that
//! tests drive it directly: batches of IP packets from the TUN device are
//! encrypted in place and paired with the UDP address of each peer's direct
//! path; batches of datagrams from the UDP socket are decrypted in place,
//! filtered, and left where they lie for the TUN write. Everything else goes
//! up to JS: datagrams for peers without a direct path (the relay, WebRTC)
//! and answers to the engine's own pings on the next engine call, and
//! datagrams that are not WireGuard from a proven path (disco, STUN,
//! strangers) to the UDP socket's reader. Queues up are bounded; every drop
//! is counted by reason.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use trellis_wasm::bindings::{KIND_DATAGRAM, KIND_PACKET};
use trellis_wasm::device::{Output, SEND_HEADROOM, SEND_TAILROOM};
use trellis_wasm::engine::{Engine, EngineOutput};

/// Packets per batch (one TUN wake-up, one `recvmmsg`, one `sendmmsg`).
pub const BATCH: usize = 64;
/// The largest IP packet a TUN read or a datagram can carry.
pub const MAX_PACKET: usize = 65535;
/// Bytes per batch slot: headroom for the transport header, the packet, padding and tag.
pub const SLOT: usize = SEND_HEADROOM + MAX_PACKET + SEND_TAILROOM;
/// Bytes of records waiting for the next engine call before datagrams are dropped.
pub const MAX_UP_BYTES: usize = 4 << 20;
/// Datagrams waiting for the UDP socket's reader before more are dropped.
pub const MAX_UP_UDP: usize = 4096;

/// Counters of the native path, by name (drops by reason).
#[derive(Default)]
pub struct Counters {
    /// Packets read from the TUN device.
    pub tun_rx: AtomicU64,
    /// Packets written to the TUN device.
    pub tun_tx: AtomicU64,
    /// Datagrams received on the UDP socket.
    pub udp_rx: AtomicU64,
    /// Datagrams sent natively to direct paths.
    pub udp_tx: AtomicU64,
    /// Drop: the queue up to JS was full.
    pub up_queue_full: AtomicU64,
    /// Drop: the kernel refused a datagram (unreachable, buffer full).
    pub udp_send_refused: AtomicU64,
    /// Drop: the TUN device refused a packet (queue full, bad header).
    pub tun_write_refused: AtomicU64,
    /// Drop: a datagram larger than the receive slot.
    pub udp_truncated: AtomicU64,
    /// Drop: a packet from the TUN device that could not be cut (malformed, unsupported GSO).
    pub offload_refused: AtomicU64,
}

impl Counters {
    /// The drop counters, by reason (for the engine's stats).
    pub fn drops(&self) -> [(&'static str, u64); 5] {
        [
            (
                "native_up_queue_full",
                self.up_queue_full.load(Ordering::Relaxed),
            ),
            (
                "native_udp_send_refused",
                self.udp_send_refused.load(Ordering::Relaxed),
            ),
            (
                "native_tun_write_refused",
                self.tun_write_refused.load(Ordering::Relaxed),
            ),
            (
                "native_udp_truncated",
                self.udp_truncated.load(Ordering::Relaxed),
            ),
            (
                "native_offload_refused",
                self.offload_refused.load(Ordering::Relaxed),
            ),
        ]
    }

    /// The traffic counters.
    pub fn traffic(&self) -> [(&'static str, u64); 4] {
        [
            ("tun_rx", self.tun_rx.load(Ordering::Relaxed)),
            ("tun_tx", self.tun_tx.load(Ordering::Relaxed)),
            ("udp_rx", self.udp_rx.load(Ordering::Relaxed)),
            ("udp_tx", self.udp_tx.load(Ordering::Relaxed)),
        ]
    }
}

/// Which endpoint handles have a direct UDP path, and where (decided by JS's disco).
#[derive(Default)]
struct Paths {
    by_handle: HashMap<u32, SocketAddr>,
    by_addr: HashMap<SocketAddr, u32>,
}

#[derive(Default)]
struct Up {
    /// Records (`wasm/ts/engine.ts`'s format) for the next engine call.
    records: Vec<u8>,
    /// Datagrams for the UDP socket's reader.
    udp: Vec<(SocketAddr, Vec<u8>)>,
}

/// The engine and the state the I/O threads and JS share.
pub struct Core {
    engine: Mutex<Engine>,
    paths: RwLock<Paths>,
    up: Mutex<Up>,
    active: Mutex<HashSet<u32>>,
    notify: Box<dyn Fn() + Send + Sync>,
    notified: AtomicBool,
    /// ICMP identifier of the engine's own echo requests (above u16: none).
    echo_ident: AtomicU32,
    /// The native path's counters.
    pub counters: Counters,
}

/// A lock that a panicked holder left is still usable: the state under it is
/// the engine's, which never panics half-way by design.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a datagram is a WireGuard message (types 1–4, reserved bytes zero).
pub fn is_wireguard(d: &[u8]) -> bool {
    d.len() >= 4 && (1..=4).contains(&d[0]) && d[1..4] == [0, 0, 0]
}

fn push_record(buf: &mut Vec<u8>, kind: u8, id: u32, data: &[u8]) {
    buf.push(kind);
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
    buf.extend_from_slice(data);
}

/// The ICMP echo reply identifier of an IP packet, if it is one.
fn echo_reply_ident(p: &[u8]) -> Option<u16> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            (p.len() >= ihl + 8 && p[9] == 1 && p[ihl] == 0)
                .then(|| u16::from_be_bytes([p[ihl + 4], p[ihl + 5]]))
        }
        6 => (p.len() >= 48 && p[6] == 58 && p[40] == 129)
            .then(|| u16::from_be_bytes([p[44], p[45]])),
        _ => None,
    }
}

/// Preallocated buffers for one direction's batches.
pub struct Batch {
    /// One slot per packet or datagram.
    pub bufs: Vec<Vec<u8>>,
    /// Tun→UDP: each packet's length (at `SEND_HEADROOM`). UDP→tun: each datagram's length and source.
    pub lens: Vec<usize>,
    /// UDP→tun: each datagram received (where it lies, who sent it).
    pub rx: Vec<crate::io::Rx>,
    /// How many slots hold something.
    pub n: usize,
    /// Tun→UDP: sealed messages to send natively (slot, length, address).
    pub sends: Vec<(usize, usize, SocketAddr)>,
    /// UDP→tun: admitted packets to write to the TUN device (slot, range).
    pub deliver: Vec<(usize, Range<usize>)>,
    /// Datagrams the slow path made for direct paths (handshakes, keepalives).
    pub extra_sends: Vec<(Vec<u8>, SocketAddr)>,
    /// Packets the slow path made for the host.
    pub extra_tun: Vec<Vec<u8>>,
    scratch: Vec<Output>,
    outs: Vec<EngineOutput>,
}

impl Batch {
    /// A batch of `n` slots of `slot` bytes, allocated once.
    pub fn new(n: usize, slot: usize) -> Batch {
        Batch {
            bufs: (0..n).map(|_| vec![0u8; slot]).collect(),
            lens: vec![0; n],
            rx: Vec::with_capacity(n),
            n: 0,
            sends: Vec::with_capacity(n),
            deliver: Vec::with_capacity(n),
            extra_sends: Vec::new(),
            extra_tun: Vec::new(),
            scratch: Vec::new(),
            outs: Vec::new(),
        }
    }

    fn reset_out(&mut self) {
        self.sends.clear();
        self.deliver.clear();
        self.extra_sends.clear();
        self.extra_tun.clear();
    }
}

impl Core {
    /// A core around an engine; `notify` is called (from any thread) when
    /// something waits for JS and JS has not been told yet.
    pub fn new(engine: Engine, notify: Box<dyn Fn() + Send + Sync>) -> Core {
        Core {
            engine: Mutex::new(engine),
            paths: RwLock::default(),
            up: Mutex::default(),
            active: Mutex::default(),
            notify,
            notified: AtomicBool::new(false),
            echo_ident: AtomicU32::new(u32::MAX),
            counters: Counters::default(),
        }
    }

    /// The engine, for JS's calls (peers, filter, timers, the relay's datagrams).
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        lock(&self.engine)
    }

    /// The direct UDP path of an endpoint handle (None: it has none; traffic goes up to JS).
    pub fn set_direct(&self, handle: u32, addr: Option<SocketAddr>) {
        let mut p = self.paths.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = p.by_handle.remove(&handle) {
            p.by_addr.remove(&old);
        }
        if let Some(a) = addr {
            if let Some(other) = p.by_addr.insert(a, handle) {
                p.by_handle.remove(&other);
            }
            p.by_handle.insert(handle, a);
        }
    }

    /// Answers to echo requests with this identifier go to JS, not to the host.
    pub fn set_echo_ident(&self, ident: Option<u16>) {
        self.echo_ident
            .store(ident.map_or(u32::MAX, u32::from), Ordering::Relaxed);
    }

    /// Handles that carried traffic natively since the last call.
    pub fn take_active(&self) -> Vec<u32> {
        lock(&self.active).drain().collect()
    }

    /// Records waiting for the next engine call (and JS may be told again).
    pub fn take_records(&self) -> Vec<u8> {
        self.notified.store(false, Ordering::SeqCst);
        std::mem::take(&mut lock(&self.up).records)
    }

    /// Datagrams waiting for the UDP socket's reader (and JS may be told again).
    pub fn take_udp(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.notified.store(false, Ordering::SeqCst);
        std::mem::take(&mut lock(&self.up).udp)
    }

    fn wake(&self) {
        if !self.notified.swap(true, Ordering::SeqCst) {
            (self.notify)();
        }
    }

    /// Tell JS now, whatever it was told before (an I/O thread stopped).
    pub fn alert(&self) {
        self.notified.store(true, Ordering::SeqCst);
        (self.notify)();
    }

    fn up_record(&self, kind: u8, id: u32, data: &[u8]) {
        {
            let mut up = lock(&self.up);
            if up.records.len() + data.len() > MAX_UP_BYTES {
                self.counters.up_queue_full.fetch_add(1, Ordering::Relaxed);
                return;
            }
            push_record(&mut up.records, kind, id, data);
        }
        self.wake();
    }

    fn up_udp(&self, from: SocketAddr, data: &[u8]) {
        {
            let mut up = lock(&self.up);
            if up.udp.len() >= MAX_UP_UDP {
                self.counters.up_queue_full.fetch_add(1, Ordering::Relaxed);
                return;
            }
            up.udp.push((from, data.to_vec()));
        }
        self.wake();
    }

    /// Where the slow path's outputs go: direct datagrams and host packets
    /// into the batch; the rest up to JS. Drops are counted by the engine.
    fn route_outputs(&self, paths: &Paths, b: &mut Batch) {
        for o in b.outs.drain(..) {
            match o {
                EngineOutput::Wire(Output::Datagram { endpoint, data }) => {
                    match paths.by_handle.get(&endpoint) {
                        Some(a) => b.extra_sends.push((data, *a)),
                        None => self.up_record(KIND_DATAGRAM, endpoint, &data),
                    }
                }
                EngineOutput::Wire(Output::Packet { peer, data }) => {
                    if self.is_own_echo_reply(&data) {
                        self.up_record(KIND_PACKET, peer, &data);
                    } else {
                        b.extra_tun.push(data);
                    }
                }
                _ => {}
            }
        }
    }

    fn is_own_echo_reply(&self, p: &[u8]) -> bool {
        let want = self.echo_ident.load(Ordering::Relaxed);
        want <= 0xffff && echo_reply_ident(p) == Some(want as u16)
    }

    /// Encrypt the batch's packets (`bufs[i][SEND_HEADROOM..][..lens[i]]`)
    /// in place: `sends` gets those for direct paths, the rest go up to JS.
    pub fn encrypt(&self, b: &mut Batch, now: u64) {
        b.reset_out();
        let paths = self.paths.read().unwrap_or_else(|e| e.into_inner());
        let mut active: Option<u32> = None;
        {
            let mut eng = lock(&self.engine);
            for i in 0..b.n {
                let sealed =
                    eng.send_in_place(&mut b.bufs[i], b.lens[i], now, &mut b.scratch, &mut b.outs);
                if let Some((ep, n)) = sealed {
                    match paths.by_handle.get(&ep) {
                        Some(a) => {
                            b.sends.push((i, n, *a));
                            if active != Some(ep) {
                                active = Some(ep);
                                lock(&self.active).insert(ep);
                            }
                        }
                        None => self.up_record(KIND_DATAGRAM, ep, &b.bufs[i][..n]),
                    }
                }
                if !b.outs.is_empty() {
                    self.route_outputs(&paths, b);
                }
            }
        }
        self.counters
            .tun_rx
            .fetch_add(b.n as u64, Ordering::Relaxed);
    }

    /// Decrypt the batch's datagrams (`rx`: each one's buffer, offset,
    /// length and source) in place: those from a direct path that are
    /// WireGuard are opened and filtered, `deliver` gets what the host should
    /// have (ranges in their buffers); the rest go up.
    pub fn decrypt(&self, b: &mut Batch, now: u64) {
        b.reset_out();
        let paths = self.paths.read().unwrap_or_else(|e| e.into_inner());
        let mut active: Option<u32> = None;
        {
            let mut eng = lock(&self.engine);
            for k in 0..b.rx.len() {
                let rx = b.rx[k];
                if rx.len == 0 {
                    self.counters.udp_truncated.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let d = &mut b.bufs[rx.buf][rx.off..rx.off + rx.len];
                let handle = paths.by_addr.get(&rx.from).copied();
                let Some(h) = handle.filter(|_| is_wireguard(d)) else {
                    self.up_udp(rx.from, d);
                    continue;
                };
                if active != Some(h) {
                    active = Some(h);
                    lock(&self.active).insert(h);
                }
                if let Some(r) = eng.receive_in_place(d, h, now, &mut b.scratch, &mut b.outs) {
                    if self.is_own_echo_reply(&d[r.clone()]) {
                        // The engine reads a packet record's peer id nowhere; 0 says "native".
                        self.up_record(KIND_PACKET, 0, &d[r]);
                    } else {
                        b.deliver.push((rx.buf, rx.off + r.start..rx.off + r.end));
                    }
                }
                if !b.outs.is_empty() {
                    self.route_outputs(&paths, b);
                }
            }
        }
        self.counters
            .udp_rx
            .fetch_add(b.rx.len() as u64, Ordering::Relaxed);
    }

    /// Datagrams that JS gives the socket (disco, STUN, relay-chosen sends) are sent as they are;
    /// this counts them with the native ones.
    pub fn note_sent(&self, n: usize, refused: usize) {
        self.counters
            .udp_tx
            .fetch_add((n - refused) as u64, Ordering::Relaxed);
        self.counters
            .udp_send_refused
            .fetch_add(refused as u64, Ordering::Relaxed);
    }

    /// Count a packet from the device that could not be cut.
    pub fn note_offload_drop(&self, _why: crate::offload::SegmentError) {
        self.counters
            .offload_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Count TUN writes.
    pub fn note_tun(&self, written: usize, refused: usize) {
        self.counters
            .tun_tx
            .fetch_add(written as u64, Ordering::Relaxed);
        self.counters
            .tun_write_refused
            .fetch_add(refused as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
