//! What the packet filter needs of an IP packet: addresses, protocol, ports,
//! TCP flags, ICMP echo identity, fragment position. Parsed without copying;
//! anything malformed is `None`.

/// IANA protocol numbers the filter looks inside.
pub const TCP: u8 = 6;
/// UDP.
pub const UDP: u8 = 17;
/// ICMP for IPv4.
pub const ICMP4: u8 = 1;
/// ICMP for IPv6.
pub const ICMP6: u8 = 58;
/// SCTP (has ports, not looked into beyond them).
pub const SCTP: u8 = 132;

/// An address of either family as a 128-bit number (IPv4 in the low 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    /// true for IPv6.
    pub v6: bool,
    /// The address as a big-endian number.
    pub n: u128,
}

impl Addr {
    /// From 4 or 16 network-order bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Addr> {
        match b.len() {
            4 => Some(Addr {
                v6: false,
                n: u128::from(u32::from_be_bytes(b.try_into().ok()?)),
            }),
            16 => Some(Addr {
                v6: true,
                n: u128::from_be_bytes(b.try_into().ok()?),
            }),
            _ => None,
        }
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    pub fn to_bytes(self) -> Vec<u8> {
        if self.v6 {
            self.n.to_be_bytes().to_vec()
        } else {
            (self.n as u32).to_be_bytes().to_vec()
        }
    }

    /// Parse textual IPv4 or IPv6.
    pub fn parse(s: &str) -> Option<Addr> {
        if let Ok(a) = s.parse::<core::net::Ipv4Addr>() {
            return Some(Addr {
                v6: false,
                n: u128::from(u32::from(a)),
            });
        }
        s.parse::<core::net::Ipv6Addr>().ok().map(|a| Addr {
            v6: true,
            n: u128::from(a),
        })
    }
}

/// The parts of a packet the filter and connection tracking use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// IANA protocol of the payload (after IPv6 extension headers).
    pub proto: u8,
    /// Source port (TCP, UDP, SCTP), or the ICMP echo identifier.
    pub sport: u16,
    /// Destination port (TCP, UDP, SCTP), or the ICMP echo identifier.
    pub dport: u16,
    /// A TCP segment that opens a connection: SYN set, ACK clear.
    pub tcp_syn: bool,
    /// ICMP type (ICMPv4 or ICMPv6), for ICMP packets.
    pub icmp_type: Option<u8>,
    /// A fragment after the first: it carries no transport header.
    pub later_fragment: bool,
}

impl Flow {
    /// ICMP echo request (v4 type 8, v6 type 128).
    pub fn is_echo_request(&self) -> bool {
        matches!(
            (self.proto, self.icmp_type),
            (ICMP4, Some(8)) | (ICMP6, Some(128))
        )
    }

