//! TUN offloads, as wireguard-go uses them: with `IFF_VNET_HDR` and
//! `TUNSETOFFLOAD(CSUM|TSO4|TSO6)` the kernel hands the device TCP
//! super-packets of up to 64 KiB (one `virtio_net_hdr` in front saying how to
//! cut them) and leaves checksums for us to finish. Here they are cut into
//! MSS-sized IP packets with their headers and checksums fixed, before
//! encryption; and the other way, packets written to the device carry a
//! header saying "no offload" (or, coalesced, a super-packet of our own).

use std::ops::Range;

/// Bytes of `virtio_net_hdr` before every packet on a VNET_HDR TUN device.
pub const VNET_HDR_LEN: usize = 10;
/// `flags`: the checksum from `csum_start` on is left for us.
pub const F_NEEDS_CSUM: u8 = 1;
/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
/// TCP over IPv4.
pub const GSO_TCPV4: u8 = 1;
/// TCP over IPv6.
pub const GSO_TCPV6: u8 = 4;
/// The ECN bit of `gso_type`.
pub const GSO_ECN: u8 = 0x80;

/// A parsed `virtio_net_hdr` (little-endian fields, as TUN uses them by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `F_NEEDS_CSUM` or 0.
    pub flags: u8,
    /// `GSO_*`.
    pub gso_type: u8,
    /// Length of the headers (a hint; recomputed here).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts.
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum goes.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parse the header in front of a packet.
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b = b.get(..VNET_HDR_LEN)?;
        let u = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// Write the header.
    pub fn write(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }
}

/// Why a packet from the device could not be cut (it is dropped and counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentError {
    /// Headers shorter than they claim, or offsets outside the packet.
    Malformed,
    /// A GSO type we did not ask for (UDP, or TCP in an IPv6 packet with extension headers).
    Unsupported,
    /// More segments than the room given.
    NoRoom,
}

/// Add `data` to a one's-complement sum (16-bit big-endian words).
pub fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes(c.try_into().expect("8 bytes"));
        acc += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Fold a sum to 16 bits.
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header sum of an IP packet's addresses, protocol and L4 length.
fn pseudo(pkt: &[u8], v6: bool, proto: u8, l4_len: usize) -> u64 {
    let addrs = if v6 { &pkt[8..40] } else { &pkt[12..20] };
    sum(0, addrs) + u64::from(proto) + l4_len as u64
}

