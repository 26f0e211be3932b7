//! The userspace TCP/IP stack (smoltcp) for nodes without a kernel network
//! interface (browser tabs, unprivileged gateways). It sits behind the packet
//! filter: packets the filter admitted for this node's own addresses go in,
//! packets its sockets make come out for the WireGuard device to encrypt.
//! The host drives it through socket handles and receives what sockets
//! produce as events; nothing here blocks or reads a clock.

use std::collections::{HashMap, VecDeque};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    HardwareAddress, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpCidr,
    IpEndpoint, IpListenEndpoint, Ipv4Address, Ipv6Address,
};

use super::forward::{FlowKey, Routes};
use super::packet::{self, Addr};

/// IP MTU of the stack: what every WireGuard peer carries (as Tailscale's
/// default), whatever path the datagram then takes.
pub const MTU: usize = 1280;
/// Per-connection receive and send buffers: a window of 256 KiB (window
/// scaling on) keeps a relayed or WebRTC path with tens of ms of RTT busy.
pub const TCP_BUFFER: usize = 256 * 1024;
/// Packets waiting to enter the stack at most; more are dropped (and counted).
pub const MAX_RX_QUEUE: usize = 1024;
const UDP_PACKETS: usize = 64;
const UDP_BYTES: usize = 64 * 1024;
/// How long a connection may go unacknowledged before it is given up.
const TCP_TIMEOUT: Duration = Duration::from_secs(30);
const TCP_KEEPALIVE: Duration = Duration::from_secs(25);

/// What the stack tells the host, after a poll.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A connection this node opened is established.
    TcpConnected(u32),
    /// A listener accepted a connection: (listener, new connection handle, remote).
    TcpAccepted(u32, u32, Addr, u16),
    /// Bytes arrived on a connection.
    TcpData(u32, Vec<u8>),
    /// The remote end finished sending (FIN): no more data will arrive.
    TcpEof(u32),
    /// The connection is closed and its handle released. `reset`: it ended
    /// abnormally (refused, reset, timed out) rather than by both sides closing.
    TcpClosed(u32, bool),
    /// A UDP datagram arrived on a bound socket: (handle, from, port, data).
    Udp(u32, Addr, u16, Vec<u8>),
    /// An ICMP echo reply to a ping: (from, identifier, sequence).
    PingReply(Addr, u16, u16),
    /// A client opened TCP to a route address: the host dials the target and
    /// answers with `tcp_dial_result` (id, client, its port, target, its port).
    TcpDial(u32, Addr, u16, Addr, u16),
    /// A UDP datagram to a route address, for the host to send on
    /// (client, its port, target, its port, data).
    UdpForward(Addr, u16, Addr, u16, Vec<u8>),
    /// An ICMP echo request to a route address, for the host to try
    /// (client, target, identifier, sequence, data).
    PingForward(Addr, Addr, u16, u16, Vec<u8>),
}

/// Why a socket operation was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SocketError {
    /// No such handle (or of another kind).
    UnknownHandle,
    /// The address is not one the stack can reach (or not of a family it has an address in).
    BadAddress,
    /// No free local port, or the socket table is full.
    Exhausted,
    /// smoltcp refused the operation (e.g. send on a closed connection).
    Refused,
}

