//! Subnet routing without a kernel (`--userspace` gateways): the userspace
//! stack stands in for the addresses of this node's approved routes, and the
//! host reaches the real targets with sockets of its own.
//!
//! - TCP: a SYN to a route address is held while the host dials the target.
//!   Only when that dial succeeds does the stack take the SYN and answer it,
//!   so a client sees what it would see through a router: a connection when
//!   the target accepts, a reset when it refuses or cannot be reached.
//!   Retransmitted SYNs meanwhile are ignored (the client retries).
//! - UDP datagrams and ICMP echo requests to route addresses go to the host
//!   as events; the host's answers come back here and are built into
//!   packets from the route address (checksums filled).
//!
//! Everything else addressed to a route (fragments, other protocols, more
//! dials waiting than allowed) is refused and counted by the engine.

use std::collections::HashMap;

use smoltcp::wire::{
    Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet, IpAddress, IpListenEndpoint,
    IpProtocol, IpRepr, TcpPacket, TcpSeqNumber, UdpPacket,
};

use super::filter::AddrSet;
use super::packet::{self, Addr, Flow, ICMP4, ICMP6, TCP, UDP};
use super::stack::{ip, Event, Kind, Sock, SocketError, Stack};

/// A forwarded flow: (client, client port, route address, its port).
pub type FlowKey = (Addr, u16, Addr, u16);

/// TCP connections to route addresses waiting for the host's dial, at most.
pub const MAX_DIALS: usize = 256;
/// A dial the host has not answered in this long is forgotten (ms); the
/// client's next SYN starts a new one.
pub const DIAL_TIMEOUT_MS: u64 = 30_000;

/// A held SYN.
pub struct Dial {
    key: FlowKey,
    syn: Vec<u8>,
    at: u64,
}

/// The routes served and the flows through them.
#[derive(Default)]
pub struct Routes {
    set: AddrSet,
    serving: bool,
    dials: HashMap<u32, Dial>,
    dialing: HashMap<FlowKey, u32>,
    /// Established (or establishing) forwarded connections: flow → handle.
    pub(super) forwards: HashMap<FlowKey, u32>,
    next_dial: u32,
}

/// What became of a packet to a route address.
#[derive(Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// For the host to carry out.
    Event(Event),
    /// Into the stack (a segment of a forwarded connection, or one that it
    /// answers with a reset). False: its queue was full.
    Stack(bool),
    /// A retransmitted SYN while the dial is under way, or for a connection
    /// already taking shape: nothing to do.
    Held,
    /// Not something this router carries.
    Refused,
}

impl Stack {
    /// Serve these prefixes (`10.1.0.0/24`, `fd00::/64`, …); empty: none.
    /// Connections through routes no longer served are left to end by themselves.
    pub fn set_routes(&mut self, prefixes: &[String]) -> Result<(), String> {
        self.routes.set = AddrSet::parse(prefixes)?;
        self.routes.serving = !prefixes.is_empty();
        // The engine hands the stack only packets for its own addresses and
        // these routes; AnyIP lets it take the latter.
        self.iface.set_any_ip(self.routes.serving);
        Ok(())
    }

    /// Whether `a` is on a served route (and not this node's own).
    pub fn is_routed(&self, a: Addr) -> bool {
        self.routes.serving && !self.is_local(a) && self.routes.set.contains(a)
    }

