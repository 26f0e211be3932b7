//! Two engines wired back to back in memory: datagrams one sends are what
//! the other receives. The fused path (decrypt, filter, stack) end to end.

use super::*;
use crate::allowedips::Prefix;

const A4: &str = "100.64.0.1";
const B4: &str = "100.64.0.2";
const A6: &str = "fd7a:115c:a1e0::1";
const B6: &str = "fd7a:115c:a1e0::2";

const ALLOW_ALL: &str =
    r#"[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]"#;

fn addr(s: &str) -> Addr {
    Addr::parse(s).unwrap()
}

struct Net {
    a: Engine,
    b: Engine,
    now: u64,
    /// Socket events seen by each side.
    ev_a: Vec<Event>,
    ev_b: Vec<Event>,
    /// Datagrams carried each way.
    carried: usize,
}

impl Net {
    fn new(filter_a: &str, filter_b: &str) -> Net {
        let mut a = Engine::new([1; 32], [11; 32], true, 0);
        let mut b = Engine::new([2; 32], [22; 32], true, 0);
        let (pa, pb) = (a.wg.public_key(), b.wg.public_key());
        a.wg.upsert_peer(
            pb,
            None,
            &[Prefix::parse(B4).unwrap(), Prefix::parse(B6).unwrap()],
            Some(1),
            0,
        );
        b.wg.upsert_peer(
            pa,
            None,
            &[Prefix::parse(A4).unwrap(), Prefix::parse(A6).unwrap()],
            Some(1),
            0,
        );
        a.set_addresses(&[addr(A4), addr(A6)]);
        b.set_addresses(&[addr(B4), addr(B6)]);
        a.set_filter(filter_a).unwrap();
        b.set_filter(filter_b).unwrap();
        Net {
            a,
            b,
            now: 1_000,
            ev_a: Vec::new(),
            ev_b: Vec::new(),
            carried: 0,
        }
    }

    /// Carry datagrams both ways until neither side has anything to send.
    fn settle(&mut self, mut from_a: Vec<EngineOutput>, mut from_b: Vec<EngineOutput>) {
        for _ in 0..10_000 {
            let to_b = self.take(&mut from_a, true);
            let to_a = self.take(&mut from_b, false);
            if to_a.is_empty() && to_b.is_empty() {
                return;
            }
            self.carried += to_a.len() + to_b.len();
            let ra: Vec<(&[u8], u32)> = to_a.iter().map(|d| (d.as_slice(), 1)).collect();
            let rb: Vec<(&[u8], u32)> = to_b.iter().map(|d| (d.as_slice(), 1)).collect();
            self.a.receive(&ra, self.now, &mut from_a);
            self.b.receive(&rb, self.now, &mut from_b);
        }
        panic!("the engines never went quiet");
    }

    fn take(&mut self, outs: &mut Vec<EngineOutput>, a: bool) -> Vec<Vec<u8>> {
        let mut datagrams = Vec::new();
        for o in outs.drain(..) {
            match o {
                EngineOutput::Wire(Output::Datagram { data, .. }) => datagrams.push(data),
                EngineOutput::Socket(e) => {
                    if a {
                        self.ev_a.push(e)
                    } else {
                        self.ev_b.push(e)
                    }
                }
                _ => {}
            }
        }
        datagrams
    }

    /// A sends these prefixes to B too (besides B's own addresses).
    fn route_to_b(&mut self, prefixes: &[&str]) {
        let mut allowed = vec![Prefix::parse(B4).unwrap(), Prefix::parse(B6).unwrap()];
        allowed.extend(prefixes.iter().map(|p| Prefix::parse(p).unwrap()));
        let pb = self.b.wg.public_key();
        self.a.wg.upsert_peer(pb, None, &allowed, Some(1), 0);
    }

    /// Let time pass and poll both sides.
    fn tick(&mut self, ms: u64) {
        self.now += ms;
        let (mut oa, mut ob) = (Vec::new(), Vec::new());
        self.a.poll(self.now, &mut oa);
        self.b.poll(self.now, &mut ob);
        self.settle(oa, ob);
    }

    fn data_at_b(&self, h: u32) -> Vec<u8> {
        self.ev_b
            .iter()
            .flat_map(|e| match e {
                Event::TcpData(x, d) if *x == h => d.clone(),
                _ => Vec::new(),
            })
            .collect()
    }
}