/// The device between the stack and the WireGuard engine: two queues.
struct Phy {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct RxToken(Vec<u8>);
struct TxToken<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl phy::Device for Phy {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        // What arrives was authenticated by WireGuard: checksums are made, not checked.
        let mut cs = ChecksumCapabilities::default();
        cs.ipv4 = Checksum::Tx;
        cs.tcp = Checksum::Tx;
        cs.udp = Checksum::Tx;
        cs.icmpv4 = Checksum::Tx;
        cs.icmpv6 = Checksum::Tx;
        caps.checksum = cs;
        caps
    }

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let p = self.rx.pop_front()?;
        Some((RxToken(p), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }
}

pub(super) enum Kind {
    Tcp {
        connected: bool,
        eof: bool,
        /// The host stopped reading: data stays in the buffer and the window closes.
        paused: bool,
        /// A listener's connection not yet reported to the host.
        listener: Option<u32>,
        /// A connection to a route address, carried on by the host (see `forward`).
        forward: Option<FlowKey>,
    },
    Listener {
        port: u16,
    },
    Udp,
}

impl Kind {
    /// A connection not yet established (and not yet reported to the host).
    pub(super) fn connection(listener: Option<u32>, forward: Option<FlowKey>) -> Kind {
        Kind::Tcp {
            connected: false,
            eof: false,
            paused: false,
            listener,
            forward,
        }
    }
}

pub(super) struct Sock {
    pub(super) smol: SocketHandle,
    pub(super) kind: Kind,
}

pub(super) fn ip(a: Addr) -> IpAddress {
    if a.v6 {
        IpAddress::Ipv6(Ipv6Address::from_bits(a.n))
    } else {
        IpAddress::Ipv4(Ipv4Address::from_bits(a.n as u32))
    }
}

fn addr(a: IpAddress) -> Addr {
    match a {
        IpAddress::Ipv4(v4) => Addr {
            v6: false,
            n: u128::from(v4.to_bits()),
        },
        IpAddress::Ipv6(v6) => Addr {
            v6: true,
            n: v6.to_bits(),
        },
    }
}

/// The stack: an interface with this node's addresses, and its sockets.
pub struct Stack {
    pub(super) iface: Interface,
    phy: Phy,
    pub(super) sockets: SocketSet<'static>,
    pub(super) socks: HashMap<u32, Sock>,
    /// Subnet routes served without a kernel, and the flows through them.
    pub(super) routes: Routes,
    next_handle: u32,
    addrs: Vec<Addr>,
    port_seed: u32,
    icmp: Option<(SocketHandle, u16)>,
    /// Aborted connections whose RST has yet to go out.
    orphans: Vec<SocketHandle>,
    /// Packets dropped because the receive queue was full.
    pub rx_overflow: u64,
}

/// Most sockets open at once.
pub const MAX_SOCKETS: usize = 4096;

impl Stack {
    /// A stack with no address yet. `seed`: randomness for TCP sequence numbers and ports.
    pub fn new(seed: u64, now: u64) -> Stack {
        let mut phy = Phy {
            rx: VecDeque::new(),
            tx: Vec::new(),
        };
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed;
        let iface = Interface::new(config, &mut phy, Instant::from_millis(now as i64));
        Stack {
            iface,
            phy,
            sockets: SocketSet::new(vec![]),
            socks: HashMap::new(),
            next_handle: 1,
            addrs: Vec::new(),
            routes: Routes::default(),
            port_seed: (seed >> 32) as u32 | 1,
            icmp: None,
            orphans: Vec::new(),
            rx_overflow: 0,
        }
    }

    /// This node's addresses (host routes, `/32` and `/128`); everything else
    /// is reached through the WireGuard device, by default routes.
    pub fn set_addresses(&mut self, addrs: &[Addr]) {
        self.addrs = addrs.to_vec();
        self.iface.update_ip_addrs(|ips| {
            ips.clear();
            for a in addrs {
                let _ = ips.push(IpCidr::new(ip(*a), if a.v6 { 128 } else { 32 }));
            }
        });
        // With Medium::Ip there are no neighbours: the gateway only has to exist.
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        routes.remove_default_ipv6_route();
        for a in addrs {
            match ip(*a) {
                IpAddress::Ipv4(v4) => {
                    let _ = routes.add_default_ipv4_route(v4);
                }
                IpAddress::Ipv6(v6) => {
                    let _ = routes.add_default_ipv6_route(v6);
                }
            }
        }
    }

    /// Whether `a` is one of this node's addresses.
    pub fn is_local(&self, a: Addr) -> bool {
        self.addrs.contains(&a)
    }

    /// A packet for this node, admitted by the filter. False when the queue is full.
    pub fn push(&mut self, packet: Vec<u8>) -> bool {
        if self.phy.rx.len() >= MAX_RX_QUEUE {
            self.rx_overflow += 1;
            return false;
        }
        self.phy.rx.push_back(packet);
        true
    }

    /// Run the stack: take queued packets in, let sockets send; return the
    /// packets to send (for the WireGuard device) and the sockets' events.
    pub fn poll(&mut self, now: u64, events: &mut Vec<Event>) -> Vec<Vec<u8>> {
        let ts = Instant::from_millis(now as i64);
        self.expire_dials(now);
        // A listener is one smoltcp socket: the first SYN for its port turns it
        // into that connection, and only `collect` puts a new listener in its
        // place. A second SYN in the same intake would find none and be answered
        // with a reset: of two connections opened at once (a browser fetching a
        // page's script and its data), one refused. So packets go in up to each
        // such SYN, and the listeners are renewed before the rest.
        let mut queued = std::mem::take(&mut self.phy.rx);
        loop {
            let mut opened = false;
            while let Some(p) = queued.front() {
                if self.opens_listened(p) {
                    if opened {
                        break;
                    }
                    opened = true;
                }
                if let Some(p) = queued.pop_front() {
                    self.phy.rx.push_back(p);
                }
            }
            self.iface.poll(ts, &mut self.phy, &mut self.sockets);
            self.collect(events);
            if queued.is_empty() {
                break;
            }
        }
        // Reading freed window space, and closes and aborts want to go out now.
        self.iface.poll(ts, &mut self.phy, &mut self.sockets);
        std::mem::take(&mut self.phy.tx)
    }