    /// ICMP echo reply (v4 type 0, v6 type 129).
    pub fn is_echo_reply(&self) -> bool {
        matches!(
            (self.proto, self.icmp_type),
            (ICMP4, Some(0)) | (ICMP6, Some(129))
        )
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parse an IPv4 or IPv6 packet.
pub fn parse(packet: &[u8]) -> Option<Flow> {
    parse_whole(packet).map(|(f, _, _)| f)
}

/// Parse an IPv4 or IPv6 packet; also where its transport header starts
/// (after IPv6 extension headers), and whether it is a fragment of a larger
/// datagram (first or later), for whoever needs the whole payload.
pub fn parse_whole(packet: &[u8]) -> Option<(Flow, usize, bool)> {
    let mut fragmented = false;
    let (src, dst, mut proto, mut off, later_fragment) = match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            if ihl < 20 || packet.len() < ihl {
                return None;
            }
            let frag = be16(packet, 6)? & 0x1fff;
            fragmented = frag != 0 || packet[6] & 0x20 != 0;
            (
                Addr::from_bytes(&packet[12..16])?,
                Addr::from_bytes(&packet[16..20])?,
                packet[9],
                ihl,
                frag != 0,
            )
        }
        6 => {
            if packet.len() < 40 {
                return None;
            }
            (
                Addr::from_bytes(&packet[8..24])?,
                Addr::from_bytes(&packet[24..40])?,
                packet[6],
                40,
                false,
            )
        }
        _ => return None,
    };
    let mut later_fragment = later_fragment;
    if src.v6 {
        // Extension headers (bounded): hop-by-hop, routing, destination options, fragment.
        for _ in 0..8 {
            match proto {
                0 | 43 | 60 => {
                    let next = *packet.get(off)?;
                    let len = (usize::from(*packet.get(off + 1)?) + 1) * 8;
                    proto = next;
                    off += len;
                }
                44 => {
                    let next = *packet.get(off)?;
                    let frag_offset = be16(packet, off + 2)? >> 3;
                    later_fragment = frag_offset != 0;
                    fragmented = true;
                    proto = next;
                    off += 8;
                }
                _ => break,
            }
        }
    }
    let mut flow = Flow {
        src,
        dst,
        proto,
        sport: 0,
        dport: 0,
        tcp_syn: false,
        icmp_type: None,
        later_fragment,
    };
    if later_fragment {
        return Some((flow, off, fragmented));
    }
    let l4 = packet.get(off..)?;
    match proto {
        TCP => {
            flow.sport = be16(l4, 0)?;
            flow.dport = be16(l4, 2)?;
            let flags = *l4.get(13)?;
            flow.tcp_syn = flags & 0x02 != 0 && flags & 0x10 == 0;
        }
        UDP | SCTP => {
            flow.sport = be16(l4, 0)?;
            flow.dport = be16(l4, 2)?;
        }
        ICMP4 | ICMP6 => {
            let ty = *l4.first()?;
            flow.icmp_type = Some(ty);
            if flow.is_echo_request() || flow.is_echo_reply() {
                let ident = be16(l4, 4)?;
                flow.sport = ident;
                flow.dport = ident;
            }
        }
        _ => {}
    }
    Some((flow, off, fragmented))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        p.extend_from_slice(&[100, 64, 0, 1, 100, 64, 0, 2]);
        p.extend_from_slice(l4);
        p
    }

    #[test]
    fn tcp_ports_and_syn() {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&22u16.to_be_bytes());
        tcp[13] = 0x02;
        let f = parse(&v4(TCP, &tcp)).unwrap();
        assert_eq!((f.sport, f.dport, f.tcp_syn), (40000, 22, true));
        tcp[13] = 0x12; // SYN-ACK
        assert!(!parse(&v4(TCP, &tcp)).unwrap().tcp_syn);
        assert_eq!(f.src, Addr::parse("100.64.0.1").unwrap());
    }

    #[test]
    fn icmp_echo_identity() {
        let f = parse(&v4(ICMP4, &[8, 0, 0, 0, 0x12, 0x34, 0, 1])).unwrap();
        assert!(f.is_echo_request());
        assert_eq!(f.dport, 0x1234);
        assert!(parse(&v4(ICMP4, &[0, 0, 0, 0, 0x12, 0x34, 0, 1]))
            .unwrap()
            .is_echo_reply());
    }

    #[test]
    fn ipv6_through_extension_headers_and_fragments() {
        let mut p = vec![0x60, 0, 0, 0, 0, 16, 44, 64];
        p.extend_from_slice(&Addr::parse("fd7a:115c:a1e0::1").unwrap().to_bytes());
        p.extend_from_slice(&Addr::parse("fd7a:115c:a1e0::2").unwrap().to_bytes());
        // A first fragment: Fragment header (offset 0) then UDP.
        let mut first = p.clone();
        first.extend_from_slice(&[UDP, 0, 0, 1, 0, 0, 0, 7]);
        first.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 8, 0, 0]);
        let f = parse(&first).unwrap();
        assert_eq!(
            (f.proto, f.sport, f.dport, f.later_fragment),
            (UDP, 5000, 53, false)
        );
        let mut later = p.clone();
        later.extend_from_slice(&[UDP, 0, 0, 0x10, 0, 0, 0, 7]);
        assert!(parse(&later).unwrap().later_fragment);
    }

    #[test]
    fn malformed_is_none() {
        assert!(parse(&[]).is_none());
        assert!(parse(&[0x45, 0, 0]).is_none());
        assert!(parse(&[0x4f; 30]).is_none());
        assert!(parse(&v4(TCP, &[0, 1])).is_none());
        assert!(parse(&[0x70; 40]).is_none());
    }
}
