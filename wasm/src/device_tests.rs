//! Two devices talking in memory: handshakes, data, rotation, timers, and
//! every drop path of `receive`.

use crate::allowedips::Prefix;
use crate::constants::*;
use crate::device::{Device, DropReason, Output};

const A_EP: u32 = 100; // how B addresses A
const B_EP: u32 = 200; // how A addresses B

fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
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

const A_IP: [u8; 4] = [100, 64, 0, 1];
const B_IP: [u8; 4] = [100, 64, 0, 2];

struct Pair {
    a: Device,
    b: Device,
    a_pub: [u8; 32],
    b_pub: [u8; 32],
}

fn pair() -> Pair {
    let mut a = Device::new([1; 32], [11; 32]);
    let mut b = Device::new([2; 32], [22; 32]);
    let (a_pub, b_pub) = (a.public_key(), b.public_key());
    a.upsert_peer(
        b_pub,
        Some([9; 32]),
        &[Prefix::parse("100.64.0.2/32").unwrap()],
        Some(B_EP),
        0,
    );
    b.upsert_peer(
        a_pub,
        Some([9; 32]),
        &[Prefix::parse("100.64.0.1/32").unwrap()],
        None,
        0,
    );
    Pair { a, b, a_pub, b_pub }
}

fn datagrams(out: &[Output]) -> Vec<(u32, Vec<u8>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Datagram { endpoint, data } => Some((*endpoint, data.clone())),
            _ => None,
        })
        .collect()
}

fn packets(out: &[Output]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Packet { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect()
}

fn drops(out: &[Output]) -> Vec<DropReason> {
    out.iter()
        .filter_map(|o| match o {
            Output::Drop(r) => Some(*r),
            _ => None,
        })
        .collect()
}

/// Deliver datagrams back and forth until quiet; returns packets delivered at each side.
fn pump(
    p: &mut Pair,
    mut to_b: Vec<Vec<u8>>,
    mut to_a: Vec<Vec<u8>>,
    now: u64,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
        let mut next_a = Vec::new();
        let mut next_b = Vec::new();
        for d in to_b.drain(..) {
            let mut out = Vec::new();
            p.b.receive(&d, A_EP, now, &mut out);
            at_b.extend(packets(&out));
            next_a.extend(datagrams(&out).into_iter().map(|(_, d)| d));
        }
        for d in to_a.drain(..) {
            let mut out = Vec::new();
            p.a.receive(&d, B_EP, now, &mut out);
            at_a.extend(packets(&out));
            next_b.extend(datagrams(&out).into_iter().map(|(_, d)| d));
        }
        to_a = next_a;
        to_b = next_b;
    }
    (at_a, at_b)
}

fn send(d: &mut Device, packet: &[u8], now: u64) -> Vec<Output> {
    let mut out = Vec::new();
    d.send(packet, now, &mut out);
    out
}

#[test]
fn first_packet_triggers_handshake_and_arrives() {
    let mut p = pair();
    let pkt = ipv4(A_IP, B_IP, b"hello");
    let out = send(&mut p.a, &pkt, 1000);
    let dg = datagrams(&out);
    assert_eq!(dg.len(), 1);
    assert_eq!(dg[0].0, B_EP);
    assert_eq!(dg[0].1.len(), INITIATION_LEN);
    let (_, at_b) = pump(&mut p, vec![dg[0].1.clone()], vec![], 1000);
    assert_eq!(at_b, vec![pkt]);
    // B learned A's endpoint from the handshake and can answer.
    let reply = ipv4(B_IP, A_IP, b"hi back");
    let out = send(&mut p.b, &reply, 1001);
    let dg = datagrams(&out);
    assert_eq!(dg[0].0, A_EP);
    let (at_a, _) = pump(&mut p, vec![], vec![dg[0].1.clone()], 1001);
    assert_eq!(at_a, vec![reply]);
}

fn established() -> Pair {
    let mut p = pair();
    let out = send(&mut p.a, &ipv4(A_IP, B_IP, b"x"), 1000);
    pump(
        &mut p,
        datagrams(&out).into_iter().map(|d| d.1).collect(),
        vec![],
        1000,
    );
    p
}

fn one_transport(p: &mut Pair, payload: &[u8], now: u64) -> Vec<u8> {
    let out = send(&mut p.a, &ipv4(A_IP, B_IP, payload), now);
    let dg = datagrams(&out);
    assert_eq!(dg.len(), 1, "{out:?}");
    dg[0].1.clone()
}

