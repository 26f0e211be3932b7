//! `NativeDataplane` for Node: the engine calls of `wasm/src/bindings.rs`'s
//! `WgEngine` under the same (snake_case) names and with the same output
//! records, plus the I/O the WASM engine leaves to JS: the TUN device, the
//! UDP socket, and which peers have a direct path.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use napi::bindgen_prelude::{Uint32Array, Uint8Array};
use napi::threadsafe_function::{ErrorStrategy, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Error, JsFunction, Result, Status};
use napi_derive::napi;

use trellis_wasm::allowedips::Prefix;
use trellis_wasm::bindings::{encode_engine, peers_json};
use trellis_wasm::device::DROP_REASONS;
use trellis_wasm::engine::packet::Addr;
use trellis_wasm::engine::{Engine, ENGINE_DROPS};

use crate::core::Core;
use crate::{io, now_ms, Threads, TunWriter};

fn err(msg: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, msg.into())
}

fn io_err(e: io::IoError) -> Error {
    Error::new(Status::GenericFailure, e.to_string())
}

fn key32(b: &[u8], what: &str) -> Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| err(format!("{what} must be 32 bytes, not {}", b.len())))
}

fn ms(now: f64) -> u64 {
    if now.is_finite() && now > 0.0 {
        now as u64
    } else {
        0
    }
}

fn slices<'a>(buf: &'a [u8], lens: &[u32]) -> Result<Vec<&'a [u8]>> {
    let mut out = Vec::with_capacity(lens.len());
    let mut off = 0usize;
    for &len in lens {
        let end = off
            .checked_add(len as usize)
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| err("lengths exceed the buffer"))?;
        out.push(&buf[off..end]);
        off = end;
    }
    Ok(out)
}

/// The native data plane: engine, TUN device, UDP socket, two I/O threads.
#[napi]
pub struct NativeDataplane {
    core: Arc<Core>,
    tun: Option<Arc<OwnedFd>>,
    udp: Option<Arc<OwnedFd>>,
    threads: Option<Threads>,
    tun_name: String,
    port: u16,
    vnet: bool,
    tso: bool,
    wake: Option<ThreadsafeFunction<(), ErrorStrategy::Fatal>>,
}

#[napi]
impl NativeDataplane {
    /// Open TUN `tun_name` (with `offload`: VNET_HDR and TSO, see `offload`)
    /// and UDP `udp_port` (0: any), make the engine for
    /// this key, and start the threads. `on_wake` is called (on the JS
    /// thread) when datagrams or packets wait for JS: read `take_udp()` and
    /// make an engine call (its output carries the rest).
    #[napi(constructor)]
    pub fn new(
        env: Env,
        private_key: Uint8Array,
        seed: Uint8Array,
        tun_name: String,
        udp_port: u32,
        offload: bool,
        on_wake: JsFunction,
    ) -> Result<Self> {
        let private_key = key32(&private_key, "private key")?;
        let seed = key32(&seed, "seed")?;
        let port = u16::try_from(udp_port).map_err(|_| err(format!("bad UDP port {udp_port}")))?;
        let mut wake: ThreadsafeFunction<(), ErrorStrategy::Fatal> =
            on_wake.create_threadsafe_function(0, |_ctx| Ok(Vec::<u32>::new()))?;
        // The daemon's own handles keep Node alive; this one must not.
        wake.unref(&env)?;
        let notify = wake.clone();
        let core = Arc::new(Core::new(
            Engine::new(private_key, seed, false, now_ms()),
            Box::new(move || {
                notify.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }),
        ));
        let t = io::open_tun(&tun_name, offload).map_err(io_err)?;
        let (name, vnet, tso) = (t.name, t.vnet, t.tso);
        let (udp, port) = io::bind_udp(port).map_err(io_err)?;
        let (tun, udp) = (Arc::new(t.fd), Arc::new(udp));
        let threads = Threads::start(core.clone(), tun.clone(), vnet, udp.clone(), offload)
            .map_err(io_err)?;
        Ok(NativeDataplane {
            core,
            tun: Some(tun),
            udp: Some(udp),
            threads: Some(threads),
            tun_name: name,
            port,
            vnet,
            tso,
            wake: Some(wake),
        })
    }

    /// The TUN interface's name.
    #[napi(getter, js_name = "tun_name")]
    pub fn tun_name(&self) -> String {
        self.tun_name.clone()
    }

