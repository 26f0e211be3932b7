//! Two cores talking through their batches: the in-place paths, the routing
//! between direct paths and JS, and the queues up.

use super::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use trellis_wasm::allowedips::Prefix;

const ALLOW_ALL: &str =
    r#"[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]"#;
const A_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 41641));
const B_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 41641));
/// The endpoint handle each side uses for the other.
const PEER: u32 = 7;

struct Side {
    core: Core,
    wakes: Arc<AtomicUsize>,
}

fn side(key: u8) -> Side {
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    let core = Core::new(
        Engine::new([key; 32], [key ^ 0x55; 32], false, 0),
        Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }),
    );
    Side { core, wakes }
}

fn pair() -> (Side, Side) {
    let a = side(1);
    let b = side(2);
    let (pa, pb) = (
        a.core.engine().wg.public_key(),
        b.core.engine().wg.public_key(),
    );
    a.core.engine().wg.upsert_peer(
        pb,
        None,
        &[Prefix::parse("100.64.0.2/32").unwrap()],
        Some(PEER),
        0,
    );
    b.core.engine().wg.upsert_peer(
        pa,
        None,
        &[Prefix::parse("100.64.0.1/32").unwrap()],
        Some(PEER),
        0,
    );
    a.core.engine().set_filter(ALLOW_ALL).unwrap();
    b.core.engine().set_filter(ALLOW_ALL).unwrap();
    (a, b)
}

fn udp_packet(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 28 + payload.len()];
    p[0] = 0x45;
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20..22].copy_from_slice(&1000u16.to_be_bytes());
    p[22..24].copy_from_slice(&2000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

fn echo_reply(src: [u8; 4], dst: [u8; 4], ident: u16) -> Vec<u8> {
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&28u16.to_be_bytes());
    p[8] = 64;
    p[9] = 1;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20] = 0; // echo reply
    p[24..26].copy_from_slice(&ident.to_be_bytes());
    p
}

/// Fill a tun→udp batch with packets.
fn fill(b: &mut Batch, packets: &[Vec<u8>]) {
    b.n = packets.len();
    for (i, p) in packets.iter().enumerate() {
        b.bufs[i][SEND_HEADROOM..SEND_HEADROOM + p.len()].copy_from_slice(p);
        b.lens[i] = p.len();
    }
}

/// Put datagrams in a udp→tun batch as if `recvmmsg` had read them from `from`.
fn arrive(b: &mut Batch, datagrams: &[Vec<u8>], from: SocketAddr) {
    b.rx.clear();
    for (i, d) in datagrams.iter().enumerate() {
        b.bufs[i][..d.len()].copy_from_slice(d);
        b.rx.push(crate::io::Rx {
            buf: i,
            off: 0,
            len: d.len(),
            from,
        });
    }
}

/// Decode the records (`wasm/ts/engine.ts`'s format) JS would get.
fn records(buf: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 9 <= buf.len() {
        let kind = buf[off];
        let id = u32::from_le_bytes(buf[off + 1..off + 5].try_into().unwrap());
        let len = u32::from_le_bytes(buf[off + 5..off + 9].try_into().unwrap()) as usize;
        out.push((kind, id, buf[off + 9..off + 9 + len].to_vec()));
        off += 9 + len;
    }
    out
}

/// Run the handshake over the JS path (engine calls, as the relay would carry it).
fn handshake(a: &Side, b: &Side) {
    let mut tx = Batch::new(4, SLOT);
    fill(
        &mut tx,
        &[udp_packet([100, 64, 0, 1], [100, 64, 0, 2], b"first")],
    );
    a.core.encrypt(&mut tx, 1);
    // No session: staged, and the initiation goes up to JS (no direct path yet).
    assert!(tx.sends.is_empty());
    let mut to_b: Vec<Vec<u8>> = records(&a.core.take_records())
        .into_iter()
        .filter(|r| r.0 == KIND_DATAGRAM)
        .map(|r| r.2)
        .collect();
    assert_eq!(to_b.len(), 1);
    for _ in 0..4 {
        let mut to_a = Vec::new();
        for d in to_b.drain(..) {
            let mut out = Vec::new();
            b.core.engine().receive(&[(&d, PEER)], 1, &mut out);
            for o in out {
                if let EngineOutput::Wire(Output::Datagram { data, .. }) = o {
                    to_a.push(data);
                }
            }
        }
        for d in to_a {
            let mut out = Vec::new();
            a.core.engine().receive(&[(&d, PEER)], 1, &mut out);
            for o in out {
                if let EngineOutput::Wire(Output::Datagram { data, .. }) = o {
                    to_b.push(data);
                }
            }
        }
    }
}

