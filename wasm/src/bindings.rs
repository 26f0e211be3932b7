//! The JavaScript face of the device. Results come back as one byte buffer of
//! records, so a call (and a batch of many packets) crosses the JS/WASM
//! boundary once: each record is `kind: u8, id: u32 LE, len: u32 LE, bytes`,
//! where kind 1 is a datagram for endpoint `id`, 2 an IP packet from peer `id`,
//! 3 a drop with reason code `id` (no bytes).

use wasm_bindgen::prelude::*;

use crate::allowedips::Prefix;
use crate::device::{Device, Output, DROP_REASONS};
use crate::engine::packet::Addr;
use crate::engine::stack::{Event, SocketError};
use crate::engine::{Engine, EngineOutput, ENGINE_DROPS};

/// Record kinds in a result buffer.
pub const KIND_DATAGRAM: u8 = 1;
/// An IP packet for the host's stack.
pub const KIND_PACKET: u8 = 2;
/// A drop, with its reason code.
pub const KIND_DROP: u8 = 3;

fn encode(outputs: &[Output]) -> Vec<u8> {
    let size: usize = outputs
        .iter()
        .map(|o| {
            9 + match o {
                Output::Datagram { data, .. } | Output::Packet { data, .. } => data.len(),
                Output::Drop(_) => 0,
            }
        })
        .sum();
    let mut buf = Vec::with_capacity(size);
    for o in outputs {
        let (kind, id, data): (u8, u32, &[u8]) = match o {
            Output::Datagram { endpoint, data } => (KIND_DATAGRAM, *endpoint, data),
            Output::Packet { peer, data } => (KIND_PACKET, *peer, data),
            Output::Drop(r) => (KIND_DROP, *r as u32, &[]),
        };
        buf.push(kind);
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
        buf.extend_from_slice(data);
    }
    buf
}

fn key32(b: &[u8], what: &str) -> Result<[u8; 32], JsError> {
    b.try_into()
        .map_err(|_| JsError::new(&format!("{what} must be 32 bytes")))
}

/// Host time to milliseconds. Anything beyond the year 285,000 is clamped,
/// so timer sums stay far from u64 overflow.
fn ms(now: f64) -> u64 {
    const MAX_MS: f64 = 9.0e15; // the largest integer a JS number holds exactly
    if now.is_finite() && now > 0.0 {
        now.min(MAX_MS) as u64
    } else {
        0
    }
}