    /// Whether the kernel hands the device TSO super-packets (cut here before encryption).
    #[napi(getter, js_name = "tso")]
    pub fn tso(&self) -> bool {
        self.tso
    }

    /// The bound UDP port.
    #[napi(getter, js_name = "port")]
    pub fn port(&self) -> u32 {
        u32::from(self.port)
    }

    /// Why an I/O thread stopped, if one did.
    #[napi(js_name = "io_error")]
    pub fn io_error(&self) -> Option<String> {
        self.threads
            .as_ref()
            .and_then(|t| t.error.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Our static public key.
    #[napi(js_name = "public_key")]
    pub fn public_key(&self) -> Uint8Array {
        Uint8Array::new(self.core.engine().wg.public_key().to_vec())
    }

    /// Add or update a peer; returns its id.
    #[napi(js_name = "upsert_peer")]
    pub fn upsert_peer(
        &self,
        public_key: Uint8Array,
        psk: Uint8Array,
        allowed_ips: String,
        endpoint: f64,
        persistent_keepalive: u32,
    ) -> Result<u32> {
        let public = key32(&public_key, "public key")?;
        let psk = if psk.is_empty() {
            None
        } else {
            Some(key32(&psk, "preshared key")?)
        };
        let mut prefixes = Vec::new();
        for s in allowed_ips
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            prefixes.push(Prefix::parse(s).ok_or_else(|| err(format!("bad allowed IP \"{s}\"")))?);
        }
        let endpoint =
            (endpoint >= 0.0 && endpoint <= f64::from(u32::MAX)).then_some(endpoint as u32);
        Ok(self.core.engine().wg.upsert_peer(
            public,
            psk,
            &prefixes,
            endpoint,
            persistent_keepalive,
        ))
    }

    /// Remove a peer; false if unknown.
    #[napi(js_name = "remove_peer")]
    pub fn remove_peer(&self, public_key: Uint8Array) -> Result<bool> {
        let k = key32(&public_key, "public key")?;
        Ok(self.core.engine().wg.remove_peer(&k))
    }

    /// Replace the packet filter (a JSON array of `FilterRule`s).
    #[napi(js_name = "set_filter")]
    pub fn set_filter(&self, json: String) -> Result<()> {
        self.core.engine().set_filter(&json).map_err(err)
    }

    /// This node's addresses (checked; a host engine needs none).
    #[napi(js_name = "set_addresses")]
    pub fn set_addresses(&self, addrs: String) -> Result<()> {
        let mut out = Vec::new();
        for s in addrs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ip = s.split('/').next().unwrap_or(s);
            out.push(Addr::parse(ip).ok_or_else(|| err(format!("bad address \"{s}\"")))?);
        }
        self.core.engine().set_addresses(&out);
        Ok(())
    }

    fn with_up(&self, mut records: Vec<u8>) -> Uint8Array {
        records.extend_from_slice(&self.core.take_records());
        Uint8Array::new(records)
    }

    /// Datagrams from JS's paths (the relay, WebRTC, unproven UDP), each from `endpoints[i]`.
    #[napi(js_name = "receive_batch")]
    pub fn receive_batch(
        &self,
        datagrams: Uint8Array,
        lens: Uint32Array,
        endpoints: Uint32Array,
        now: f64,
    ) -> Result<Uint8Array> {
        if lens.len() != endpoints.len() {
            return Err(err("lens and endpoints differ in length"));
        }
        let items: Vec<(&[u8], u32)> = slices(&datagrams, &lens)?
            .into_iter()
            .zip(endpoints.iter().copied())
            .collect();
        let mut out = Vec::new();
        self.core.engine().receive(&items, ms(now), &mut out);
        Ok(self.with_up(encode_engine(out)))
    }

    /// IP packets from JS (the engine's own pings) to encrypt.
    #[napi(js_name = "send_batch")]
    pub fn send_batch(
        &self,
        packets: Uint8Array,
        lens: Uint32Array,
        now: f64,
    ) -> Result<Uint8Array> {
        let items = slices(&packets, &lens)?;
        let mut out = Vec::new();
        self.core.engine().send(&items, ms(now), &mut out);
        Ok(self.with_up(encode_engine(out)))
    }