fn recv_b(p: &mut Pair, d: &[u8], ep: u32, now: u64) -> Vec<Output> {
    let mut out = Vec::new();
    p.b.receive(d, ep, now, &mut out);
    out
}

#[test]
fn replayed_and_out_of_window_counters_are_dropped() {
    let mut p = established();
    let first = one_transport(&mut p, b"1", 2000);
    assert_eq!(packets(&recv_b(&mut p, &first, A_EP, 2000)).len(), 1);
    assert_eq!(
        drops(&recv_b(&mut p, &first, A_EP, 2000)),
        vec![DropReason::Replay]
    );
    // Jump the counter far ahead, then the old one is out of the window.
    let mut later = Vec::new();
    for _ in 0..(crate::replay::WINDOW_SIZE + 10) {
        later = one_transport(&mut p, b"n", 2001);
    }
    assert_eq!(packets(&recv_b(&mut p, &later, A_EP, 2001)).len(), 1);
    let mut stale = first.clone();
    stale[8..16].copy_from_slice(&1u64.to_le_bytes());
    assert_eq!(
        drops(&recv_b(&mut p, &stale, A_EP, 2001)),
        vec![DropReason::CounterOutOfWindow]
    );
    assert_eq!(p.b.drops(DropReason::Replay), 1);
}

#[test]
fn truncated_oversized_and_garbage_are_dropped_with_reasons() {
    let mut p = established();
    let good = one_transport(&mut p, b"ok", 2000);
    assert_eq!(
        drops(&recv_b(&mut p, &good[..20], A_EP, 2000)),
        vec![DropReason::Truncated]
    );
    assert_eq!(
        drops(&recv_b(&mut p, &[4, 0], A_EP, 2000)),
        vec![DropReason::Truncated]
    );
    assert_eq!(
        drops(&recv_b(
            &mut p,
            &vec![4u8; MAX_TRANSPORT_LEN + 1],
            A_EP,
            2000
        ))[0],
        DropReason::BadType
    );
    let mut big = vec![0u8; MAX_TRANSPORT_LEN + 1];
    big[0] = 4;
    assert_eq!(
        drops(&recv_b(&mut p, &big, A_EP, 2000)),
        vec![DropReason::Oversized]
    );
    assert_eq!(
        drops(&recv_b(&mut p, &[1u8; INITIATION_LEN + 1], A_EP, 2000)),
        vec![DropReason::BadType]
    );
    let mut init = vec![0u8; INITIATION_LEN + 1];
    init[0] = 1;
    assert_eq!(
        drops(&recv_b(&mut p, &init, A_EP, 2000)),
        vec![DropReason::Oversized]
    );
    assert_eq!(
        drops(&recv_b(&mut p, &init[..100], A_EP, 2000)),
        vec![DropReason::Truncated]
    );
    assert_eq!(
        drops(&recv_b(&mut p, &[9, 0, 0, 0, 1, 2], A_EP, 2000)),
        vec![DropReason::BadType]
    );
    let mut flipped = good.clone();
    flipped[20] ^= 1;
    assert_eq!(
        drops(&recv_b(&mut p, &flipped, A_EP, 2000)),
        vec![DropReason::DecryptFailed]
    );
    let mut unknown = good.clone();
    unknown[4..8].copy_from_slice(&0xdeadbeefu32.to_le_bytes());
    assert_eq!(
        drops(&recv_b(&mut p, &unknown, A_EP, 2000)),
        vec![DropReason::UnknownIndex]
    );
    // The good packet still works after all that.
    assert_eq!(packets(&recv_b(&mut p, &good, A_EP, 2000)).len(), 1);
}