#[test]
fn a_batch_goes_out_sealed_in_place_to_the_direct_path_and_arrives_in_place() {
    let (a, b) = pair();
    handshake(&a, &b);
    a.core.set_direct(PEER, Some(B_ADDR));
    b.core.set_direct(PEER, Some(A_ADDR));
    let packets: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| {
            udp_packet(
                [100, 64, 0, 1],
                [100, 64, 0, 2],
                &vec![i as u8; 100 + i * 13],
            )
        })
        .collect();
    let mut tx = Batch::new(BATCH, SLOT);
    fill(&mut tx, &packets);
    a.core.encrypt(&mut tx, 2);
    assert_eq!(tx.sends.len(), BATCH);
    assert!(tx.sends.iter().all(|(_, _, to)| *to == B_ADDR));
    assert!(a.core.take_records().is_empty(), "nothing for JS");
    assert_eq!(a.core.take_active(), vec![PEER]);
    let wire: Vec<Vec<u8>> = tx
        .sends
        .iter()
        .map(|(i, n, _)| tx.bufs[*i][..*n].to_vec())
        .collect();
    let mut rx = Batch::new(BATCH, SLOT);
    arrive(&mut rx, &wire, A_ADDR);
    b.core.decrypt(&mut rx, 2);
    let got: Vec<Vec<u8>> = rx
        .deliver
        .iter()
        .map(|(i, r)| rx.bufs[*i][r.clone()].to_vec())
        .collect();
    assert_eq!(got, packets);
    assert!(b.core.take_udp().is_empty());
    // The same datagrams again are replays: counted, not delivered.
    arrive(&mut rx, &wire, A_ADDR);
    b.core.decrypt(&mut rx, 2);
    assert!(rx.deliver.is_empty());
    assert_eq!(
        b.core.engine().wg.drops(trellis_wasm::DropReason::Replay),
        BATCH as u64
    );
}

#[test]
fn without_a_direct_path_datagrams_go_up_to_js_as_engine_records() {
    let (a, b) = pair();
    handshake(&a, &b);
    let mut tx = Batch::new(4, SLOT);
    let p = udp_packet([100, 64, 0, 1], [100, 64, 0, 2], b"relay me");
    fill(&mut tx, std::slice::from_ref(&p));
    let before = a.wakes.load(Ordering::SeqCst);
    a.core.encrypt(&mut tx, 2);
    assert!(tx.sends.is_empty());
    assert_eq!(
        a.wakes.load(Ordering::SeqCst),
        before + 1,
        "JS is told once"
    );
    let recs = records(&a.core.take_records());
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].0, recs[0].1), (KIND_DATAGRAM, PEER));
    // JS hands it to the peer's engine (the relay): the same packet comes out.
    let mut out = Vec::new();
    b.core.engine().receive(&[(&recs[0].2, PEER)], 2, &mut out);
    assert!(out.contains(&EngineOutput::Wire(Output::Packet { peer: 1, data: p })));
}

#[test]
fn datagrams_not_from_a_direct_path_or_not_wireguard_go_to_the_socket_reader() {
    let (a, b) = pair();
    handshake(&a, &b);
    b.core.set_direct(PEER, Some(A_ADDR));
    let stranger = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 9), 5));
    let disco = b"TS\xf0\x9f\x92\xac and the rest".to_vec();
    let mut rx = Batch::new(4, SLOT);
    arrive(&mut rx, std::slice::from_ref(&disco), A_ADDR);
    b.core.decrypt(&mut rx, 2);
    arrive(&mut rx, &[vec![4, 0, 0, 0, 1, 2, 3]], stranger);
    b.core.decrypt(&mut rx, 2);
    assert!(rx.deliver.is_empty());
    let up = b.core.take_udp();
    assert_eq!(up.len(), 2);
    assert_eq!(up[0], (A_ADDR, disco));
    assert_eq!(up[1].0, stranger);
    // A datagram too big for its slot is counted.
    rx.rx.clear();
    rx.rx.push(crate::io::Rx {
        buf: 0,
        off: 0,
        len: 0,
        from: A_ADDR,
    });
    b.core.decrypt(&mut rx, 2);
    assert_eq!(b.core.counters.udp_truncated.load(Ordering::Relaxed), 1);
}