/// Finish a checksum the kernel left for us: the sum of `pkt[start..]`
/// (whose checksum field holds the pseudo-header sum) goes at `start + offset`.
pub fn finish_checksum(pkt: &mut [u8], start: usize, offset: usize) -> Result<(), SegmentError> {
    let at = start + offset;
    if at + 2 > pkt.len() || start > pkt.len() {
        return Err(SegmentError::Malformed);
    }
    let c = !fold(sum(0, &pkt[start..]));
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The IPv4 header checksum, written in place.
fn ipv4_checksum(pkt: &mut [u8], ihl: usize) {
    pkt[10..12].copy_from_slice(&[0, 0]);
    let c = !fold(sum(0, &pkt[..ihl]));
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Cut one packet read from the device (`pkt`, after its header `h`) into
/// IP packets, each written at `slots[i][at..]` with its length in `lens[i]`;
/// returns how many. A packet without GSO is copied once (its checksum
/// finished when the kernel left it to us).
pub fn segment(
    h: &VnetHdr,
    pkt: &mut [u8],
    slots: &mut [Vec<u8>],
    lens: &mut [usize],
    at: usize,
) -> Result<usize, SegmentError> {
    let gso = h.gso_type & !GSO_ECN;
    if gso == GSO_NONE {
        if h.flags & F_NEEDS_CSUM != 0 {
            finish_checksum(pkt, usize::from(h.csum_start), usize::from(h.csum_offset))?;
        }
        let slot = slots.first_mut().ok_or(SegmentError::NoRoom)?;
        let dst = slot
            .get_mut(at..at + pkt.len())
            .ok_or(SegmentError::Malformed)?;
        dst.copy_from_slice(pkt);
        lens[0] = pkt.len();
        return Ok(1);
    }
    if gso != GSO_TCPV4 && gso != GSO_TCPV6 {
        return Err(SegmentError::Unsupported);
    }
    let v6 = gso == GSO_TCPV6;
    if pkt.is_empty() || (pkt[0] >> 4 == 6) != v6 {
        return Err(SegmentError::Malformed);
    }
    let iph = if v6 {
        if pkt.len() < 40 || pkt[6] != 6 {
            return Err(SegmentError::Unsupported);
        }
        40
    } else {
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        if ihl < 20 || pkt.len() < ihl || pkt[9] != 6 {
            return Err(SegmentError::Malformed);
        }
        ihl
    };
    if pkt.len() < iph + 20 {
        return Err(SegmentError::Malformed);
    }
    let tcph = usize::from(pkt[iph + 12] >> 4) * 4;
    let hdr = iph + tcph;
    let mss = usize::from(h.gso_size);
    if tcph < 20 || pkt.len() < hdr || mss == 0 {
        return Err(SegmentError::Malformed);
    }
    let payload = pkt.len() - hdr;
    let n = payload.div_ceil(mss).max(1);
    if n > slots.len() || n > lens.len() {
        return Err(SegmentError::NoRoom);
    }
    let seq = u32::from_be_bytes(pkt[iph + 4..iph + 8].try_into().expect("4 bytes"));
    let id = u16::from_be_bytes([pkt[4], pkt[5]]);
    let flags = pkt[iph + 13];
    for i in 0..n {
        let off = hdr + i * mss;
        let len = mss.min(pkt.len() - off);
        let total = hdr + len;
        let seg = slots[i]
            .get_mut(at..at + total)
            .ok_or(SegmentError::Malformed)?;
        seg[..hdr].copy_from_slice(&pkt[..hdr]);
        seg[hdr..].copy_from_slice(&pkt[off..off + len]);
        if v6 {
            seg[4..6].copy_from_slice(&((tcph + len) as u16).to_be_bytes());
        } else {
            seg[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            seg[4..6].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
            ipv4_checksum(seg, iph);
        }
        let t = &mut seg[iph..];
        t[4..8].copy_from_slice(&seq.wrapping_add((i * mss) as u32).to_be_bytes());
        let mut f = flags;
        if i + 1 < n {
            f &= !(0x01 | 0x08); // FIN and PSH only on the last segment
        }
        if i > 0 {
            f &= !0x80; // CWR only on the first
        }
        t[13] = f;
        t[16..18].copy_from_slice(&[0, 0]);
        let c = !fold(pseudo(seg, v6, 6, tcph + len) + sum(0, &seg[iph..]));
        seg[iph + 16..iph + 18].copy_from_slice(&c.to_be_bytes());
        lens[i] = total;
    }
    Ok(n)
}

/// A TCP segment's place in a flow, for coalescing.
#[derive(Clone, Copy)]
struct Seg {
    v6: bool,
    iph: usize,
    tcph: usize,
    seq: u32,
    payload: usize,
    flags: u8,
}

/// Whether a decrypted packet is a TCP segment that may join a coalesced run
/// (ACK, maybe PSH; no SYN/FIN/RST/URG/ECE/CWR; IPv4 without options or
/// fragmentation; IPv6 without extension headers).
fn tcp_seg(p: &[u8]) -> Option<Seg> {
    let v6 = match p.first()? >> 4 {
        4 => false,
        6 => true,
        _ => return None,
    };
    let iph = if v6 {
        (p.len() >= 60 && p[6] == 6).then_some(40)?
    } else {
        let frag = u16::from_be_bytes([p[6], p[7]]);
        (p.len() >= 40 && p[0] == 0x45 && p[9] == 6 && frag & 0x3fff == 0).then_some(20)?
    };
    let tcph = usize::from(p[iph + 12] >> 4) * 4;
    if tcph < 20 || p.len() < iph + tcph {
        return None;
    }
    let flags = p[iph + 13];
    if flags & !0x18 != 0 || flags & 0x10 == 0 {
        return None;
    }
    let seq = u32::from_be_bytes(p[iph + 4..iph + 8].try_into().expect("4 bytes"));
    Some(Seg {
        v6,
        iph,
        tcph,
        seq,
        payload: p.len() - iph - tcph,
        flags,
    })
}

/// Whether `b` continues `a`'s flow right after it, with the same headers
/// but for the sequence number, checksums, IPv4 id and PSH.
fn continues(a: &[u8], sa: &Seg, b: &[u8], sb: &Seg) -> bool {
    if sa.v6 != sb.v6 || sa.tcph != sb.tcph || sa.flags & 0x08 != 0 {
        return false;
    }
    if sb.seq != sa.seq.wrapping_add(sa.payload as u32) || sb.payload > sa.payload {
        return false;
    }
    let (ia, ib) = (&a[..sa.iph], &b[..sb.iph]);
    let ip_same = if sa.v6 {
        ia[..4] == ib[..4] && ia[6..40] == ib[6..40]
    } else {
        ia[1] == ib[1] && ia[6..10] == ib[6..10] && ia[12..20] == ib[12..20]
    };
    let (ta, tb) = (&a[sa.iph..sa.iph + sa.tcph], &b[sb.iph..sb.iph + sb.tcph]);
    ip_same
        && ta[..4] == tb[..4]
        && ta[8..13] == tb[8..13]
        && ta[14..16] == tb[14..16]
        && ta[18..] == tb[18..]
}

/// Runs of consecutive TCP segments of one flow that can be glued (as
/// Linux's GRO glues them): each range of `0..count` in `out`, a single
/// packet's range when it joins nothing.
pub fn runs<'a>(count: usize, next: impl Fn(usize) -> &'a [u8], out: &mut Vec<Range<usize>>) {
    out.clear();
    let mut k = 0;
    while k < count {
        let first = next(k);
        let Some(sf) = tcp_seg(first).filter(|s| s.payload > 0) else {
            out.push(k..k + 1);
            k += 1;
            continue;
        };
        let mut j = k + 1;
        let mut total = first.len();
        let (mut prev, mut sp) = (first, sf);
        while j < count {
            let p = next(j);
            let Some(s) = tcp_seg(p) else { break };
            // Each segment but the last carries a full MSS (the first one's).
            if s.payload == 0
                || sp.payload != sf.payload
                || !continues(prev, &sp, p, &s)
                || total + s.payload > 65535
            {
                break;
            }
            total += s.payload;
            prev = p;
            sp = s;
            j += 1;
        }
        out.push(k..j);
        k = j;
    }
}

/// Glue a run (from `runs`, two packets or more) into one super-packet for a
/// VNET_HDR TUN device, its `virtio_net_hdr` in front, in `buf`.
pub fn glue<'a>(run: Range<usize>, next: impl Fn(usize) -> &'a [u8], buf: &mut Vec<u8>) {
    let first = next(run.start);
    let sf = tcp_seg(first).expect("runs() checked it");
    let hdr = sf.iph + sf.tcph;
    buf.clear();
    buf.resize(VNET_HDR_LEN, 0);
    buf.extend_from_slice(&first[..hdr]);
    let mut last_flags = sf.flags;
    for m in run {
        let p = next(m);
        buf.extend_from_slice(&p[hdr..]);
        last_flags = p[sf.iph + 13];
    }
    let total = buf.len() - VNET_HDR_LEN;
    let pkt = &mut buf[VNET_HDR_LEN..];
    let l4 = total - sf.iph;
    if sf.v6 {
        pkt[4..6].copy_from_slice(&(l4 as u16).to_be_bytes());
    } else {
        pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ipv4_checksum(pkt, sf.iph);
    }
    pkt[sf.iph + 13] = sf.flags | (last_flags & 0x08);
    // CHECKSUM_PARTIAL: the field holds the pseudo-header sum; the kernel finishes it.
    let ps = fold(pseudo(pkt, sf.v6, 6, l4));
    pkt[sf.iph + 16..sf.iph + 18].copy_from_slice(&ps.to_be_bytes());
    VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if sf.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        hdr_len: hdr as u16,
        gso_size: sf.payload as u16,
        csum_start: sf.iph as u16,
        csum_offset: 16,
    }
    .write(buf);
}