#[test]
fn wrong_mac1_and_unknown_keys_are_refused() {
    let mut p = pair();
    let out = send(&mut p.a, &ipv4(A_IP, B_IP, b"x"), 1000);
    let mut init = datagrams(&out)[0].1.clone();
    let mut bad = init.clone();
    bad[116] ^= 1;
    assert_eq!(
        drops(&recv_b(&mut p, &bad, A_EP, 1000)),
        vec![DropReason::BadMac1]
    );
    // A stranger with a valid mac1 (it knows B's public key) but not a peer of B.
    let mut stranger = Device::new([3; 32], [33; 32]);
    stranger.upsert_peer(
        p.b_pub,
        None,
        &[Prefix::parse("100.64.0.2/32").unwrap()],
        Some(B_EP),
        0,
    );
    let out = send(&mut stranger, &ipv4([100, 64, 0, 9], B_IP, b"x"), 1000);
    let s_init = datagrams(&out)[0].1.clone();
    assert_eq!(
        drops(&recv_b(&mut p, &s_init, 300, 1000)),
        vec![DropReason::UnknownKey]
    );
    // The genuine initiation is still accepted; replaying it is not.
    assert_eq!(datagrams(&recv_b(&mut p, &init, A_EP, 1000)).len(), 1);
    init[116] ^= 0; // unchanged
    assert_eq!(
        drops(&recv_b(&mut p, &init, A_EP, 1500)),
        vec![DropReason::StaleTimestamp]
    );
}

#[test]
fn under_load_a_handshake_without_cookie_gets_a_cookie_reply_then_succeeds() {
    let mut p = pair();
    p.b.set_under_load(true);
    let out = send(&mut p.a, &ipv4(A_IP, B_IP, b"payload"), 1000);
    let init = datagrams(&out)[0].1.clone();
    let out_b = recv_b(&mut p, &init, A_EP, 1000);
    assert_eq!(drops(&out_b), vec![DropReason::CookieRequired]);
    let reply = datagrams(&out_b)[0].1.clone();
    assert_eq!(reply.len(), COOKIE_REPLY_LEN);
    let mut out_a = Vec::new();
    p.a.receive(&reply, B_EP, 1000, &mut out_a);
    assert!(drops(&out_a).is_empty());
    // The retry (after REKEY_TIMEOUT + jitter) carries a valid mac2 and completes.
    let mut out_a = Vec::new();
    p.a.tick(1000 + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX, &mut out_a);
    let retry = datagrams(&out_a)[0].1.clone();
    let (_, at_b) = pump(
        &mut p,
        vec![retry],
        vec![],
        1000 + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX,
    );
    assert_eq!(at_b, vec![ipv4(A_IP, B_IP, b"payload")]);
}

#[test]
fn allowed_ips_violation_is_dropped() {
    let mut p = established();
    // A sends a packet whose inner source is not A's allowed IP at B.
    let out = send(&mut p.a, &ipv4([10, 0, 0, 7], B_IP, b"spoof"), 2000);
    let d = datagrams(&out)[0].1.clone();
    assert_eq!(
        drops(&recv_b(&mut p, &d, A_EP, 2000)),
        vec![DropReason::AllowedIps]
    );
}

#[test]
fn no_route_and_bad_packets_on_send() {
    let mut p = established();
    assert_eq!(
        drops(&send(&mut p.a, &ipv4(A_IP, [8, 8, 8, 8], b"x"), 2000)),
        vec![DropReason::NoRoute]
    );
    assert_eq!(
        drops(&send(&mut p.a, &[0x10, 1, 2], 2000)),
        vec![DropReason::BadPacket]
    );
}

#[test]
fn initiator_rekeys_after_rekey_after_time_and_keeps_sending() {
    let mut p = established();
    let t = 1000 + REKEY_AFTER_TIME + 1;
    let out = send(&mut p.a, &ipv4(A_IP, B_IP, b"late"), t);
    let dg = datagrams(&out);
    assert_eq!(dg.len(), 2, "data on the old session plus a new initiation");
    assert_eq!(dg[1].1.len(), INITIATION_LEN);
    let (_, at_b) = pump(&mut p, dg.into_iter().map(|d| d.1).collect(), vec![], t);
    assert_eq!(at_b, vec![ipv4(A_IP, B_IP, b"late")]);
    assert_eq!(p.a.peer(1).unwrap().stats.handshakes, 2);
    // Both old and new sessions work: previous for packets in flight, current for new ones.
    let d = one_transport(&mut p, b"new session", t + 1);
    assert_eq!(packets(&recv_b(&mut p, &d, A_EP, t + 1)).len(), 1);
}

#[test]
fn sessions_are_rejected_after_reject_after_time() {
    let mut p = established();
    let d = one_transport(&mut p, b"x", 1000);
    assert_eq!(
        drops(&recv_b(&mut p, &d, A_EP, 1000 + REJECT_AFTER_TIME)),
        vec![DropReason::ExpiredSession]
    );
}