#[test]
fn tcp_through_wireguard_filter_and_stack_both_ways() {
    let mut n = Net::new(ALLOW_ALL, ALLOW_ALL);
    let listener = n.b.stack().unwrap().tcp_listen(7).unwrap();
    let c = n.a.stack().unwrap().tcp_connect(addr(B4), 7).unwrap();
    n.tick(1);
    assert!(n.ev_a.contains(&Event::TcpConnected(c)));
    let accepted = n
        .ev_b
        .iter()
        .find_map(|e| match e {
            Event::TcpAccepted(l, h, from, _) if *l == listener => Some((*h, *from)),
            _ => None,
        })
        .expect("accepted");
    assert_eq!(accepted.1, addr(A4));
    // 1 MiB from A to B, fed as the send buffer frees.
    let payload: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut sent = 0;
    for _ in 0..10_000 {
        if sent < payload.len() {
            sent += n.a.stack().unwrap().tcp_send(c, &payload[sent..]).unwrap();
        }
        n.tick(1);
        if n.data_at_b(accepted.0).len() == payload.len() {
            break;
        }
    }
    assert_eq!(n.data_at_b(accepted.0), payload);
    // The listener still listens: a second connection is accepted too.
    let c2 = n.a.stack().unwrap().tcp_connect(addr(B6), 7).unwrap();
    n.tick(1);
    assert!(n.ev_a.contains(&Event::TcpConnected(c2)));
    // Closing from A: B sees the end of the stream, and after B closes both are released.
    n.a.stack().unwrap().tcp_close(c).unwrap();
    n.tick(1);
    assert!(n.ev_b.contains(&Event::TcpEof(accepted.0)));
    n.b.stack().unwrap().tcp_close(accepted.0).unwrap();
    n.tick(1);
    assert!(n.ev_b.contains(&Event::TcpClosed(accepted.0, false)));
    assert!(n
        .ev_a
        .iter()
        .any(|e| matches!(e, Event::TcpClosed(h, false) if *h == c)));
}

#[test]
fn the_filter_stops_connections_the_policy_does_not_allow_and_counts_them() {
    // B lets A reach port 22 only.
    let only_ssh = format!(
        r#"[{{"SrcIPs":["{A4}"],"DstPorts":[{{"IP":"{B4}","Ports":{{"First":22,"Last":22}}}}]}}]"#
    );
    let mut n = Net::new(ALLOW_ALL, &only_ssh);
    n.b.stack().unwrap().tcp_listen(22).unwrap();
    n.b.stack().unwrap().tcp_listen(80).unwrap();
    let web = n.a.stack().unwrap().tcp_connect(addr(B4), 80).unwrap();
    let ssh = n.a.stack().unwrap().tcp_connect(addr(B4), 22).unwrap();
    n.tick(1);
    assert!(n.ev_a.contains(&Event::TcpConnected(ssh)));
    assert!(!n.ev_a.contains(&Event::TcpConnected(web)));
    assert!(n.b.drops(EngineDrop::FilterNoRule) >= 1);
    // The SYN is retransmitted and dropped again: never connected.
    n.tick(3_000);
    assert!(!n.ev_a.contains(&Event::TcpConnected(web)));
    assert!(n.b.drops(EngineDrop::FilterNoRule) >= 2);
}

#[test]
fn ping_replies_pass_as_answers_to_our_requests() {
    // B admits nothing from A; A admits nothing either. A's ping to B is
    // refused by B's filter; B's reply-less state means A sees no reply.
    let mut n = Net::new("[]", "[]");
    n.a.stack().unwrap().ping(addr(B4), 1, b"hello").unwrap();
    n.tick(1);
    assert!(!n.ev_a.iter().any(|e| matches!(e, Event::PingReply(..))));
    assert_eq!(n.b.drops(EngineDrop::FilterNoRule), 1);
    // Now B admits pings from A: the reply reaches A although A's own rules
    // admit nothing, because it answers A's request.
    let icmp = r#"[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":0}}],"IPProto":[1,58]}]"#;
    n.b.set_filter(icmp).unwrap();
    let ident = n.a.stack().unwrap().ping(addr(B4), 2, b"hello").unwrap();
    n.a.stack().unwrap().ping(addr(B6), 3, b"hello").unwrap();
    n.tick(1);
    assert!(n.ev_a.contains(&Event::PingReply(addr(B4), ident, 2)));
    assert!(n.ev_a.contains(&Event::PingReply(addr(B6), ident, 3)));
    assert_eq!(n.a.drops(EngineDrop::FilterNoRule), 0);
}