    /// Timers; and whatever waits for JS.
    #[napi(js_name = "poll")]
    pub fn poll(&self, now: f64) -> Uint8Array {
        let mut out = Vec::new();
        self.core.engine().poll(ms(now), &mut out);
        self.with_up(encode_engine(out))
    }

    /// When to poll next, in the host's milliseconds.
    #[napi(js_name = "next_poll")]
    pub fn next_poll(&self, now: f64) -> f64 {
        self.core.engine().next_poll(ms(now)) as f64
    }

    /// Drop counters (the device's, the engine's, the native path's), peers, flows, as JSON.
    #[napi(js_name = "stats_json")]
    pub fn stats_json(&self) -> String {
        let eng = self.core.engine();
        let mut drops: Vec<String> = eng
            .drop_counts()
            .iter()
            .map(|(name, n)| format!("\"{name}\":{n}"))
            .collect();
        drops.extend(
            self.core
                .counters
                .drops()
                .iter()
                .map(|(name, n)| format!("\"{name}\":{n}")),
        );
        let traffic: Vec<String> = self
            .core
            .counters
            .traffic()
            .iter()
            .map(|(name, n)| format!("\"{name}\":{n}"))
            .collect();
        format!(
            "{{\"drops\":{{{}}},\"peers\":[{}],\"flows\":{},\"sockets\":0,\"native\":{{{}}}}}",
            drops.join(","),
            peers_json(&eng.wg),
            eng.filter.conntrack.len(),
            traffic.join(",")
        )
    }

    /// The name of a drop reason code.
    #[napi(js_name = "drop_reason_name")]
    pub fn drop_reason_name(code: u32) -> String {
        DROP_REASONS
            .iter()
            .find(|r| **r as u32 == code)
            .map(|r| r.as_str())
            .or_else(|| {
                ENGINE_DROPS
                    .iter()
                    .find(|r| **r as u32 == code)
                    .map(|r| r.as_str())
            })
            .unwrap_or("unknown")
            .to_string()
    }

    /// A peer's direct UDP path (by its endpoint handle), or none (empty address).
    #[napi(js_name = "set_direct")]
    pub fn set_direct(&self, handle: u32, address: String, port: u32) -> Result<()> {
        if address.is_empty() {
            self.core.set_direct(handle, None);
            return Ok(());
        }
        let ip: IpAddr = address.parse().map_err(|_| {
            err(format!(
                "a direct path needs an IP address, not \"{address}\""
            ))
        })?;
        let port = u16::try_from(port).map_err(|_| err(format!("bad UDP port {port}")))?;
        self.core.set_direct(handle, Some(unmapped(ip, port)));
        Ok(())
    }

    /// Endpoint handles that carried traffic natively since the last call.
    #[napi(js_name = "take_active")]
    pub fn take_active(&self) -> Vec<u32> {
        self.core.take_active()
    }

    /// Datagrams for the UDP socket's reader: records of address length
    /// (1 byte: 4 or 16), address, port (u16 BE), length (u32 LE), data.
    #[napi(js_name = "take_udp")]
    pub fn take_udp(&self) -> Uint8Array {
        let mut buf = Vec::new();
        for (from, d) in self.core.take_udp() {
            match from.ip() {
                IpAddr::V4(a) => {
                    buf.push(4);
                    buf.extend_from_slice(&a.octets());
                }
                IpAddr::V6(a) => {
                    buf.push(16);
                    buf.extend_from_slice(&a.octets());
                }
            }
            buf.extend_from_slice(&from.port().to_be_bytes());
            buf.extend_from_slice(&(d.len() as u32).to_le_bytes());
            buf.extend_from_slice(&d);
        }
        Uint8Array::new(buf)
    }

    /// Send a datagram from the node's socket (disco, STUN, WireGuard JS routed); false if refused.
    #[napi(js_name = "send_udp")]
    pub fn send_udp(&self, data: Uint8Array, address: String, port: u32) -> Result<bool> {
        let ip: IpAddr = address.parse().map_err(|_| {
            err(format!(
                "the UDP socket sends to IP addresses, not \"{address}\""
            ))
        })?;
        let port = u16::try_from(port).map_err(|_| err(format!("bad UDP port {port}")))?;
        let udp = self.udp.as_ref().ok_or_else(closed)?;
        let ok = io::send_to(udp.as_raw_fd(), &data, unmapped(ip, port));
        crate::count_js_send(&self.core, ok);
        Ok(ok)
    }