    /// Whether `data` (an IP packet) is a SYN for a port this node listens on, at one of its addresses.
    fn opens_listened(&self, data: &[u8]) -> bool {
        let Some(f) = packet::parse(data) else {
            return false;
        };
        f.proto == packet::TCP
            && f.tcp_syn
            && self.is_local(f.dst)
            && self
                .socks
                .values()
                .any(|s| matches!(s.kind, Kind::Listener { port } if port == f.dport))
    }

    /// When the stack next needs a poll (ms), if it has timers running.
    pub fn poll_at(&mut self, now: u64) -> Option<u64> {
        let ts = Instant::from_millis(now as i64);
        self.iface
            .poll_at(ts, &self.sockets)
            .map(|t| t.total_millis().max(0) as u64)
    }

    pub(super) fn handle(&mut self) -> Result<u32, SocketError> {
        if self.socks.len() >= MAX_SOCKETS {
            return Err(SocketError::Exhausted);
        }
        let h = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1).max(1);
        Ok(h)
    }

    fn local_for(&self, dst: Addr) -> Option<Addr> {
        self.addrs.iter().copied().find(|a| a.v6 == dst.v6)
    }

    fn ephemeral_port(&mut self, in_use: impl Fn(u16) -> bool) -> Option<u16> {
        for _ in 0..64 {
            // xorshift32: ports need to be hard to guess, not secret.
            let mut x = self.port_seed;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            self.port_seed = x;
            let port = 49152 + (x % 16384) as u16;
            if !in_use(port) {
                return Some(port);
            }
        }
        None
    }