    /// A packet to a route address, admitted by the filter.
    pub fn forward(&mut self, data: Vec<u8>, now: u64) -> Forwarded {
        let Some((flow, off, fragmented)) = packet::parse_whole(&data) else {
            return Forwarded::Refused;
        };
        if fragmented {
            return Forwarded::Refused;
        }
        match flow.proto {
            TCP => self.forward_tcp(data, &flow, now),
            UDP => {
                let Some(len) = data
                    .get(off + 4..off + 6)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    return Forwarded::Refused;
                };
                match data.get(off + 8..off + len.max(8)) {
                    Some(payload) => Forwarded::Event(Event::UdpForward(
                        flow.src,
                        flow.sport,
                        flow.dst,
                        flow.dport,
                        payload.to_vec(),
                    )),
                    None => Forwarded::Refused,
                }
            }
            ICMP4 | ICMP6 if flow.is_echo_request() => {
                let (Some(seq), Some(payload)) = (data.get(off + 6..off + 8), data.get(off + 8..))
                else {
                    return Forwarded::Refused;
                };
                Forwarded::Event(Event::PingForward(
                    flow.src,
                    flow.dst,
                    flow.sport,
                    u16::from_be_bytes([seq[0], seq[1]]),
                    payload.to_vec(),
                ))
            }
            _ => Forwarded::Refused,
        }
    }

    fn forward_tcp(&mut self, data: Vec<u8>, flow: &Flow, now: u64) -> Forwarded {
        let key = (flow.src, flow.sport, flow.dst, flow.dport);
        if self.routes.forwards.contains_key(&key) {
            // The connection's socket retransmits its SYN-ACK itself.
            if flow.tcp_syn {
                return Forwarded::Held;
            }
            return Forwarded::Stack(self.push(data));
        }
        if !flow.tcp_syn {
            // No such connection: the stack answers with a reset.
            return Forwarded::Stack(self.push(data));
        }
        if flow.sport == 0 || flow.dport == 0 {
            // Port 0 is no connection's (smoltcp cannot listen on it either).
            return Forwarded::Refused;
        }
        if self.routes.dialing.contains_key(&key) {
            return Forwarded::Held;
        }
        self.expire_dials(now);
        if self.routes.dials.len() >= MAX_DIALS {
            return Forwarded::Refused;
        }
        let id = loop {
            self.routes.next_dial = self.routes.next_dial.wrapping_add(1).max(1);
            if !self.routes.dials.contains_key(&self.routes.next_dial) {
                break self.routes.next_dial;
            }
        };
        self.routes.dials.insert(
            id,
            Dial {
                key,
                syn: data,
                at: now,
            },
        );
        self.routes.dialing.insert(key, id);
        Forwarded::Event(Event::TcpDial(
            id, flow.src, flow.sport, flow.dst, flow.dport,
        ))
    }

    pub(super) fn expire_dials(&mut self, now: u64) {
        if self.routes.dials.is_empty() {
            return;
        }
        let routes = &mut self.routes;
        routes.dials.retain(|_, d| {
            let keep = now.saturating_sub(d.at) < DIAL_TIMEOUT_MS;
            if !keep {
                routes.dialing.remove(&d.key);
            }
            keep
        });
    }

    /// The host's answer to `TcpDial(id, …)`: `ok` when it connected to the
    /// target. Then the stack takes the held SYN and the connection gets a
    /// handle, which reports `TcpConnected` (or `TcpClosed`) like one this
    /// node opened; otherwise the client is sent a reset and None returned.
    pub fn tcp_dial_result(
        &mut self,
        id: u32,
        ok: bool,
        now: u64,
    ) -> Result<Option<u32>, SocketError> {
        let dial = self
            .routes
            .dials
            .remove(&id)
            .ok_or(SocketError::UnknownHandle)?;
        self.routes.dialing.remove(&dial.key);
        let h = match ok.then(|| self.handle()) {
            Some(Ok(h)) => h,
            refused => {
                if let Some(rst) = tcp_reset(&dial.syn) {
                    self.emit(rst);
                }
                return match refused {
                    Some(Err(e)) => Err(e),
                    _ => Ok(None),
                };
            }
        };
        let (_, _, dst, dport) = dial.key;
        let mut s = Self::tcp_socket();
        if s.listen(IpListenEndpoint {
            addr: Some(ip(dst)),
            port: dport,
        })
        .is_err()
        {
            if let Some(rst) = tcp_reset(&dial.syn) {
                self.emit(rst);
            }
            return Ok(None);
        }
        let smol = self.sockets.add(s);
        self.socks.insert(
            h,
            Sock {
                smol,
                kind: Kind::connection(None, Some(dial.key)),
            },
        );
        self.routes.forwards.insert(dial.key, h);
        // A listener of this node's own on the same port takes SYNs to any
        // address: it steps aside while this SYN goes in, so that the
        // connection's own socket is the one to answer it.
        let aside = self.listeners_aside(dport);
        self.take_now(dial.syn, now);
        self.listeners_back(aside);
        Ok(Some(h))
    }

    /// An answer from a target to a forwarded UDP datagram: from
    /// `src:sport` (the route address) to the client `dst:dport`.
    pub fn udp_forward_reply(
        &mut self,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
        data: &[u8],
    ) -> Result<(), SocketError> {
        if !self.is_routed(src) || src.v6 != dst.v6 {
            return Err(SocketError::BadAddress);
        }
        let len = 8 + data.len();
        let mut p = ip_packet(src, dst, IpProtocol::Udp, len).ok_or(SocketError::Exhausted)?;
        let at = p.len() - len;
        let mut u = UdpPacket::new_unchecked(&mut p[at..]);
        u.set_src_port(sport);
        u.set_dst_port(dport);
        u.set_len(len as u16);
        u.payload_mut().copy_from_slice(data);
        u.fill_checksum(&ip(src), &ip(dst));
        self.emit(p);
        Ok(())
    }

    /// A target answered a forwarded echo request: the reply from `src` (the
    /// route address) to the client `dst`, with the request's identity and data.
    pub fn ping_forward_reply(
        &mut self,
        src: Addr,
        dst: Addr,
        ident: u16,
        seq: u16,
        data: &[u8],
    ) -> Result<(), SocketError> {
        if !self.is_routed(src) || src.v6 != dst.v6 {
            return Err(SocketError::BadAddress);
        }
        let len = 8 + data.len();
        let proto = if src.v6 {
            IpProtocol::Icmpv6
        } else {
            IpProtocol::Icmp
        };
        let mut p = ip_packet(src, dst, proto, len).ok_or(SocketError::Exhausted)?;
        let at = p.len() - len;
        if let (IpAddress::Ipv6(s), IpAddress::Ipv6(d)) = (ip(src), ip(dst)) {
            let mut m = Icmpv6Packet::new_unchecked(&mut p[at..]);
            m.set_msg_type(Icmpv6Message::EchoReply);
            m.set_msg_code(0);
            m.set_echo_ident(ident);
            m.set_echo_seq_no(seq);
            m.payload_mut().copy_from_slice(data);
            m.fill_checksum(&s, &d);
        } else {
            let mut m = Icmpv4Packet::new_unchecked(&mut p[at..]);
            m.set_msg_type(Icmpv4Message::EchoReply);
            m.set_msg_code(0);
            m.set_echo_ident(ident);
            m.set_echo_seq_no(seq);
            m.data_mut().copy_from_slice(data);
            m.fill_checksum();
        }
        self.emit(p);
        Ok(())
    }
}