/// Per-peer counters as a JSON array's elements (the `peers` of `stats_json`).
pub fn peers_json(dev: &Device) -> String {
    let mut ids: Vec<u32> = dev.peers.keys().copied().collect();
    ids.sort_unstable();
    ids.iter()
        .map(|id| {
            let p = &dev.peers[id];
            let key: String = p.public.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{{\"id\":{},\"public_key\":\"{}\",\"endpoint\":{},\"rx_bytes\":{},\"tx_bytes\":{},\"handshakes\":{},\"last_handshake_ms\":{},\"has_session\":{}}}",
                p.id,
                key,
                p.endpoint.map_or("null".to_string(), |e| e.to_string()),
                p.stats.rx_bytes,
                p.stats.tx_bytes,
                p.stats.handshakes,
                p.stats.last_handshake,
                p.keypairs.current.is_some()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A WireGuard device for JS hosts.
#[wasm_bindgen]
pub struct WgDevice {
    dev: Device,
}

#[wasm_bindgen]
impl WgDevice {
    /// A device with a static private key and 32 bytes of seed from the host's CSPRNG.
    #[wasm_bindgen(constructor)]
    pub fn new(private_key: &[u8], seed: &[u8]) -> Result<WgDevice, JsError> {
        Ok(WgDevice {
            dev: Device::new(key32(private_key, "private key")?, key32(seed, "seed")?),
        })
    }

    /// Our static public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.dev.public_key().to_vec()
    }

    /// Add or update a peer. `psk` empty for none; `allowed_ips` comma-separated
    /// CIDRs; `endpoint` negative for none. Returns the peer id.
    pub fn upsert_peer(
        &mut self,
        public_key: &[u8],
        psk: &[u8],
        allowed_ips: &str,
        endpoint: f64,
        persistent_keepalive: u32,
    ) -> Result<u32, JsError> {
        let public = key32(public_key, "public key")?;
        let psk = if psk.is_empty() {
            None
        } else {
            Some(key32(psk, "preshared key")?)
        };
        let mut prefixes = Vec::new();
        for s in allowed_ips
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            prefixes.push(
                Prefix::parse(s).ok_or_else(|| JsError::new(&format!("bad allowed IP \"{s}\"")))?,
            );
        }
        let endpoint =
            (endpoint >= 0.0 && endpoint <= f64::from(u32::MAX)).then_some(endpoint as u32);
        Ok(self
            .dev
            .upsert_peer(public, psk, &prefixes, endpoint, persistent_keepalive))
    }

    /// Remove a peer; false if unknown.
    pub fn remove_peer(&mut self, public_key: &[u8]) -> Result<bool, JsError> {
        Ok(self.dev.remove_peer(&key32(public_key, "public key")?))
    }

    /// Point a peer at an endpoint handle.
    pub fn set_endpoint(&mut self, public_key: &[u8], endpoint: u32) -> Result<bool, JsError> {
        Ok(self
            .dev
            .set_endpoint(&key32(public_key, "public key")?, endpoint))
    }

    /// Answer every handshake with a cookie reply unless it carries a valid mac2.
    pub fn set_under_load(&mut self, on: bool) {
        self.dev.set_under_load(on);
    }

    /// Encrypt one IP packet.
    pub fn send(&mut self, packet: &[u8], now: f64) -> Vec<u8> {
        let mut out = Vec::new();
        self.dev.send(packet, ms(now), &mut out);
        encode(&out)
    }

    /// Encrypt many IP packets laid out back to back (`lens` gives each length).
    pub fn send_batch(
        &mut self,
        packets: &[u8],
        lens: &[u32],
        now: f64,
    ) -> Result<Vec<u8>, JsError> {
        let mut out = Vec::new();
        let mut off = 0usize;
        for &len in lens {
            let end = off
                .checked_add(len as usize)
                .filter(|&e| e <= packets.len());
            let end = end.ok_or_else(|| JsError::new("lengths exceed the buffer"))?;
            self.dev.send(&packets[off..end], ms(now), &mut out);
            off = end;
        }
        Ok(encode(&out))
    }

    /// Process one datagram from an endpoint.
    pub fn receive(&mut self, datagram: &[u8], endpoint: u32, now: f64) -> Vec<u8> {
        let mut out = Vec::new();
        self.dev.receive(datagram, endpoint, ms(now), &mut out);
        encode(&out)
    }

    /// Process many datagrams laid out back to back, each from `endpoints[i]`.
    pub fn receive_batch(
        &mut self,
        datagrams: &[u8],
        lens: &[u32],
        endpoints: &[u32],
        now: f64,
    ) -> Result<Vec<u8>, JsError> {
        if lens.len() != endpoints.len() {
            return Err(JsError::new("lens and endpoints differ in length"));
        }
        let mut out = Vec::new();
        let mut off = 0usize;
        for (&len, &ep) in lens.iter().zip(endpoints) {
            let end = off
                .checked_add(len as usize)
                .filter(|&e| e <= datagrams.len());
            let end = end.ok_or_else(|| JsError::new("lengths exceed the buffer"))?;
            self.dev
                .receive(&datagrams[off..end], ep, ms(now), &mut out);
            off = end;
        }
        Ok(encode(&out))
    }

    /// Fire due timers.
    pub fn tick(&mut self, now: f64) -> Vec<u8> {
        let mut out = Vec::new();
        self.dev.tick(ms(now), &mut out);
        encode(&out)
    }

    /// Drop counters and per-peer state as JSON.
    pub fn stats_json(&self) -> String {
        let drops: Vec<String> = DROP_REASONS
            .iter()
            .map(|r| format!("\"{}\":{}", r.as_str(), self.dev.drops(*r)))
            .collect();
        format!(
            "{{\"drops\":{{{}}},\"peers\":[{}]}}",
            drops.join(","),
            peers_json(&self.dev)
        )
    }

    /// Name of a drop reason code (the device's or the engine's).
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
}

// ---- The engine: device + packet filter + userspace stack ---------------------

/// A TCP event (record id = connection handle); the first byte says which.
pub const KIND_TCP: u8 = 4;
/// A UDP datagram (record id = socket handle).
pub const KIND_UDP: u8 = 5;
/// An ICMP echo reply (record id = the ping identifier).
pub const KIND_PING: u8 = 6;

/// A flow to a route address for the host to carry on (userspace subnet
/// routing); the first byte says which: FORWARD_TCP (record id = dial id),
/// FORWARD_UDP or FORWARD_PING (id 0). Then: address length n, the client's
/// address (n bytes), the target's (n bytes), the client's port and the
/// target's (u16 BE each; for ping: identifier and sequence), and data.
pub const KIND_FORWARD: u8 = 7;
/// A SYN to a route address: dial the target, answer with `tcp_dial_result`.
pub const FORWARD_TCP: u8 = 1;
/// A UDP datagram to a route address.
pub const FORWARD_UDP: u8 = 2;
/// An ICMP echo request to a route address.
pub const FORWARD_PING: u8 = 3;

/// `from` and `to`: each end's address and port (identifier and sequence for a ping).
fn push_forward(buf: &mut Vec<u8>, id: u32, sub: u8, from: (Addr, u16), to: (Addr, u16), d: &[u8]) {
    let (f, t) = (from.0.to_bytes(), to.0.to_bytes());
    push_record(
        buf,
        KIND_FORWARD,
        id,
        &[
            &[sub, f.len() as u8],
            &f,
            &t,
            &from.1.to_be_bytes(),
            &to.1.to_be_bytes(),
            d,
        ],
    );
}

/// TCP event codes, the first byte of a KIND_TCP record.
pub const TCP_CONNECTED: u8 = 1;
/// Bytes follow.
pub const TCP_DATA: u8 = 2;
/// The peer finished sending.
pub const TCP_EOF: u8 = 3;
/// Closed and released; one more byte: 1 if by reset, refusal or timeout.
pub const TCP_CLOSED: u8 = 4;
/// A listener accepted this connection; then: listener u32 LE, port u16 BE, address.
pub const TCP_ACCEPTED: u8 = 5;

fn push_record(buf: &mut Vec<u8>, kind: u8, id: u32, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    buf.push(kind);
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    for p in parts {
        buf.extend_from_slice(p);
    }
}

/// Engine outputs as the records `wasm/ts/engine.ts` decodes (also used by
/// the gateway's native data plane, which speaks the same format).
pub fn encode_engine(outputs: Vec<EngineOutput>) -> Vec<u8> {
    let mut buf = Vec::new();
    for o in outputs {
        match o {
            EngineOutput::Wire(Output::Datagram { endpoint, data }) => {
                push_record(&mut buf, KIND_DATAGRAM, endpoint, &[&data])
            }
            EngineOutput::Wire(Output::Packet { peer, data }) => {
                push_record(&mut buf, KIND_PACKET, peer, &[&data])
            }
            EngineOutput::Wire(Output::Drop(r)) => push_record(&mut buf, KIND_DROP, r as u32, &[]),
            EngineOutput::Dropped(r) => push_record(&mut buf, KIND_DROP, r as u32, &[]),
            EngineOutput::Socket(e) => match e {
                Event::TcpConnected(h) => push_record(&mut buf, KIND_TCP, h, &[&[TCP_CONNECTED]]),
                Event::TcpData(h, d) => push_record(&mut buf, KIND_TCP, h, &[&[TCP_DATA], &d]),
                Event::TcpEof(h) => push_record(&mut buf, KIND_TCP, h, &[&[TCP_EOF]]),
                Event::TcpClosed(h, reset) => {
                    push_record(&mut buf, KIND_TCP, h, &[&[TCP_CLOSED, u8::from(reset)]])
                }
                Event::TcpAccepted(l, h, from, port) => push_record(
                    &mut buf,
                    KIND_TCP,
                    h,
                    &[
                        &[TCP_ACCEPTED],
                        &l.to_le_bytes(),
                        &port.to_be_bytes(),
                        &from.to_bytes(),
                    ],
                ),
                Event::Udp(h, from, port, d) => {
                    let a = from.to_bytes();
                    push_record(
                        &mut buf,
                        KIND_UDP,
                        h,
                        &[&[a.len() as u8], &a, &port.to_be_bytes(), &d],
                    )
                }
                Event::TcpDial(id, from, sport, to, dport) => {
                    push_forward(&mut buf, id, FORWARD_TCP, (from, sport), (to, dport), &[])
                }
                Event::UdpForward(from, sport, to, dport, d) => {
                    push_forward(&mut buf, 0, FORWARD_UDP, (from, sport), (to, dport), &d)
                }
                Event::PingForward(from, to, ident, seq, d) => {
                    push_forward(&mut buf, 0, FORWARD_PING, (from, ident), (to, seq), &d)
                }
                Event::PingReply(from, ident, seq) => {
                    let a = from.to_bytes();
                    push_record(
                        &mut buf,
                        KIND_PING,
                        u32::from(ident),
                        &[&[a.len() as u8], &a, &seq.to_be_bytes()],
                    )
                }
            },
        }
    }
    buf
}

fn socket_error(e: SocketError) -> JsError {
    JsError::new(match e {
        SocketError::UnknownHandle => "unknown socket handle",
        SocketError::BadAddress => "no route to that address from this node",
        SocketError::Exhausted => "no free port or socket",
        SocketError::Refused => "the socket refused the operation",
    })
}

fn addr_of(bytes: &[u8]) -> Result<Addr, JsError> {
    Addr::from_bytes(bytes).ok_or_else(|| JsError::new("an address is 4 or 16 bytes"))
}

/// Split `buf` into the slices `lens` describes.
fn slices<'a>(buf: &'a [u8], lens: &[u32]) -> Result<Vec<&'a [u8]>, JsError> {
    let mut out = Vec::with_capacity(lens.len());
    let mut off = 0usize;
    for &len in lens {
        let end = off
            .checked_add(len as usize)
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| JsError::new("lengths exceed the buffer"))?;
        out.push(&buf[off..end]);
        off = end;
    }
    Ok(out)
}