#[test]
fn answers_to_the_engines_own_pings_go_to_js_and_other_packets_to_the_host() {
    let (a, b) = pair();
    handshake(&a, &b);
    a.core.set_direct(PEER, Some(B_ADDR));
    b.core.set_direct(PEER, Some(A_ADDR));
    b.core.set_echo_ident(Some(0x1234));
    let mine = echo_reply([100, 64, 0, 1], [100, 64, 0, 2], 0x1234);
    let theirs = echo_reply([100, 64, 0, 1], [100, 64, 0, 2], 0x9999);
    // Answers pass the filter as replies: B asked (conntrack), so let B's engine note both requests.
    let mut tx = Batch::new(4, SLOT);
    fill(&mut tx, &[mine.clone(), theirs.clone()]);
    a.core.encrypt(&mut tx, 2);
    let wire: Vec<Vec<u8>> = tx
        .sends
        .iter()
        .map(|(i, n, _)| tx.bufs[*i][..*n].to_vec())
        .collect();
    let mut rx = Batch::new(4, SLOT);
    arrive(&mut rx, &wire, A_ADDR);
    b.core.decrypt(&mut rx, 2);
    let host: Vec<Vec<u8>> = rx
        .deliver
        .iter()
        .map(|(i, r)| rx.bufs[*i][r.clone()].to_vec())
        .collect();
    assert_eq!(host, vec![theirs]);
    let recs = records(&b.core.take_records());
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].0, recs[0].2.clone()), (KIND_PACKET, mine));
}

#[test]
fn the_queue_up_to_js_is_bounded_and_counts_what_it_drops() {
    let a = side(1);
    let from = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 3), 9));
    let mut rx = Batch::new(BATCH, SLOT);
    let junk: Vec<Vec<u8>> = (0..BATCH).map(|i| vec![0xaa, i as u8]).collect();
    let rounds = MAX_UP_UDP / BATCH + 2;
    for _ in 0..rounds {
        arrive(&mut rx, &junk, from);
        a.core.decrypt(&mut rx, 1);
    }
    assert_eq!(a.core.take_udp().len(), MAX_UP_UDP);
    assert_eq!(
        a.core.counters.up_queue_full.load(Ordering::Relaxed) as usize,
        rounds * BATCH - MAX_UP_UDP
    );
    assert_eq!(
        a.wakes.load(Ordering::SeqCst),
        1,
        "told once until JS takes"
    );
}

#[test]
fn a_direct_path_belongs_to_one_handle_at_a_time() {
    let a = side(1);
    a.core.set_direct(1, Some(B_ADDR));
    a.core.set_direct(2, Some(B_ADDR));
    let p = a.core.paths.read().unwrap();
    assert_eq!(p.by_addr.get(&B_ADDR), Some(&2));
    assert!(!p.by_handle.contains_key(&1));
    drop(p);
    a.core.set_direct(2, None);
    assert!(a.core.paths.read().unwrap().by_addr.is_empty());
}

#[test]
fn datagrams_glued_in_one_buffer_are_opened_where_they_lie() {
    let (a, b) = pair();
    handshake(&a, &b);
    a.core.set_direct(PEER, Some(B_ADDR));
    b.core.set_direct(PEER, Some(A_ADDR));
    let packets: Vec<Vec<u8>> = (0..5)
        .map(|i| udp_packet([100, 64, 0, 1], [100, 64, 0, 2], &[i as u8; 1000]))
        .collect();
    let mut tx = Batch::new(8, SLOT);
    fill(&mut tx, &packets);
    a.core.encrypt(&mut tx, 2);
    // As UDP_GRO hands them over: back to back in one buffer.
    let mut rx = Batch::new(2, SLOT);
    let mut off = 0;
    for (i, n, _) in &tx.sends {
        let seg = tx.bufs[*i][..*n].to_vec();
        rx.bufs[1][off..off + n].copy_from_slice(&seg);
        rx.rx.push(crate::io::Rx {
            buf: 1,
            off,
            len: *n,
            from: A_ADDR,
        });
        off += n;
    }
    b.core.decrypt(&mut rx, 2);
    let got: Vec<Vec<u8>> = rx
        .deliver
        .iter()
        .map(|(i, r)| rx.bufs[*i][r.clone()].to_vec())
        .collect();
    assert_eq!(got, packets);
}