    pub(super) fn tcp_socket() -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        );
        s.set_congestion_control(tcp::CongestionControl::Cubic);
        s.set_nagle_enabled(false);
        s.set_timeout(Some(TCP_TIMEOUT));
        s.set_keep_alive(Some(TCP_KEEPALIVE));
        s
    }

    /// Open a TCP connection to `dst:port`. The handle reports `TcpConnected`
    /// or `TcpClosed(_, true)`.
    pub fn tcp_connect(&mut self, dst: Addr, port: u16) -> Result<u32, SocketError> {
        let local = self.local_for(dst).ok_or(SocketError::BadAddress)?;
        let h = self.handle()?;
        let used: Vec<u16> = self
            .socks
            .values()
            .filter_map(|s| match s.kind {
                Kind::Tcp { .. } => self
                    .sockets
                    .get::<tcp::Socket>(s.smol)
                    .local_endpoint()
                    .map(|e| e.port),
                _ => None,
            })
            .collect();
        let lport = self
            .ephemeral_port(|p| used.contains(&p))
            .ok_or(SocketError::Exhausted)?;
        let mut s = Self::tcp_socket();
        s.connect(
            self.iface.context(),
            IpEndpoint::new(ip(dst), port),
            IpEndpoint::new(ip(local), lport),
        )
        .map_err(|_| SocketError::BadAddress)?;
        let smol = self.sockets.add(s);
        self.socks.insert(
            h,
            Sock {
                smol,
                kind: Kind::connection(None, None),
            },
        );
        Ok(h)
    }

    /// Listen for TCP connections to `port` on this node's addresses. Each
    /// arrives as `TcpAccepted` with a handle of its own.
    pub fn tcp_listen(&mut self, port: u16) -> Result<u32, SocketError> {
        if port == 0 {
            return Err(SocketError::BadAddress);
        }
        let h = self.handle()?;
        let mut s = Self::tcp_socket();
        s.listen(IpListenEndpoint { addr: None, port })
            .map_err(|_| SocketError::Refused)?;
        let smol = self.sockets.add(s);
        self.socks.insert(
            h,
            Sock {
                smol,
                kind: Kind::Listener { port },
            },
        );
        Ok(h)
    }

    /// Queue bytes on a connection; returns how many fit in its send buffer.
    pub fn tcp_send(&mut self, h: u32, data: &[u8]) -> Result<usize, SocketError> {
        let sock = self.socks.get(&h).ok_or(SocketError::UnknownHandle)?;
        if !matches!(sock.kind, Kind::Tcp { .. }) {
            return Err(SocketError::UnknownHandle);
        }
        let s = self.sockets.get_mut::<tcp::Socket>(sock.smol);
        if !s.may_send() {
            return if s.is_open() {
                Ok(0)
            } else {
                Err(SocketError::Refused)
            };
        }
        s.send_slice(data).map_err(|_| SocketError::Refused)
    }

    /// Stop (or resume) reading a connection: unread data stays in its buffer,
    /// so the window the peer sees closes — back-pressure from the host.
    pub fn tcp_pause(&mut self, h: u32, paused: bool) -> Result<(), SocketError> {
        match self.socks.get_mut(&h) {
            Some(Sock {
                kind: Kind::Tcp { paused: p, .. },
                ..
            }) => {
                *p = paused;
                Ok(())
            }
            _ => Err(SocketError::UnknownHandle),
        }
    }

    /// Finish sending (FIN); the connection closes when the peer finishes too.
    pub fn tcp_close(&mut self, h: u32) -> Result<(), SocketError> {
        let sock = self.socks.get(&h).ok_or(SocketError::UnknownHandle)?;
        match sock.kind {
            Kind::Tcp { .. } => self.sockets.get_mut::<tcp::Socket>(sock.smol).close(),
            Kind::Listener { .. } => {
                let smol = sock.smol;
                self.sockets.remove(smol);
                self.socks.remove(&h);
            }
            Kind::Udp => return Err(SocketError::UnknownHandle),
        }
        Ok(())
    }

    /// Reset a connection (RST) and release its handle at once.
    pub fn tcp_abort(&mut self, h: u32) -> Result<(), SocketError> {
        let sock = self.socks.remove(&h).ok_or(SocketError::UnknownHandle)?;
        if let Kind::Tcp { forward, .. } = sock.kind {
            if let Some(key) = forward {
                self.routes.forwards.remove(&key);
            }
            self.sockets.get_mut::<tcp::Socket>(sock.smol).abort();
            // The RST goes out on the next poll; the socket is removed after it.
            self.orphans.push(sock.smol);
        } else {
            self.sockets.remove(sock.smol);
        }
        Ok(())
    }

    /// Bind a UDP socket (`port` 0: an ephemeral one).
    pub fn udp_bind(&mut self, port: u16) -> Result<u32, SocketError> {
        let h = self.handle()?;
        let used: Vec<u16> = self
            .socks
            .values()
            .filter(|s| matches!(s.kind, Kind::Udp))
            .map(|s| self.sockets.get::<udp::Socket>(s.smol).endpoint().port)
            .collect();
        let port = if port == 0 {
            self.ephemeral_port(|p| used.contains(&p))
                .ok_or(SocketError::Exhausted)?
        } else if used.contains(&port) {
            return Err(SocketError::Exhausted);
        } else {
            port
        };
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_BYTES],
            ),
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_BYTES],
            ),
        );
        s.bind(port).map_err(|_| SocketError::Refused)?;
        let smol = self.sockets.add(s);
        self.socks.insert(
            h,
            Sock {
                smol,
                kind: Kind::Udp,
            },
        );
        Ok(h)
    }

    /// Send a UDP datagram from a bound socket.
    pub fn udp_send(
        &mut self,
        h: u32,
        dst: Addr,
        port: u16,
        data: &[u8],
    ) -> Result<(), SocketError> {
        if self.local_for(dst).is_none() {
            return Err(SocketError::BadAddress);
        }
        let sock = self.socks.get(&h).ok_or(SocketError::UnknownHandle)?;
        if !matches!(sock.kind, Kind::Udp) {
            return Err(SocketError::UnknownHandle);
        }
        self.sockets
            .get_mut::<udp::Socket>(sock.smol)
            .send_slice(data, IpEndpoint::new(ip(dst), port))
            .map_err(|_| SocketError::Exhausted)
    }

    /// Close a UDP socket and release its handle.
    pub fn udp_close(&mut self, h: u32) -> Result<(), SocketError> {
        match self.socks.get(&h) {
            Some(Sock {
                kind: Kind::Udp, ..
            }) => {
                let sock = self.socks.remove(&h).expect("just found");
                self.sockets.remove(sock.smol);
                Ok(())
            }
            _ => Err(SocketError::UnknownHandle),
        }
    }

    /// Send an ICMP echo request; the reply arrives as `PingReply` with the
    /// identifier returned and this `seq`.
    pub fn ping(&mut self, dst: Addr, seq: u16, payload: &[u8]) -> Result<u16, SocketError> {
        let local = self.local_for(dst).ok_or(SocketError::BadAddress)?;
        let (smol, ident) = match self.icmp {
            Some(s) => s,
            None => {
                let ident = self
                    .ephemeral_port(|_| false)
                    .ok_or(SocketError::Exhausted)?;
                let mut s = icmp::Socket::new(
                    icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 32], vec![0; 8192]),
                    icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 32], vec![0; 8192]),
                );
                s.bind(icmp::Endpoint::Ident(ident))
                    .map_err(|_| SocketError::Refused)?;
                let smol = self.sockets.add(s);
                self.icmp = Some((smol, ident));
                (smol, ident)
            }
        };
        let caps = self.phy_caps();
        let s = self.sockets.get_mut::<icmp::Socket>(smol);
        if dst.v6 {
            let repr = Icmpv6Repr::EchoRequest {
                ident,
                seq_no: seq,
                data: payload,
            };
            let buf = s
                .send(repr.buffer_len(), ip(dst))
                .map_err(|_| SocketError::Exhausted)?;
            let (IpAddress::Ipv6(src), IpAddress::Ipv6(d)) = (ip(local), ip(dst)) else {
                return Err(SocketError::BadAddress);
            };
            repr.emit(&src, &d, &mut Icmpv6Packet::new_unchecked(buf), &caps);
        } else {
            let repr = Icmpv4Repr::EchoRequest {
                ident,
                seq_no: seq,
                data: payload,
            };
            let buf = s
                .send(repr.buffer_len(), ip(dst))
                .map_err(|_| SocketError::Exhausted)?;
            repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
        }
        Ok(ident)
    }

    fn phy_caps(&self) -> smoltcp::phy::ChecksumCapabilities {
        smoltcp::phy::ChecksumCapabilities::default()
    }

    /// Sockets' news since the last poll, into `events`; closed connections are released.
    fn collect(&mut self, events: &mut Vec<Event>) {
        let mut closed: Vec<u32> = Vec::new();
        let mut relisten: Vec<(u32, u16)> = Vec::new();
        let handles: Vec<u32> = self.socks.keys().copied().collect();
        for h in handles {
            let sock = self.socks.get_mut(&h).expect("listed");
            match &mut sock.kind {
                Kind::Tcp {
                    connected,
                    eof,
                    paused,
                    listener,
                    forward,
                } => {
                    let s = self.sockets.get_mut::<tcp::Socket>(sock.smol);
                    if forward.is_some() && s.is_listening() {
                        // A reset in SYN-RECEIVED puts a socket back to listening;
                        // a forwarded connection is over then.
                        events.push(Event::TcpClosed(h, true));
                        closed.push(h);
                        continue;
                    }
                    if !*connected && s.may_send() {
                        *connected = true;
                        match listener.take() {
                            Some(l) => {
                                let remote = s.remote_endpoint().expect("connected");
                                events.push(Event::TcpAccepted(
                                    l,
                                    h,
                                    addr(remote.addr),
                                    remote.port,
                                ));
                            }
                            None => events.push(Event::TcpConnected(h)),
                        }
                    }
                    if !*paused {
                        while s.can_recv() {
                            let mut chunk = Vec::new();
                            let _ = s.recv(|buf| {
                                chunk.extend_from_slice(buf);
                                (buf.len(), ())
                            });
                            if chunk.is_empty() {
                                break;
                            }
                            events.push(Event::TcpData(h, chunk));
                        }
                    }
                    let state = s.state();
                    // These states mean the peer sent its FIN (and all its data is read).
                    let fin_seen = matches!(
                        state,
                        tcp::State::CloseWait
                            | tcp::State::LastAck
                            | tcp::State::Closing
                            | tcp::State::TimeWait
                    );
                    if fin_seen && !*eof && !s.can_recv() {
                        *eof = true;
                        events.push(Event::TcpEof(h));
                    }
                    if (state == tcp::State::Closed || state == tcp::State::TimeWait)
                        && !s.can_recv()
                    {
                        // Without the peer's FIN, it ended by reset, refusal or timeout.
                        events.push(Event::TcpClosed(h, !*eof));
                        closed.push(h);
                    }
                }
                Kind::Listener { port } => {
                    let s = self.sockets.get::<tcp::Socket>(sock.smol);
                    if !s.is_listening() {
                        // The listening socket became this connection: hand it over under a
                        // new handle, and listen again.
                        relisten.push((h, *port));
                    }
                }
                Kind::Udp => {
                    let s = self.sockets.get_mut::<udp::Socket>(sock.smol);
                    while let Ok((data, meta)) = s.recv() {
                        events.push(Event::Udp(
                            h,
                            addr(meta.endpoint.addr),
                            meta.endpoint.port,
                            data.to_vec(),
                        ));
                    }
                }
            }
        }
        for h in closed {
            if let Some(sock) = self.socks.remove(&h) {
                if let Kind::Tcp {
                    forward: Some(key), ..
                } = sock.kind
                {
                    self.routes.forwards.remove(&key);
                }
                self.sockets.remove(sock.smol);
            }
        }
        for (h, port) in relisten {
            let Ok(conn) = self.handle() else { continue };
            let sock = self.socks.remove(&h).expect("listed");
            self.socks.insert(
                conn,
                Sock {
                    smol: sock.smol,
                    kind: Kind::connection(Some(h), None),
                },
            );
            let mut s = Self::tcp_socket();
            if s.listen(IpListenEndpoint { addr: None, port }).is_ok() {
                let smol = self.sockets.add(s);
                self.socks.insert(
                    h,
                    Sock {
                        smol,
                        kind: Kind::Listener { port },
                    },
                );
            }
        }
        if let Some((smol, ident)) = self.icmp {
            let s = self.sockets.get_mut::<icmp::Socket>(smol);
            while let Ok((data, from)) = s.recv() {
                if let Some(seq) = echo_reply_seq(data, ident, from) {
                    events.push(Event::PingReply(addr(from), ident, seq));
                }
            }
        }
        self.orphans.retain(|&smol| {
            let s = self.sockets.get::<tcp::Socket>(smol);
            if s.state() == tcp::State::Closed {
                self.sockets.remove(smol);
                false
            } else {
                true
            }
        });
    }

    /// A packet made outside the stack, to go out with what it sends next.
    pub(super) fn emit(&mut self, packet: Vec<u8>) {
        self.phy.tx.push(packet);
    }

    /// Take `packet` in ahead of anything queued, now.
    pub(super) fn take_now(&mut self, packet: Vec<u8>, now: u64) {
        self.phy.rx.push_front(packet);
        let ts = Instant::from_millis(now as i64);
        self.iface.poll(ts, &mut self.phy, &mut self.sockets);
    }

    /// Take this node's listeners on `port` out of the socket set (see
    /// `tcp_dial_result`); `listeners_back` puts new ones in their place.
    pub(super) fn listeners_aside(&mut self, port: u16) -> Vec<u32> {
        let aside: Vec<u32> = self
            .socks
            .iter()
            .filter(|(_, s)| matches!(s.kind, Kind::Listener { port: p } if p == port))
            .map(|(h, _)| *h)
            .collect();
        for h in &aside {
            let smol = self.socks[h].smol;
            self.sockets.remove(smol);
        }
        aside
    }

    pub(super) fn listeners_back(&mut self, aside: Vec<u32>) {
        for h in aside {
            let Some(Sock {
                kind: Kind::Listener { port },
                ..
            }) = self.socks.get(&h)
            else {
                continue;
            };
            let mut s = Self::tcp_socket();
            if s.listen(IpListenEndpoint {
                addr: None,
                port: *port,
            })
            .is_ok()
            {
                let smol = self.sockets.add(s);
                self.socks.get_mut(&h).expect("listed").smol = smol;
            } else {
                self.socks.remove(&h);
            }
        }
    }

    /// Number of open sockets (TCP, listeners, UDP).
    pub fn socket_count(&self) -> usize {
        self.socks.len()
    }
}

/// The sequence number of an echo reply with our identifier, from its raw ICMP message.
fn echo_reply_seq(data: &[u8], ident: u16, from: IpAddress) -> Option<u16> {
    let ty = *data.first()?;
    let reply = match from {
        IpAddress::Ipv4(_) => ty == 0,
        IpAddress::Ipv6(_) => ty == 129,
    };
    if !reply || data.len() < 8 || u16::from_be_bytes([data[4], data[5]]) != ident {
        return None;
    }
    Some(u16::from_be_bytes([data[6], data[7]]))
}