/// The node engine for JS hosts (see `engine`): WireGuard, the packet filter,
/// and (for browsers and unprivileged gateways) the userspace TCP/IP stack.
#[wasm_bindgen]
pub struct WgEngine {
    engine: Engine,
}

#[wasm_bindgen]
impl WgEngine {
    /// `stack`: deliver admitted packets to the userspace stack (false: to the host).
    #[wasm_bindgen(constructor)]
    pub fn new(
        private_key: &[u8],
        seed: &[u8],
        stack: bool,
        now: f64,
    ) -> Result<WgEngine, JsError> {
        Ok(WgEngine {
            engine: Engine::new(
                key32(private_key, "private key")?,
                key32(seed, "seed")?,
                stack,
                ms(now),
            ),
        })
    }

    /// Our static public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.engine.wg.public_key().to_vec()
    }

    /// Add or update a peer (as `WgDevice.upsert_peer`). Returns its id.
    pub fn upsert_peer(
        &mut self,
        public_key: &[u8],
        psk: &[u8],
        allowed_ips: &str,
        endpoint: f64,
        persistent_keepalive: u32,
    ) -> Result<u32, JsError> {
        let public = key32(public_key, "public key")?;
        let psk = if psk.is_empty() {
            None
        } else {
            Some(key32(psk, "preshared key")?)
        };
        let mut prefixes = Vec::new();
        for s in allowed_ips
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            prefixes.push(
                Prefix::parse(s).ok_or_else(|| JsError::new(&format!("bad allowed IP \"{s}\"")))?,
            );
        }
        let endpoint =
            (endpoint >= 0.0 && endpoint <= f64::from(u32::MAX)).then_some(endpoint as u32);
        Ok(self
            .engine
            .wg
            .upsert_peer(public, psk, &prefixes, endpoint, persistent_keepalive))
    }

    /// Remove a peer; false if unknown.
    pub fn remove_peer(&mut self, public_key: &[u8]) -> Result<bool, JsError> {
        Ok(self
            .engine
            .wg
            .remove_peer(&key32(public_key, "public key")?))
    }

    /// Replace the packet filter: a JSON array of `FilterRule`s.
    pub fn set_filter(&mut self, json: &str) -> Result<(), JsError> {
        self.engine.set_filter(json).map_err(|e| JsError::new(&e))
    }

    /// This node's addresses, comma-separated (`100.64.0.5,fd7a:115c:a1e0::5`).
    pub fn set_addresses(&mut self, addrs: &str) -> Result<(), JsError> {
        let mut out = Vec::new();
        for s in addrs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ip = s.split('/').next().unwrap_or(s);
            out.push(Addr::parse(ip).ok_or_else(|| JsError::new(&format!("bad address \"{s}\"")))?);
        }
        self.engine.set_addresses(&out);
        Ok(())
    }

    /// Subnet routes served through the userspace stack, comma-separated
    /// CIDR prefixes (empty: none). Flows to them arrive as KIND_FORWARD records.
    pub fn set_routes(&mut self, prefixes: &str) -> Result<(), JsError> {
        let list: Vec<String> = prefixes
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        self.engine.set_routes(&list).map_err(|e| JsError::new(&e))
    }

    /// The host's answer to a FORWARD_TCP record: `ok` when it reached the
    /// target. Returns the connection's handle (it reports like one from
    /// `tcp_connect`), or 0 when refused (the client got a reset). Poll after.
    pub fn tcp_dial_result(&mut self, id: u32, ok: bool, now: f64) -> Result<u32, JsError> {
        let s = self.engine.stack().map_err(socket_error)?;
        Ok(s.tcp_dial_result(id, ok, ms(now))
            .map_err(socket_error)?
            .unwrap_or(0))
    }

    /// A target's answer to a FORWARD_UDP record, from `from:from_port` (the
    /// route address) to the client `to:to_port`. Poll after.
    pub fn udp_forward_reply(
        &mut self,
        from: &[u8],
        from_port: u16,
        to: &[u8],
        to_port: u16,
        data: &[u8],
    ) -> Result<(), JsError> {
        let (f, t) = (addr_of(from)?, addr_of(to)?);
        let s = self.engine.stack().map_err(socket_error)?;
        s.udp_forward_reply(f, from_port, t, to_port, data)
            .map_err(socket_error)
    }

    /// A target answered a FORWARD_PING record: the echo reply from `from`
    /// (the route address) to the client `to`. Poll after.
    pub fn ping_forward_reply(
        &mut self,
        from: &[u8],
        to: &[u8],
        ident: u16,
        seq: u16,
        data: &[u8],
    ) -> Result<(), JsError> {
        let (f, t) = (addr_of(from)?, addr_of(to)?);
        let s = self.engine.stack().map_err(socket_error)?;
        s.ping_forward_reply(f, t, ident, seq, data)
            .map_err(socket_error)
    }

    /// Datagrams from paths, back to back, each from `endpoints[i]`.
    pub fn receive_batch(
        &mut self,
        datagrams: &[u8],
        lens: &[u32],
        endpoints: &[u32],
        now: f64,
    ) -> Result<Vec<u8>, JsError> {
        if lens.len() != endpoints.len() {
            return Err(JsError::new("lens and endpoints differ in length"));
        }
        let items: Vec<(&[u8], u32)> = slices(datagrams, lens)?
            .into_iter()
            .zip(endpoints.iter().copied())
            .collect();
        let mut out = Vec::new();
        self.engine.receive(&items, ms(now), &mut out);
        Ok(encode_engine(out))
    }

    /// IP packets from the host (TUN), back to back, to encrypt for peers.
    pub fn send_batch(
        &mut self,
        packets: &[u8],
        lens: &[u32],
        now: f64,
    ) -> Result<Vec<u8>, JsError> {
        let items = slices(packets, lens)?;
        let mut out = Vec::new();
        self.engine.send(&items, ms(now), &mut out);
        Ok(encode_engine(out))
    }

    /// Timers, and whatever sockets have to send.
    pub fn poll(&mut self, now: f64) -> Vec<u8> {
        let mut out = Vec::new();
        self.engine.poll(ms(now), &mut out);
        encode_engine(out)
    }

    /// When to poll next, in the host's milliseconds.
    pub fn next_poll(&mut self, now: f64) -> f64 {
        self.engine.next_poll(ms(now)) as f64
    }

    /// Open a TCP connection; returns its handle.
    pub fn tcp_connect(&mut self, addr: &[u8], port: u16) -> Result<u32, JsError> {
        let a = addr_of(addr)?;
        let s = self.engine.stack().map_err(socket_error)?;
        s.tcp_connect(a, port).map_err(socket_error)
    }

    /// Listen on a TCP port of this node's addresses; returns the listener's handle.
    pub fn tcp_listen(&mut self, port: u16) -> Result<u32, JsError> {
        let s = self.engine.stack().map_err(socket_error)?;
        s.tcp_listen(port).map_err(socket_error)
    }

    /// Queue bytes on a connection; returns how many fit.
    pub fn tcp_send(&mut self, handle: u32, data: &[u8]) -> Result<u32, JsError> {
        let s = self.engine.stack().map_err(socket_error)?;
        s.tcp_send(handle, data)
            .map(|n| n as u32)
            .map_err(socket_error)
    }

    /// Stop or resume reading a connection (back-pressure).
    pub fn tcp_pause(&mut self, handle: u32, paused: bool) -> Result<(), JsError> {
        let s = self.engine.stack().map_err(socket_error)?;
        s.tcp_pause(handle, paused).map_err(socket_error)
    }

    /// Finish sending on a connection (or stop a listener).
    pub fn tcp_close(&mut self, handle: u32) -> Result<(), JsError> {
        let s = self.engine.stack().map_err(socket_error)?;
        s.tcp_close(handle).map_err(socket_error)
    }

    /// Reset a connection and release its handle.
    pub fn tcp_abort(&mut self, handle: u32) -> Result<(), JsError> {
        let s = self.engine.stack().map_err(socket_error)?;
        s.tcp_abort(handle).map_err(socket_error)
    }

    /// Bind a UDP socket (0: an ephemeral port).
    pub fn udp_bind(&mut self, port: u16) -> Result<u32, JsError> {
        let s = self.engine.stack().map_err(socket_error)?;
        s.udp_bind(port).map_err(socket_error)
    }

    /// Send a UDP datagram from a bound socket.
    pub fn udp_send(
        &mut self,
        handle: u32,
        addr: &[u8],
        port: u16,
        data: &[u8],
    ) -> Result<(), JsError> {
        let a = addr_of(addr)?;
        let s = self.engine.stack().map_err(socket_error)?;
        s.udp_send(handle, a, port, data).map_err(socket_error)
    }

    /// Close a UDP socket.
    pub fn udp_close(&mut self, handle: u32) -> Result<(), JsError> {
        let s = self.engine.stack().map_err(socket_error)?;
        s.udp_close(handle).map_err(socket_error)
    }

    /// Send an ICMP echo request; returns the identifier replies carry.
    pub fn ping(&mut self, addr: &[u8], seq: u16, payload: &[u8]) -> Result<u16, JsError> {
        let a = addr_of(addr)?;
        let s = self.engine.stack().map_err(socket_error)?;
        s.ping(a, seq, payload).map_err(socket_error)
    }

    /// Drop counters (device and engine), per-peer state, flows tracked and sockets open, as JSON.
    pub fn stats_json(&mut self) -> String {
        let drops: Vec<String> = self
            .engine
            .drop_counts()
            .iter()
            .map(|(name, n)| format!("\"{name}\":{n}"))
            .collect();
        let sockets = self.engine.stack().map_or(0, |s| s.socket_count());
        format!(
            "{{\"drops\":{{{}}},\"peers\":[{}],\"flows\":{},\"sockets\":{}}}",
            drops.join(","),
            peers_json(&self.engine.wg),
            self.engine.filter.conntrack.len(),
            sockets
        )
    }
}
