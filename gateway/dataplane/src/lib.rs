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
pub mod offload;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::{Batch, Core, BATCH, SLOT};
use crate::offload::{SegmentError, VnetHdr, VNET_HDR_LEN};
use std::ops::Range;
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
        vnet: bool,
        udp: Arc<OwnedFd>,
        udp_offload: bool,
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
                        Dir::TunToUdp => tun_to_udp(
                            &core,
                            TunWriter::new(tun.as_raw_fd(), vnet),
                            udp.as_raw_fd(),
                            udp_offload,
                            stop_fd,
                        ),
                        Dir::UdpToTun => udp_to_tun(
                            &core,
                            TunWriter::new(tun.as_raw_fd(), vnet),
                            udp.as_raw_fd(),
                            udp_offload,
                            stop_fd,
                        ),
                    };
                    if let Err(e) = r {
                        *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                        // JS reads io_error() on its next wake-up, which this is.
                        core.alert();
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
    let mut items: Vec<(&[u8], std::net::SocketAddr)> =
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

/// How packets are written to the TUN device: with a `virtio_net_hdr` in
/// front (VNET_HDR devices; all zero: no offload) or as they are.
#[derive(Clone, Copy)]
pub struct TunWriter {
    fd: RawFd,
    vnet: bool,
}

impl TunWriter {
    /// A writer for this device.
    pub fn new(fd: RawFd, vnet: bool) -> TunWriter {
        TunWriter { fd, vnet }
    }

    /// Write `buf[range]`, using the bytes before it for the header when
    /// there are enough (decrypted packets have the transport header there).
    pub fn write_in_place(
        &self,
        buf: &mut [u8],
        range: Range<usize>,
        scratch: &mut Vec<u8>,
    ) -> Result<bool, io::IoError> {
        if !self.vnet {
            return io::write(self.fd, &buf[range]);
        }
        if range.start >= VNET_HDR_LEN {
            let start = range.start - VNET_HDR_LEN;
            buf[start..range.start].fill(0);
            return io::write(self.fd, &buf[start..range.end]);
        }
        self.write(&buf[range], scratch)
    }

    /// Write a packet (copied behind a header on a VNET_HDR device).
    pub fn write(&self, p: &[u8], scratch: &mut Vec<u8>) -> Result<bool, io::IoError> {
        if !self.vnet {
            return io::write(self.fd, p);
        }
        scratch.clear();
        scratch.resize(VNET_HDR_LEN, 0);
        scratch.extend_from_slice(p);
        io::write(self.fd, scratch)
    }
}

fn write_extra(
    core: &Core,
    tun: TunWriter,
    b: &Batch,
    scratch: &mut Vec<u8>,
) -> Result<(), io::IoError> {
    let (mut ok, mut refused) = (0, 0);
    for p in &b.extra_tun {
        if tun.write(p, scratch)? {
            ok += 1;
        } else {
            refused += 1;
        }
    }
    core.note_tun(ok, refused);
    Ok(())
}

fn flush_tx(
    core: &Core,
    b: &mut Batch,
    msgs: &mut io::MsgBatch,
    udp: RawFd,
    tun: TunWriter,
    scratch: &mut Vec<u8>,
) -> Result<(), io::IoError> {
    if b.n == 0 {
        return Ok(());
    }
    core.encrypt(b, now_ms());
    send_all(core, msgs, udp, b);
    write_extra(core, tun, b, scratch)?;
    b.n = 0;
    Ok(())
}

fn tun_to_udp(
    core: &Core,
    tun: TunWriter,
    udp: RawFd,
    udp_offload: bool,
    stop: RawFd,
) -> Result<(), io::IoError> {
    let mut b = Batch::new(BATCH, SLOT);
    let mut msgs = io::MsgBatch::new(BATCH);
    // Runs of same-size datagrams to one peer leave in one UDP_SEGMENT send.
    msgs.gso = udp_offload;
    let mut raw = vec![0u8; VNET_HDR_LEN + core::MAX_PACKET];
    let mut scratch = Vec::new();
    loop {
        if io::wait_readable(tun.fd, stop)? {
            return Ok(());
        }
        b.n = 0;
        loop {
            if !tun.vnet {
                let slot = &mut b.bufs[b.n][SEND_HEADROOM..SEND_HEADROOM + core::MAX_PACKET];
                match io::read(tun.fd, slot)? {
                    Some(n) if n > 0 => {
                        b.lens[b.n] = n;
                        b.n += 1;
                    }
                    _ => break,
                }
            } else {
                let n = match io::read(tun.fd, &mut raw)? {
                    Some(n) if n > VNET_HDR_LEN => n,
                    Some(_) => continue,
                    None => break,
                };
                let h = VnetHdr::parse(&raw).expect("length checked");
                let pkt = &mut raw[VNET_HDR_LEN..n];
                let at = b.n;
                let mut cut =
                    offload::segment(&h, pkt, &mut b.bufs[at..], &mut b.lens[at..], SEND_HEADROOM);
                if cut == Err(SegmentError::NoRoom) && b.n > 0 {
                    flush_tx(core, &mut b, &mut msgs, udp, tun, &mut scratch)?;
                    cut = offload::segment(&h, pkt, &mut b.bufs, &mut b.lens, SEND_HEADROOM);
                }
                match cut {
                    Ok(k) => b.n += k,
                    Err(e) => core.note_offload_drop(e),
                }
            }
            if b.n == BATCH {
                flush_tx(core, &mut b, &mut msgs, udp, tun, &mut scratch)?;
            }
        }
        flush_tx(core, &mut b, &mut msgs, udp, tun, &mut scratch)?;
    }
}

fn udp_to_tun(
    core: &Core,
    tun: TunWriter,
    udp: RawFd,
    udp_offload: bool,
    stop: RawFd,
) -> Result<(), io::IoError> {
    let mut b = Batch::new(BATCH, SLOT);
    let mut msgs = io::MsgBatch::new(BATCH);
    let mut sender = io::MsgBatch::new(BATCH);
    sender.gso = udp_offload;
    let mut runs: Vec<Range<usize>> = Vec::with_capacity(BATCH);
    let mut glued: Vec<u8> = Vec::with_capacity(VNET_HDR_LEN + core::MAX_PACKET);
    // Datagrams of one flow arrive glued (UDP_GRO) and are split in place; an
    // older kernel without it hands them over one by one, which works as well.
    let _gro = udp_offload && io::enable_udp_gro(udp);
    let mut scratch = Vec::new();
    loop {
        if io::wait_readable(udp, stop)? {
            return Ok(());
        }
        loop {
            let mut rx = std::mem::take(&mut b.rx);
            let n = msgs.recv(udp, &mut b.bufs, &mut rx)?;
            b.rx = rx;
            if n == 0 {
                break;
            }
            core.decrypt(&mut b, now_ms());
            let (mut ok, mut refused) = (0, 0);
            if tun.vnet {
                // Runs of one TCP flow go to the device glued, as wireguard-go's GRO does.
                let (bufs, deliver) = (&b.bufs, &b.deliver);
                let next = |k: usize| &bufs[deliver[k].0][deliver[k].1.clone()];
                offload::runs(deliver.len(), next, &mut runs);
            } else {
                runs.clear();
                runs.extend((0..b.deliver.len()).map(|k| k..k + 1));
            }
            for run in runs.drain(..) {
                let wrote = if run.len() == 1 {
                    let (i, r) = b.deliver[run.start].clone();
                    tun.write_in_place(&mut b.bufs[i], r, &mut scratch)?
                } else {
                    let (bufs, deliver) = (&b.bufs, &b.deliver);
                    let next = |k: usize| &bufs[deliver[k].0][deliver[k].1.clone()];
                    offload::glue(run.clone(), next, &mut glued);
                    io::write(tun.fd, &glued)?
                };
                if wrote {
                    ok += run.len();
                } else {
                    refused += run.len();
                }
            }
            core.note_tun(ok, refused);
            write_extra(core, tun, &b, &mut scratch)?;
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