#[test]
fn udp_answers_pass_unsolicited_datagrams_do_not() {
    let mut n = Net::new("[]", ALLOW_ALL);
    let server = n.b.stack().unwrap().udp_bind(53).unwrap();
    let client = n.a.stack().unwrap().udp_bind(0).unwrap();
    n.a.stack()
        .unwrap()
        .udp_send(client, addr(B4), 53, b"query")
        .unwrap();
    n.tick(1);
    let (from, port) = n
        .ev_b
        .iter()
        .find_map(|e| match e {
            Event::Udp(h, from, port, d) if *h == server && d == b"query" => Some((*from, *port)),
            _ => None,
        })
        .expect("query arrived");
    n.b.stack()
        .unwrap()
        .udp_send(server, from, port, b"answer")
        .unwrap();
    // Unsolicited, from another port of B: A's filter admits nothing.
    let other = n.b.stack().unwrap().udp_bind(54).unwrap();
    n.b.stack()
        .unwrap()
        .udp_send(other, from, port, b"spam")
        .unwrap();
    n.tick(1);
    let got: Vec<&Vec<u8>> = n
        .ev_a
        .iter()
        .filter_map(|e| match e {
            Event::Udp(h, _, _, d) if *h == client => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![&b"answer".to_vec()]);
    assert_eq!(n.a.drops(EngineDrop::FilterNoRule), 1);
}

#[test]
fn a_paused_reader_closes_the_window_and_loses_nothing() {
    let mut n = Net::new(ALLOW_ALL, ALLOW_ALL);
    n.b.stack().unwrap().tcp_listen(9).unwrap();
    let c = n.a.stack().unwrap().tcp_connect(addr(B4), 9).unwrap();
    n.tick(1);
    let server = n
        .ev_b
        .iter()
        .find_map(|e| match e {
            Event::TcpAccepted(_, h, _, _) => Some(*h),
            _ => None,
        })
        .unwrap();
    n.b.stack().unwrap().tcp_pause(server, true).unwrap();
    let payload = vec![42u8; 3 * stack::TCP_BUFFER];
    let mut sent = 0;
    for _ in 0..200 {
        sent += n.a.stack().unwrap().tcp_send(c, &payload[sent..]).unwrap();
        n.tick(5);
    }
    // B's window filled and closed: A could hand over at most its own buffer beyond it.
    assert!(sent <= 2 * stack::TCP_BUFFER, "sent {sent}");
    assert!(n.data_at_b(server).is_empty());
    n.b.stack().unwrap().tcp_pause(server, false).unwrap();
    for _ in 0..2_000 {
        if sent < payload.len() {
            sent += n.a.stack().unwrap().tcp_send(c, &payload[sent..]).unwrap();
        }
        n.tick(5);
        if n.data_at_b(server).len() == payload.len() {
            break;
        }
    }
    assert_eq!(n.data_at_b(server), payload);
}

#[test]
fn packets_for_other_addresses_and_garbage_are_dropped_and_counted() {
    let mut n = Net::new(ALLOW_ALL, ALLOW_ALL);
    // A routes 10.0.0.0/8 to B, but B's stack does not own it.
    n.route_to_b(&["10.0.0.0/8"]);
    let mut p = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 100, 64, 0, 1, 10, 1, 2, 3,
    ];
    p.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
    let mut out = Vec::new();
    n.a.send(&[&p], n.now, &mut out);
    n.settle(out, Vec::new());
    assert_eq!(n.b.drops(EngineDrop::NotLocal), 1);
}