#[test]
fn handshake_retries_then_gives_up_after_rekey_attempt_time() {
    let mut p = pair();
    let _ = send(&mut p.a, &ipv4(A_IP, B_IP, b"x"), 0);
    let mut initiations = 1;
    let mut t = 0;
    let mut gave_up = false;
    while t <= REKEY_ATTEMPT_TIME + 10_000 {
        t += 250;
        let mut out = Vec::new();
        p.a.tick(t, &mut out);
        initiations += datagrams(&out).len();
        if drops(&out).contains(&DropReason::StagedDropped) {
            gave_up = true;
            break;
        }
    }
    assert!(gave_up, "staged packet dropped after REKEY_ATTEMPT_TIME");
    assert!(
        (16..=19).contains(&initiations),
        "{initiations} initiations"
    );
    assert!(t >= REKEY_ATTEMPT_TIME);
}

#[test]
fn passive_keepalive_after_receiving_data() {
    // B received A's first packet at t=1000 and has sent nothing since.
    let mut p = established();
    let mut out = Vec::new();
    p.b.tick(1000 + KEEPALIVE_TIMEOUT - 1, &mut out);
    assert!(datagrams(&out).is_empty());
    p.b.tick(1000 + KEEPALIVE_TIMEOUT, &mut out);
    let dg = datagrams(&out);
    assert_eq!(dg.len(), 1);
    assert_eq!(
        dg[0].1.len(),
        TRANSPORT_HEADER_LEN + AEAD_TAG_LEN,
        "an empty transport message"
    );
    let mut out_a = Vec::new();
    p.a.receive(&dg[0].1, B_EP, 1000 + KEEPALIVE_TIMEOUT, &mut out_a);
    assert!(
        out_a.is_empty(),
        "keepalives deliver nothing and drop nothing"
    );
}

#[test]
fn both_sides_initiating_at_once_converge() {
    let mut p = pair();
    p.b.set_endpoint(&p.a_pub, A_EP);
    let from_a = datagrams(&send(&mut p.a, &ipv4(A_IP, B_IP, b"a"), 1000));
    let from_b = datagrams(&send(&mut p.b, &ipv4(B_IP, A_IP, b"b"), 1000));
    let (at_a, at_b) = pump(
        &mut p,
        from_a.into_iter().map(|d| d.1).collect(),
        from_b.into_iter().map(|d| d.1).collect(),
        1000,
    );
    assert_eq!(at_a, vec![ipv4(B_IP, A_IP, b"b")]);
    assert_eq!(at_b, vec![ipv4(A_IP, B_IP, b"a")]);
    // Afterwards traffic flows both ways.
    let d = one_transport(&mut p, b"after", 1001);
    assert_eq!(packets(&recv_b(&mut p, &d, A_EP, 1001)).len(), 1);
}

/// Bounded random inputs through `receive`: never a panic, always a verdict.
#[test]
fn receive_survives_random_and_mutated_input() {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};
    let mut p = established();
    let good = one_transport(&mut p, b"seed packet", 2000);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for i in 0..20_000u32 {
        let mut d = if i % 2 == 0 {
            let mut d = good.clone();
            let flips = 1 + rng.next_u32() % 4;
            for _ in 0..flips {
                let at = rng.next_u32() as usize % d.len();
                d[at] ^= 1 << (rng.next_u32() % 8);
            }
            d
        } else {
            let len = rng.next_u32() as usize % 200;
            let mut d = vec![0u8; len];
            rng.fill_bytes(&mut d);
            d
        };
        if i % 7 == 0 && !d.is_empty() {
            d[0] = 1 + (rng.next_u32() % 4) as u8;
            if d.len() > 3 {
                d[1..4].fill(0);
            }
        }
        let out = recv_b(&mut p, &d, A_EP, 2000);
        assert!(out.len() <= 2);
    }
}

#[test]
fn clock_at_the_end_of_time_does_not_overflow() {
    let mut p = pair();
    let far = u64::MAX - 1;
    let out = send(&mut p.a, &ipv4(A_IP, B_IP, b"x"), far);
    let (_, at_b) = pump(
        &mut p,
        datagrams(&out).into_iter().map(|d| d.1).collect(),
        vec![],
        far,
    );
    assert_eq!(at_b.len(), 1);
    let mut out = Vec::new();
    p.a.tick(u64::MAX, &mut out);
    p.b.tick(u64::MAX, &mut out);
}

// ---- the in-place paths (native gateways' batches) ----------------------------