/// `runs` and `glue` together: `emit` gets each packet that joins nothing
/// by its index, and each glued run as a super-packet.
pub fn coalesce<'a>(
    count: usize,
    next: impl Fn(usize) -> &'a [u8] + Copy,
    buf: &mut Vec<u8>,
    mut emit: impl FnMut(Coalesced<'_>),
) {
    let mut rs = Vec::new();
    runs(count, next, &mut rs);
    for r in rs {
        if r.len() == 1 {
            emit(Coalesced::One(r.start));
        } else {
            glue(r, next, buf);
            emit(Coalesced::Super(buf));
        }
    }
}

/// What `coalesce` hands to be written.
pub enum Coalesced<'b> {
    /// Packet k, alone.
    One(usize),
    /// A super-packet with its `virtio_net_hdr`.
    Super(&'b [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 or IPv6 TCP packet with `payload`, checksums left as the
    /// kernel leaves them for a TSO packet (TCP: the pseudo-header sum only).
    fn tcp_packet(v6: bool, payload: &[u8], flags: u8) -> Vec<u8> {
        let iph = if v6 { 40 } else { 20 };
        let mut p = vec![0u8; iph + 20 + payload.len()];
        if v6 {
            p[0] = 0x60;
            p[4..6].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
            p[6] = 6;
            p[7] = 64;
            p[8..24].copy_from_slice(&[
                0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ]);
            p[24..40].copy_from_slice(&[
                0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
            ]);
        } else {
            p[0] = 0x45;
            let total = p.len() as u16;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
            p[8] = 64;
            p[9] = 6;
            p[12..16].copy_from_slice(&[100, 64, 0, 1]);
            p[16..20].copy_from_slice(&[100, 64, 0, 2]);
            ipv4_checksum(&mut p, 20);
        }
        let t = iph;
        p[t..t + 2].copy_from_slice(&40000u16.to_be_bytes());
        p[t + 2..t + 4].copy_from_slice(&5201u16.to_be_bytes());
        p[t + 4..t + 8].copy_from_slice(&0xfffff000u32.to_be_bytes());
        p[t + 12] = 5 << 4;
        p[t + 13] = flags;
        p[t + 14..t + 16].copy_from_slice(&64000u16.to_be_bytes());
        p[t + 20..].copy_from_slice(payload);
        let ps = fold(pseudo(&p, v6, 6, 20 + payload.len()));
        p[t + 16..t + 18].copy_from_slice(&ps.to_be_bytes());
        p
    }

    /// Whether an IP packet's checksums (IPv4 header, TCP) verify.
    fn verifies(p: &[u8]) -> bool {
        let v6 = p[0] >> 4 == 6;
        let iph = if v6 { 40 } else { usize::from(p[0] & 15) * 4 };
        let ip_ok = v6 || fold(sum(0, &p[..iph])) == 0xffff;
        let l4 = p.len() - iph;
        ip_ok && fold(pseudo(p, v6, 6, l4) + sum(0, &p[iph..])) == 0xffff
    }

    fn cut(h: &VnetHdr, p: &mut [u8]) -> Vec<Vec<u8>> {
        let mut slots = vec![vec![0u8; 2048]; 64];
        let mut lens = vec![0; 64];
        let n = segment(h, p, &mut slots, &mut lens, 16).unwrap();
        (0..n)
            .map(|i| slots[i][16..16 + lens[i]].to_vec())
            .collect()
    }

    #[test]
    fn a_tso_super_packet_is_cut_into_mss_segments_with_their_headers_and_checksums_fixed() {
        for v6 in [false, true] {
            let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
            let mut p = tcp_packet(v6, &payload, 0x18 | 0x01); // PSH|ACK|FIN
            let iph = if v6 { 40 } else { 20 };
            let h = VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                hdr_len: (iph + 20) as u16,
                gso_size: 1200,
                csum_start: iph as u16,
                csum_offset: 16,
            };
            let segs = cut(&h, &mut p);
            assert_eq!(segs.len(), 3);
            let mut joined = Vec::new();
            for (i, s) in segs.iter().enumerate() {
                assert!(verifies(s), "segment {i} (v6 {v6}) checksums");
                let seq = u32::from_be_bytes(s[iph + 4..iph + 8].try_into().unwrap());
                assert_eq!(seq, 0xfffff000u32.wrapping_add(1200 * i as u32));
                let last = i == 2;
                assert_eq!(s[iph + 13] & 0x09 != 0, last, "FIN/PSH only on the last");
                if v6 {
                    assert_eq!(usize::from(u16::from_be_bytes([s[4], s[5]])), s.len() - 40);
                } else {
                    assert_eq!(usize::from(u16::from_be_bytes([s[2], s[3]])), s.len());
                    assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0x1234 + i as u16);
                }
                joined.extend_from_slice(&s[iph + 20..]);
            }
            assert_eq!(joined, payload);
            assert_eq!(segs[2].len(), iph + 20 + 600);
        }
    }

    #[test]
    fn a_plain_packet_gets_the_checksum_the_kernel_left_to_us() {
        let mut p = tcp_packet(false, b"just one segment", 0x18);
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        let segs = cut(&h, &mut p);
        assert_eq!(segs.len(), 1);
        assert!(verifies(&segs[0]));
        // Without NEEDS_CSUM the packet is copied as it is.
        let q = tcp_packet(false, b"as is", 0x18);
        let segs = cut(&VnetHdr::default(), &mut q.clone());
        assert_eq!(segs, vec![q]);
    }

    #[test]
    fn what_cannot_be_cut_is_refused_with_a_reason() {
        let mut p = tcp_packet(false, &[0u8; 3000], 0x10);
        let udp = VnetHdr {
            gso_type: 5,
            gso_size: 1200,
            ..VnetHdr::default()
        };
        let mut slots = vec![vec![0u8; 2048]; 2];
        let mut lens = vec![0; 2];
        assert_eq!(
            segment(&udp, &mut p, &mut slots, &mut lens, 0),
            Err(SegmentError::Unsupported)
        );
        let tso = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 1200,
            ..VnetHdr::default()
        };
        assert_eq!(
            segment(&tso, &mut p, &mut slots, &mut lens, 0),
            Err(SegmentError::NoRoom)
        );
        let mut short = p[..30].to_vec();
        assert_eq!(
            segment(&tso, &mut short, &mut slots, &mut lens, 0),
            Err(SegmentError::Malformed)
        );
        let h = VnetHdr::parse(&[1, 4, 60, 0, 0xb0, 4, 40, 0, 16, 0]).unwrap();
        assert_eq!(
            (
                h.flags,
                h.gso_type,
                h.hdr_len,
                h.gso_size,
                h.csum_start,
                h.csum_offset
            ),
            (1, 4, 60, 1200, 40, 16)
        );
        let mut back = [0u8; 10];
        h.write(&mut back);
        assert_eq!(back, [1, 4, 60, 0, 0xb0, 4, 40, 0, 16, 0]);
    }

    #[test]
    fn segments_of_one_flow_are_glued_back_into_a_super_packet_that_cuts_into_the_same_segments() {
        for v6 in [false, true] {
            let iph = if v6 { 40 } else { 20 };
            let payload: Vec<u8> = (0..5000u32).map(|i| (i * 3) as u8).collect();
            let mut p = tcp_packet(v6, &payload, 0x18);
            let h = VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                hdr_len: (iph + 20) as u16,
                gso_size: 1400,
                csum_start: iph as u16,
                csum_offset: 16,
            };
            let segs = cut(&h, &mut p);
            assert_eq!(segs.len(), 4);
            // A segment of another flow after them stays alone.
            let mut other = tcp_packet(v6, b"elsewhere", 0x10);
            other[iph] ^= 1; // another source port
            let mut all = segs.clone();
            all.push(other.clone());
            let mut buf = Vec::new();
            let mut out: Vec<Vec<u8>> = Vec::new();
            let mut alone = Vec::new();
            coalesce(
                all.len(),
                |k| &all[k][..],
                &mut buf,
                |c| match c {
                    Coalesced::One(k) => alone.push(k),
                    Coalesced::Super(b) => out.push(b.to_vec()),
                },
            );
            assert_eq!(alone, vec![4]);
            assert_eq!(out.len(), 1);
            let sh = VnetHdr::parse(&out[0]).unwrap();
            assert_eq!((sh.gso_size, sh.flags), (1400, F_NEEDS_CSUM));
            let mut sup = out[0][VNET_HDR_LEN..].to_vec();
            assert_eq!(&sup[iph + 20..], &payload[..]);
            assert_eq!(sup[iph + 13], 0x18, "PSH from the last segment");
            let again = cut(&sh, &mut sup);
            assert_eq!(again, segs);
        }
    }

    #[test]
    fn a_gap_a_flag_or_a_short_segment_in_the_middle_ends_a_run() {
        let payload = vec![7u8; 4200];
        let mut p = tcp_packet(false, &payload, 0x10);
        let h = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 1400,
            csum_start: 20,
            csum_offset: 16,
            flags: F_NEEDS_CSUM,
            hdr_len: 40,
        };
        let segs = cut(&h, &mut p);
        let runs = |list: &[Vec<u8>]| {
            let mut buf = Vec::new();
            let mut shape = Vec::new();
            coalesce(
                list.len(),
                |k| &list[k][..],
                &mut buf,
                |c| {
                    shape.push(match c {
                        Coalesced::One(_) => 1,
                        Coalesced::Super(b) => {
                            let h = VnetHdr::parse(b).unwrap();
                            (b.len() - VNET_HDR_LEN - 40).div_ceil(usize::from(h.gso_size))
                        }
                    })
                },
            );
            shape
        };
        assert_eq!(runs(&segs), vec![3]);
        // A lost segment: two runs of one.
        assert_eq!(runs(&[segs[0].clone(), segs[2].clone()]), vec![1, 1]);
        // A FIN is never glued.
        let mut fin = segs[1].clone();
        fin[33] |= 0x01;
        assert_eq!(
            runs(&[segs[0].clone(), fin, segs[2].clone()]),
            vec![1, 1, 1]
        );
    }
}