#[test]
fn a_host_engine_hands_admitted_packets_to_the_host() {
    let mut a = Engine::new([1; 32], [11; 32], false, 0);
    let mut b = Engine::new([2; 32], [22; 32], false, 0);
    let (pa, pb) = (a.wg.public_key(), b.wg.public_key());
    a.wg.upsert_peer(pb, None, &[Prefix::parse("0.0.0.0/0").unwrap()], Some(1), 0);
    b.wg.upsert_peer(pa, None, &[Prefix::parse(A4).unwrap()], Some(1), 0);
    b.set_filter(ALLOW_ALL).unwrap();
    let mut p = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 100, 64, 0, 1, 10, 1, 2, 3,
    ];
    p.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
    let mut out = Vec::new();
    a.send(&[&p], 1, &mut out);
    let mut got = Vec::new();
    // Handshake, then the staged packet.
    for _ in 0..4 {
        let to_b: Vec<Vec<u8>> = out
            .drain(..)
            .filter_map(|o| match o {
                EngineOutput::Wire(Output::Datagram { data, .. }) => Some(data),
                _ => None,
            })
            .collect();
        let mut back = Vec::new();
        let refs: Vec<(&[u8], u32)> = to_b.iter().map(|d| (d.as_slice(), 1)).collect();
        b.receive(&refs, 1, &mut back);
        for o in back {
            match o {
                EngineOutput::Wire(Output::Packet { data, .. }) => got.push(data),
                EngineOutput::Wire(Output::Datagram { data, .. }) => {
                    a.receive(&[(&data, 1)], 1, &mut out);
                }
                _ => {}
            }
        }
    }
    assert_eq!(got, vec![p]);
}

#[test]
fn host_engines_move_packets_in_place_through_the_filter() {
    use crate::device::{SEND_HEADROOM, SEND_TAILROOM};
    let mut a = Engine::new([1; 32], [11; 32], false, 0);
    let mut b = Engine::new([2; 32], [22; 32], false, 0);
    let (pa, pb) = (a.wg.public_key(), b.wg.public_key());
    a.wg.upsert_peer(pb, None, &[Prefix::parse("0.0.0.0/0").unwrap()], Some(1), 0);
    b.wg.upsert_peer(pa, None, &[Prefix::parse(A4).unwrap()], Some(1), 0);
    let udp = |dport: u8| {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 100, 64, 0, 1, 10, 1, 2, 3,
        ];
        p.extend_from_slice(&[0, 1, 0, dport, 0, 8, 0, 0]);
        p
    };
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    // The first packet has no session: it is staged and the handshake runs.
    let p = udp(2);
    let mut buf = vec![0u8; SEND_HEADROOM + p.len() + SEND_TAILROOM];
    buf[SEND_HEADROOM..][..p.len()].copy_from_slice(&p);
    assert!(a
        .send_in_place(&mut buf, p.len(), 1, &mut scratch, &mut out)
        .is_none());
    let mut delivered = 0;
    for _ in 0..4 {
        let to_b: Vec<Vec<u8>> = out
            .drain(..)
            .filter_map(|o| match o {
                EngineOutput::Wire(Output::Datagram { data, .. }) => Some(data),
                _ => None,
            })
            .collect();
        for mut d in to_b {
            let mut back = Vec::new();
            // No filter yet on B: a data packet is refused and counted.
            if b.receive_in_place(&mut d, 1, 1, &mut scratch, &mut back)
                .is_some()
            {
                delivered += 1;
            }
            for o in back {
                if let EngineOutput::Wire(Output::Datagram { data, .. }) = o {
                    a.receive(&[(&data, 1)], 1, &mut out);
                }
            }
        }
    }
    assert_eq!(delivered, 0);
    assert_eq!(b.drops(EngineDrop::FilterNoRule), 1);
    // With a rule, the fast path delivers the packet where it lies.
    b.set_filter(ALLOW_ALL).unwrap();
    let mut buf = vec![0u8; SEND_HEADROOM + p.len() + SEND_TAILROOM];
    buf[SEND_HEADROOM..][..p.len()].copy_from_slice(&p);
    let (_, n) = a
        .send_in_place(&mut buf, p.len(), 2, &mut scratch, &mut out)
        .expect("session up");
    assert!(out.is_empty());
    let range = b
        .receive_in_place(&mut buf[..n], 1, 2, &mut scratch, &mut out)
        .expect("admitted");
    assert_eq!(&buf[range], &p[..]);
}

// ---- userspace subnet routing (forward.rs) ---------------------------------------

const LAN4: &str = "10.9.0.5";
const LAN6: &str = "fd00:9::5";

/// A reaches 10.9.0.0/24 and fd00:9::/64 through B, which serves them in userspace.
fn routed(filter_b: &str) -> Net {
    let mut n = Net::new(ALLOW_ALL, filter_b);
    n.route_to_b(&["10.9.0.0/24", "fd00:9::/64"]);
    n.b.set_routes(&["10.9.0.0/24".into(), "fd00:9::/64".into()])
        .unwrap();
    n
}