/// A buffer laid out as `send_in_place` wants it: headroom, packet, tailroom.
fn framed(packet: &[u8]) -> Vec<u8> {
    use crate::device::{SEND_HEADROOM, SEND_TAILROOM};
    let mut buf = vec![0xee; SEND_HEADROOM + packet.len() + SEND_TAILROOM];
    buf[SEND_HEADROOM..SEND_HEADROOM + packet.len()].copy_from_slice(packet);
    buf
}

#[test]
fn in_place_send_makes_the_message_the_allocating_path_makes() {
    // Two identical devices in the same state: one sends by `send`, one in place.
    let (mut p1, mut p2) = (established(), established());
    let pkt = ipv4(A_IP, B_IP, b"in place, padded to sixteen");
    let want = one_transport(&mut p1, &pkt[20..], 2000);
    let mut buf = framed(&pkt);
    let mut out = Vec::new();
    let (ep, n) =
        p2.a.send_in_place(&mut buf, pkt.len(), 2000, &mut out)
            .expect("fast path");
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(ep, B_EP);
    assert_eq!(&buf[..n], &want[..]);
    // And the peer opens it.
    let got = packets(&recv_b(&mut p2, &buf[..n], A_EP, 2000));
    assert_eq!(got, vec![pkt]);
}

#[test]
fn in_place_receive_yields_the_packet_where_it_lies_and_refuses_a_replay() {
    let mut p = established();
    let pkt = ipv4(A_IP, B_IP, b"over the wire");
    let mut d = one_transport(&mut p, &pkt[20..], 2000);
    let copy = d.clone();
    let mut out = Vec::new();
    let (peer, range) =
        p.b.receive_in_place(&mut d, A_EP, 2000, &mut out)
            .expect("a packet");
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(Some(peer), p.b.peer_id(&p.a_pub));
    assert_eq!(&d[range], &pkt[..]);
    let mut again = copy;
    assert!(p
        .b
        .receive_in_place(&mut again, A_EP, 2000, &mut out)
        .is_none());
    assert_eq!(drops(&out), vec![DropReason::Replay]);
}

#[test]
fn in_place_paths_fall_back_to_the_slow_path_with_its_outputs() {
    let mut p = pair();
    // No session yet: the packet is staged and an initiation comes out.
    let pkt = ipv4(A_IP, B_IP, b"first");
    let mut buf = framed(&pkt);
    let mut out = Vec::new();
    assert!(p
        .a
        .send_in_place(&mut buf, pkt.len(), 1000, &mut out)
        .is_none());
    let dg = datagrams(&out);
    assert_eq!(dg.len(), 1);
    assert_eq!(dg[0].1.len(), INITIATION_LEN);
    // A handshake message given to receive_in_place is answered as by receive.
    let mut init = dg[0].1.clone();
    let mut back = Vec::new();
    assert!(p
        .b
        .receive_in_place(&mut init, A_EP, 1000, &mut back)
        .is_none());
    assert_eq!(datagrams(&back)[0].1.len(), RESPONSE_LEN);
    // Garbage is counted, not delivered; a too-small buffer is refused.
    let mut junk = vec![4, 0, 0, 0, 1, 2];
    let mut out = Vec::new();
    assert!(p
        .b
        .receive_in_place(&mut junk, A_EP, 1000, &mut out)
        .is_none());
    assert_eq!(drops(&out), vec![DropReason::Truncated]);
    let mut short = vec![0u8; 8];
    assert!(p
        .a
        .send_in_place(&mut short, pkt.len(), 1000, &mut out)
        .is_none());
}

#[test]
fn in_place_receive_checks_allowed_ips_and_counts_the_drop() {
    let mut p = established();
    let forged = ipv4([100, 64, 0, 9], B_IP, b"not A's address");
    let mut d = one_transport_raw(&mut p, &forged, 2000);
    let mut out = Vec::new();
    assert!(p.b.receive_in_place(&mut d, A_EP, 2000, &mut out).is_none());
    assert_eq!(drops(&out), vec![DropReason::AllowedIps]);
}

/// A transport message carrying `packet` as it is (any source address).
fn one_transport_raw(p: &mut Pair, packet: &[u8], now: u64) -> Vec<u8> {
    let mut buf = framed(packet);
    let mut out = Vec::new();
    let (_, n) =
        p.a.send_in_place(&mut buf, packet.len(), now, &mut out)
            .expect("fast path");
    buf.truncate(n);
    buf
}