/// An IP header from `src` to `dst` followed by `len` zero bytes, or None
/// when that exceeds the stack's MTU.
fn ip_packet(src: Addr, dst: Addr, proto: IpProtocol, len: usize) -> Option<Vec<u8>> {
    let repr = IpRepr::new(ip(src), ip(dst), proto, len, 64);
    if repr.buffer_len() > super::stack::MTU {
        return None;
    }
    let mut p = vec![0u8; repr.buffer_len()];
    repr.emit(&mut p[..], &smoltcp::phy::ChecksumCapabilities::default());
    Some(p)
}

/// The reset that refuses a SYN (RFC 9293 3.10.7.1: ACK of its sequence + 1).
fn tcp_reset(syn: &[u8]) -> Option<Vec<u8>> {
    let (flow, off, _) = packet::parse_whole(syn)?;
    let seq = u32::from_be_bytes(syn.get(off + 4..off + 8)?.try_into().ok()?);
    let mut p = ip_packet(flow.dst, flow.src, IpProtocol::Tcp, 20)?;
    let at = p.len() - 20;
    let mut t = TcpPacket::new_unchecked(&mut p[at..]);
    t.set_src_port(flow.dport);
    t.set_dst_port(flow.sport);
    t.set_seq_number(TcpSeqNumber(0));
    t.set_ack_number(TcpSeqNumber(seq.wrapping_add(1) as i32));
    t.set_header_len(20);
    t.clear_flags();
    t.set_rst(true);
    t.set_ack(true);
    t.set_window_len(0);
    t.fill_checksum(&ip(flow.dst), &ip(flow.src));
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from 100.64.0.1:`sport` to 10.9.0.5:`dport`.
    fn syn(sport: u16, dport: u16) -> Vec<u8> {
        let mut p = ip_packet(
            Addr::parse("100.64.0.1").unwrap(),
            Addr::parse("10.9.0.5").unwrap(),
            IpProtocol::Tcp,
            20,
        )
        .unwrap();
        let at = p.len() - 20;
        let mut t = TcpPacket::new_unchecked(&mut p[at..]);
        t.set_src_port(sport);
        t.set_dst_port(dport);
        t.set_seq_number(TcpSeqNumber(1000));
        t.set_header_len(20);
        t.clear_flags();
        t.set_syn(true);
        t.set_window_len(1000);
        p
    }

    fn stack() -> Stack {
        let mut s = Stack::new(7, 0);
        s.set_addresses(&[Addr::parse("100.64.0.2").unwrap()]);
        s.set_routes(&["10.9.0.0/24".into()]).unwrap();
        s
    }

    #[test]
    fn port_zero_is_refused_not_dialled() {
        let mut s = stack();
        assert_eq!(s.forward(syn(1, 0), 0), Forwarded::Refused);
        assert_eq!(s.forward(syn(0, 80), 0), Forwarded::Refused);
        assert!(matches!(
            s.forward(syn(1, 80), 0),
            Forwarded::Event(Event::TcpDial(..))
        ));
    }

    #[test]
    fn dials_are_bounded_and_forgotten_when_unanswered() {
        let mut s = stack();
        for port in 1..=MAX_DIALS as u16 {
            assert!(matches!(
                s.forward(syn(port, 80), 0),
                Forwarded::Event(Event::TcpDial(..))
            ));
        }
        assert_eq!(s.forward(syn(9999, 80), 0), Forwarded::Refused);
        // The same SYN again while its dial is under way: held, no second dial.
        assert_eq!(s.forward(syn(1, 80), 1), Forwarded::Held);
        // Unanswered for DIAL_TIMEOUT_MS: forgotten, and the next SYN is a new dial.
        assert!(matches!(
            s.forward(syn(9999, 80), DIAL_TIMEOUT_MS),
            Forwarded::Event(Event::TcpDial(..))
        ));
        assert_eq!(s.routes.dials.len(), 1);
    }

    #[test]
    fn a_refused_dial_answers_the_syn_with_a_reset() {
        let mut s = stack();
        let Forwarded::Event(Event::TcpDial(id, ..)) = s.forward(syn(4000, 22), 0) else {
            panic!("no dial");
        };
        assert_eq!(s.tcp_dial_result(id, false, 0), Ok(None));
        let mut events = Vec::new();
        let out = s.poll(0, &mut events);
        assert_eq!(out.len(), 1);
        let rst = &out[0];
        let f = packet::parse(rst).unwrap();
        assert_eq!(
            (f.src, f.sport, f.dst, f.dport),
            (
                Addr::parse("10.9.0.5").unwrap(),
                22,
                Addr::parse("100.64.0.1").unwrap(),
                4000
            )
        );
        let t = TcpPacket::new_checked(&rst[20..]).unwrap();
        assert!(t.rst() && t.ack());
        assert_eq!(t.ack_number(), TcpSeqNumber(1001));
        assert!(t.verify_checksum(&ip(f.src), &ip(f.dst)));
    }
}