impl Net {
    /// Dials B was asked for: (id, client, target, target port).
    fn dials_at_b(&self) -> Vec<(u32, Addr, Addr, u16)> {
        self.ev_b
            .iter()
            .filter_map(|e| match e {
                Event::TcpDial(id, from, _, to, port) => Some((*id, *from, *to, *port)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn tcp_to_a_route_waits_for_the_hosts_dial_then_carries_bytes_both_ways() {
    let mut n = routed(ALLOW_ALL);
    // B's own listener on the same port must not take connections to the route.
    let own = n.b.stack().unwrap().tcp_listen(80).unwrap();
    let c = n.a.stack().unwrap().tcp_connect(addr(LAN4), 80).unwrap();
    n.tick(1);
    let dials = n.dials_at_b();
    assert_eq!(dials.len(), 1);
    let (id, from, target, port) = dials[0];
    assert_eq!((from, target, port), (addr(A4), addr(LAN4), 80));
    // Not answered before the target is: A's SYN is retransmitted and held.
    n.tick(1_500);
    assert!(!n.ev_a.contains(&Event::TcpConnected(c)));
    assert_eq!(
        n.dials_at_b().len(),
        1,
        "a retransmitted SYN starts no second dial"
    );
    let h =
        n.b.stack()
            .unwrap()
            .tcp_dial_result(id, true, n.now)
            .unwrap()
            .expect("a handle");
    n.tick(1);
    assert!(n.ev_a.contains(&Event::TcpConnected(c)));
    assert!(n.ev_b.contains(&Event::TcpConnected(h)));
    assert!(!n
        .ev_b
        .iter()
        .any(|e| matches!(e, Event::TcpAccepted(l, ..) if *l == own)));
    n.a.stack().unwrap().tcp_send(c, b"GET /").unwrap();
    n.b.stack().unwrap().tcp_send(h, b"200 OK").unwrap();
    n.tick(1);
    assert_eq!(n.data_at_b(h), b"GET /");
    assert!(n.ev_a.contains(&Event::TcpData(c, b"200 OK".to_vec())));
    // B's own listener still answers for B's own address.
    let mine = n.a.stack().unwrap().tcp_connect(addr(B4), 80).unwrap();
    n.tick(1);
    assert!(n.ev_a.contains(&Event::TcpConnected(mine)));
    assert!(n
        .ev_b
        .iter()
        .any(|e| matches!(e, Event::TcpAccepted(l, ..) if *l == own)));
    // Both close: released, and the flow is forgotten.
    n.a.stack().unwrap().tcp_close(c).unwrap();
    n.b.stack().unwrap().tcp_close(h).unwrap();
    n.tick(1);
    assert!(n.ev_b.contains(&Event::TcpClosed(h, false)));
    assert!(n.b.stack().unwrap().routes.forwards.is_empty());
}

#[test]
fn a_dial_that_fails_resets_the_client_at_once() {
    let mut n = routed(ALLOW_ALL);
    let c = n.a.stack().unwrap().tcp_connect(addr(LAN6), 22).unwrap();
    n.tick(1);
    let (id, from, ..) = n.dials_at_b()[0];
    assert_eq!(from, addr(A6));
    let got =
        n.b.stack()
            .unwrap()
            .tcp_dial_result(id, false, n.now)
            .unwrap();
    assert_eq!(got, None);
    n.tick(1);
    assert!(n.ev_a.contains(&Event::TcpClosed(c, true)));
    // The id is spent.
    assert_eq!(
        n.b.stack().unwrap().tcp_dial_result(id, true, n.now),
        Err(SocketError::UnknownHandle)
    );
}

#[test]
fn udp_and_pings_to_a_route_go_to_the_host_and_its_answers_come_back() {
    let mut n = routed(ALLOW_ALL);
    let u = n.a.stack().unwrap().udp_bind(0).unwrap();
    n.a.stack()
        .unwrap()
        .udp_send(u, addr(LAN4), 53, b"query")
        .unwrap();
    n.a.stack()
        .unwrap()
        .udp_send(u, addr(LAN6), 53, b"query6")
        .unwrap();
    n.tick(1);
    let fwd: Vec<(Addr, u16, Addr, u16, Vec<u8>)> = n
        .ev_b
        .iter()
        .filter_map(|e| match e {
            Event::UdpForward(a, b, c, d, data) => Some((*a, *b, *c, *d, data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(fwd.len(), 2);
    assert_eq!((fwd[0].0, fwd[0].2, fwd[0].3), (addr(A4), addr(LAN4), 53));
    assert_eq!(fwd[0].4, b"query");
    assert_eq!(fwd[1].4, b"query6");
    for (client, cport, target, tport, _) in &fwd {
        n.b.stack()
            .unwrap()
            .udp_forward_reply(*target, *tport, *client, *cport, b"answer")
            .unwrap();
    }
    n.tick(1);
    assert!(n
        .ev_a
        .contains(&Event::Udp(u, addr(LAN4), 53, b"answer".to_vec())));
    assert!(n
        .ev_a
        .contains(&Event::Udp(u, addr(LAN6), 53, b"answer".to_vec())));
    // A reply may only come from a served route.
    assert_eq!(
        n.b.stack()
            .unwrap()
            .udp_forward_reply(addr("10.8.0.1"), 53, addr(A4), 1, b"x"),
        Err(SocketError::BadAddress)
    );

    let ident = n.a.stack().unwrap().ping(addr(LAN4), 7, b"ping!").unwrap();
    n.tick(1);
    // The stack does not answer for the target: only the host's reply counts.
    assert!(!n.ev_a.iter().any(|e| matches!(e, Event::PingReply(..))));
    let req = n
        .ev_b
        .iter()
        .find_map(|e| match e {
            Event::PingForward(a, t, i, s, d) => Some((*a, *t, *i, *s, d.clone())),
            _ => None,
        })
        .expect("forwarded ping");
    assert_eq!(req, (addr(A4), addr(LAN4), ident, 7, b"ping!".to_vec()));
    n.b.stack()
        .unwrap()
        .ping_forward_reply(req.1, req.0, req.2, req.3, &req.4)
        .unwrap();
    n.tick(1);
    assert!(n.ev_a.contains(&Event::PingReply(addr(LAN4), ident, 7)));
}

#[test]
fn routes_not_served_and_the_policy_still_decide() {
    // B's policy lets A reach the route's port 80 only.
    let only_web = format!(
        r#"[{{"SrcIPs":["{A4}"],"DstPorts":[{{"IP":"10.9.0.0/24","Ports":{{"First":80,"Last":80}}}}]}}]"#
    );
    let mut n = routed(&only_web);
    n.a.stack().unwrap().tcp_connect(addr(LAN4), 22).unwrap();
    n.a.stack().unwrap().tcp_connect(addr(LAN4), 80).unwrap();
    n.tick(1);
    assert_eq!(n.dials_at_b().len(), 1);
    assert_eq!(n.dials_at_b()[0].3, 80);
    assert!(n.b.drops(EngineDrop::FilterNoRule) >= 1);
    // Once B stops serving the route, its addresses are nobody's.
    n.b.set_routes(&[]).unwrap();
    let before = n.b.drops(EngineDrop::NotLocal);
    n.a.stack().unwrap().tcp_connect(addr(LAN4), 80).unwrap();
    n.tick(1);
    assert!(n.b.drops(EngineDrop::NotLocal) > before);
}

#[test]
fn a_listener_accepts_connections_whose_syns_arrive_together() {
    // Three connections opened at once: their SYNs reach B in one batch (one
    // receive). Each gets a listener; none is refused.
    let mut n = Net::new(ALLOW_ALL, ALLOW_ALL);
    let listener = n.b.stack().unwrap().tcp_listen(80).unwrap();
    let conns: Vec<u32> = (0..3)
        .map(|_| n.a.stack().unwrap().tcp_connect(addr(B4), 80).unwrap())
        .collect();
    n.tick(1);
    for c in &conns {
        assert!(n.ev_a.contains(&Event::TcpConnected(*c)), "{c} refused");
    }
    let accepted = n
        .ev_b
        .iter()
        .filter(|e| matches!(e, Event::TcpAccepted(l, ..) if *l == listener))
        .count();
    assert_eq!(accepted, 3);
    // And the port still listens after them.
    let later = n.a.stack().unwrap().tcp_connect(addr(B4), 80).unwrap();
    n.tick(1);
    assert!(n.ev_a.contains(&Event::TcpConnected(later)));
}