    /// Packets for the host from JS's engine calls, back to back.
    #[napi(js_name = "write_tun")]
    pub fn write_tun(&self, packets: Uint8Array, lens: Uint32Array) -> Result<u32> {
        let items = slices(&packets, &lens)?;
        let tun = self.tun.as_ref().ok_or_else(closed)?;
        let w = TunWriter::new(tun.as_raw_fd(), self.vnet);
        let mut scratch = Vec::new();
        let mut written = 0;
        for p in &items {
            if w.write(p, &mut scratch).map_err(io_err)? {
                written += 1;
            }
        }
        self.core.note_tun(written, items.len() - written);
        Ok(written as u32)
    }

    /// Echo replies with this identifier go to JS (the engine's own pings); above 0xffff: none.
    #[napi(js_name = "set_echo_ident")]
    pub fn set_echo_ident(&self, ident: u32) {
        self.core.set_echo_ident(u16::try_from(ident).ok());
    }

    /// No userspace stack on the native path.
    #[napi(js_name = "tcp_connect")]
    pub fn tcp_connect(&self, _addr: Uint8Array, _port: u32) -> Result<u32> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "tcp_listen")]
    pub fn tcp_listen(&self, _port: u32) -> Result<u32> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "tcp_send")]
    pub fn tcp_send(&self, _handle: u32, _data: Uint8Array) -> Result<u32> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "tcp_pause")]
    pub fn tcp_pause(&self, _handle: u32, _paused: bool) -> Result<()> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "tcp_close")]
    pub fn tcp_close(&self, _handle: u32) -> Result<()> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "tcp_abort")]
    pub fn tcp_abort(&self, _handle: u32) -> Result<()> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "udp_bind")]
    pub fn udp_bind(&self, _port: u32) -> Result<u32> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "udp_send")]
    pub fn udp_send(
        &self,
        _handle: u32,
        _addr: Uint8Array,
        _port: u32,
        _data: Uint8Array,
    ) -> Result<()> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "udp_close")]
    pub fn udp_close(&self, _handle: u32) -> Result<()> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "ping")]
    pub fn ping(&self, _addr: Uint8Array, _seq: u32, _payload: Uint8Array) -> Result<u32> {
        Err(no_stack())
    }

    /// No userspace stack on the native path: the kernel routes subnets (TUN mode).
    #[napi(js_name = "set_routes")]
    pub fn set_routes(&self, _prefixes: String) -> Result<()> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "tcp_dial_result")]
    pub fn tcp_dial_result(&self, _id: u32, _ok: bool, _now: f64) -> Result<u32> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "udp_forward_reply")]
    pub fn udp_forward_reply(
        &self,
        _from: Uint8Array,
        _from_port: u32,
        _to: Uint8Array,
        _to_port: u32,
        _data: Uint8Array,
    ) -> Result<()> {
        Err(no_stack())
    }
    /// No userspace stack on the native path.
    #[napi(js_name = "ping_forward_reply")]
    pub fn ping_forward_reply(
        &self,
        _from: Uint8Array,
        _to: Uint8Array,
        _ident: u32,
        _seq: u32,
        _data: Uint8Array,
    ) -> Result<()> {
        Err(no_stack())
    }

    /// Stop the threads and close the TUN device (its addresses and routes go with it) and the socket.
    #[napi(js_name = "free")]
    pub fn free(&mut self) {
        if let Some(mut t) = self.threads.take() {
            t.stop();
        }
        if let Some(w) = self.wake.take() {
            let _aborted = w.abort();
        }
        // The descriptors close with their last Arc (the threads' went with them).
        self.tun = None;
        self.udp = None;
    }
}

/// An endpoint as the data plane keys it: IPv4-mapped IPv6 as IPv4 (see `io`).
fn unmapped(ip: IpAddr, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
            None => SocketAddr::new(ip, port),
        },
        IpAddr::V4(_) => SocketAddr::new(ip, port),
    }
}

fn closed() -> Error {
    Error::new(Status::GenericFailure, "the native data plane is closed")
}

fn no_stack() -> Error {
    Error::new(
        Status::GenericFailure,
        "the native data plane has no userspace stack (TUN mode only)",
    )
}
