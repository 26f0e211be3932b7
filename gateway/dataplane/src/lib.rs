//! Trellis's native gateway data plane: the WireGuard core of `wasm/` (the
//! same sans-IO crate the browser runs as WebAssembly) built for the host
//! and driven by two threads that own the TUN device and the UDP socket.
//!
//! - tun → udp: read up to `BATCH` packets per wake-up into preallocated
//!   slots, encrypt them in place, `sendmmsg` those whose peer has a direct
//!   UDP path.
//! - udp → tun: `recvmmsg` up to `BATCH` datagrams, decrypt in place those
//!   that are WireGuard from a peer's direct path, filter, write to TUN.
//!
//! JS keeps the control: peers, keys, the filter and which UDP address each
//! peer's direct path uses (the disco code) arrive through the engine calls
//! and `set_direct`; what the hot path cannot finish (datagrams for the
//! relay or WebRTC, disco and STUN, answers to the engine's pings) goes up
//! in batches (`core`). The Node face, under the `node` feature, is shaped as
//! the WASM engine's binding (`wasm/ts/engine.ts`'s `WgEngineBinding`), so
//! the gateway's engine drives either with one code path.

pub mod core;
pub mod io;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::{Batch, Core, BATCH, SLOT};
use trellis_wasm::device::SEND_HEADROOM;

/// Milliseconds on the wall clock, as JS's `Date.now()` (the engine's timers compare both).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The I/O threads and the descriptors they own.
pub struct Threads {
    stop: OwnedFd,
    handles: Vec<JoinHandle<()>>,
    /// Why a thread stopped on its own (an I/O error), if one did.
    pub error: Arc<Mutex<Option<String>>>,
}

impl Threads {
    /// Start the two threads on these descriptors.
    pub fn start(
        core: Arc<Core>,
        tun: Arc<OwnedFd>,
        udp: Arc<OwnedFd>,
    ) -> Result<Threads, io::IoError> {
        let stop = io::eventfd()?;
        let error = Arc::new(Mutex::new(None));
        let mut handles = Vec::new();
        for dir in [Dir::TunToUdp, Dir::UdpToTun] {
            let (core, tun, udp, error) = (core.clone(), tun.clone(), udp.clone(), error.clone());
            let stop_fd = stop.as_raw_fd();
            let name = match dir {
                Dir::TunToUdp => "trellis-tun-rx",
                Dir::UdpToTun => "trellis-udp-rx",
            };
            let h = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let r = match dir {
                        Dir::TunToUdp => {
                            tun_to_udp(&core, tun.as_raw_fd(), udp.as_raw_fd(), stop_fd)
                        }
                        Dir::UdpToTun => {
                            udp_to_tun(&core, tun.as_raw_fd(), udp.as_raw_fd(), stop_fd)
                        }
                    };
                    if let Err(e) = r {
                        *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    }
                })
                .map_err(|e| io::IoError {
                    what: format!("spawn {name}"),
                    err: e,
                })?;
            handles.push(h);
        }
        Ok(Threads {
            stop,
            handles,
            error,
        })
    }

    /// Stop both threads and wait for them.
    pub fn stop(&mut self) {
        io::signal(self.stop.as_raw_fd());
        for h in self.handles.drain(..) {
            let _joined = h.join();
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone, Copy)]
enum Dir {
    TunToUdp,
    UdpToTun,
}

fn send_all(core: &Core, msgs: &mut io::MsgBatch, udp: RawFd, b: &Batch) {
    let mut items: Vec<(&[u8], std::net::SocketAddrV4)> =
        Vec::with_capacity(b.sends.len() + b.extra_sends.len());
    for (i, n, a) in &b.sends {
        items.push((&b.bufs[*i][..*n], *a));
    }
    for (d, a) in &b.extra_sends {
        items.push((d, *a));
    }
    if items.is_empty() {
        return;
    }
    let refused = msgs.send(udp, &items);
    core.note_sent(items.len(), refused);
}

fn write_tun(
    core: &Core,
    tun: RawFd,
    packets: impl Iterator<Item = impl AsRef<[u8]>>,
) -> Result<(), io::IoError> {
    let (mut ok, mut refused) = (0, 0);
    for p in packets {
        if io::write(tun, p.as_ref())? {
            ok += 1;
        } else {
            refused += 1;
        }
    }
    core.note_tun(ok, refused);
    Ok(())
}

fn tun_to_udp(core: &Core, tun: RawFd, udp: RawFd, stop: RawFd) -> Result<(), io::IoError> {
    let mut b = Batch::new(BATCH, SLOT);
    let mut msgs = io::MsgBatch::new(BATCH);
    loop {
        if io::wait_readable(tun, stop)? {
            return Ok(());
        }
        loop {
            b.n = 0;
            while b.n < BATCH {
                let slot = &mut b.bufs[b.n][SEND_HEADROOM..SEND_HEADROOM + core::MAX_PACKET];
                match io::read(tun, slot)? {
                    Some(n) if n > 0 => {
                        b.lens[b.n] = n;
                        b.n += 1;
                    }
                    _ => break,
                }
            }
            if b.n == 0 {
                break;
            }
            core.encrypt(&mut b, now_ms());
            send_all(core, &mut msgs, udp, &b);
            write_tun(core, tun, b.extra_tun.iter())?;
            if b.n < BATCH {
                break;
            }
        }
    }
}

fn udp_to_tun(core: &Core, tun: RawFd, udp: RawFd, stop: RawFd) -> Result<(), io::IoError> {
    let mut b = Batch::new(BATCH, SLOT);
    let mut msgs = io::MsgBatch::new(BATCH);
    let mut sender = io::MsgBatch::new(BATCH);
    loop {
        if io::wait_readable(udp, stop)? {
            return Ok(());
        }
        loop {
            let mut from = std::mem::take(&mut b.from);
            let n = msgs.recv(udp, &mut b.bufs, &mut from)?;
            b.from = from;
            if n == 0 {
                break;
            }
            core.decrypt(&mut b, now_ms());
            let delivered = b.deliver.iter().map(|(i, r)| &b.bufs[*i][r.clone()]);
            write_tun(core, tun, delivered)?;
            write_tun(core, tun, b.extra_tun.iter())?;
            send_all(core, &mut sender, udp, &b);
            if n < BATCH {
                break;
            }
        }
    }
}

/// How many datagrams JS's own sends (`send_udp`) carried.
pub fn count_js_send(core: &Core, ok: bool) {
    core.note_sent(1, usize::from(!ok));
}

/// The Node-API face (built into the addon; left out of `cargo test`, which
/// links no Node).
#[cfg(feature = "node")]
mod node;
