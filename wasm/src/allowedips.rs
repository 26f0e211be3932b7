//! Cryptokey routing (whitepaper §2): which peer owns an inner address, by
//! longest-prefix match over every peer's allowed IPs.

/// An IPv4 or IPv6 prefix, stored as 16 bytes (IPv4 in the first 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// true for IPv6.
    pub v6: bool,
    /// Address bytes, masked to `len`.
    pub addr: [u8; 16],
    /// Prefix length in bits.
    pub len: u8,
}

impl Prefix {
    /// Parse "a.b.c.d/n", "x:y::z/n", or a bare address (full length).
    pub fn parse(s: &str) -> Option<Prefix> {
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let (v6, addr, max) = if let Ok(a) = ip.parse::<core::net::Ipv4Addr>() {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (false, b, 32u8)
        } else {
            (
                true,
                ip.parse::<core::net::Ipv6Addr>().ok()?.octets(),
                128u8,
            )
        };
        let len = len.unwrap_or(max);
        if len > max {
            return None;
        }
        let mut p = Prefix { v6, addr, len };
        p.mask();
        Some(p)
    }

    fn mask(&mut self) {
        let width = if self.v6 { 16 } else { 4 };
        for i in 0..16 {
            let bits = (self.len as i32 - (i as i32) * 8).clamp(0, 8) as u32;
            if i >= width {
                self.addr[i] = 0;
            } else {
                self.addr[i] &= (0xffu16 << (8 - bits)) as u8;
            }
        }
    }

    /// Does the prefix contain `addr` (same family)?
    pub fn contains(&self, v6: bool, addr: &[u8]) -> bool {
        if v6 != self.v6 {
            return false;
        }
        let full = (self.len / 8) as usize;
        if addr[..full] != self.addr[..full] {
            return false;
        }
        let rem = self.len % 8;
        rem == 0 || (addr[full] & (0xffu8 << (8 - rem))) == self.addr[full]
    }
}

/// The routing table: prefixes sorted longest first, each owned by one peer.
#[derive(Default)]
pub struct AllowedIps {
    entries: Vec<(Prefix, u32)>,
}

impl AllowedIps {
    /// Give `prefix` to `peer` (taking it from any other peer, as WireGuard does).
    pub fn insert(&mut self, prefix: Prefix, peer: u32) {
        self.entries.retain(|(p, _)| *p != prefix);
        let at = self.entries.partition_point(|(p, _)| p.len >= prefix.len);
        self.entries.insert(at, (prefix, peer));
    }

    /// Remove every prefix of a peer.
    pub fn remove_peer(&mut self, peer: u32) {
        self.entries.retain(|(_, id)| *id != peer);
    }

    /// The peer owning the longest prefix that contains `addr`.
    pub fn lookup(&self, v6: bool, addr: &[u8]) -> Option<u32> {
        self.entries
            .iter()
            .find(|(p, _)| p.contains(v6, addr))
            .map(|(_, id)| *id)
    }

    /// The prefixes of one peer.
    pub fn of_peer(&self, peer: u32) -> impl Iterator<Item = &Prefix> {
        self.entries
            .iter()
            .filter(move |(_, id)| *id == peer)
            .map(|(p, _)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = AllowedIps::default();
        t.insert(Prefix::parse("10.0.0.0/8").unwrap(), 1);
        t.insert(Prefix::parse("10.1.0.0/16").unwrap(), 2);
        t.insert(Prefix::parse("0.0.0.0/0").unwrap(), 3);
        t.insert(Prefix::parse("fd7a:115c:a1e0::/48").unwrap(), 4);
        assert_eq!(t.lookup(false, &[10, 1, 2, 3]), Some(2));
        assert_eq!(t.lookup(false, &[10, 2, 2, 3]), Some(1));
        assert_eq!(t.lookup(false, &[192, 168, 1, 1]), Some(3));
        let v6: core::net::Ipv6Addr = "fd7a:115c:a1e0::5".parse().unwrap();
        assert_eq!(t.lookup(true, &v6.octets()), Some(4));
        let other: core::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(t.lookup(true, &other.octets()), None);
    }

    #[test]
    fn parse_masks_and_rejects() {
        assert_eq!(
            Prefix::parse("10.1.2.3/8").unwrap().addr[..4],
            [10, 0, 0, 0]
        );
        assert_eq!(Prefix::parse("100.64.0.1").unwrap().len, 32);
        assert!(Prefix::parse("10.0.0.0/33").is_none());
        assert!(Prefix::parse("nonsense/8").is_none());
        assert!(Prefix::parse("10.0.0.0/x").is_none());
    }

    #[test]
    fn reinserting_moves_ownership() {
        let mut t = AllowedIps::default();
        t.insert(Prefix::parse("100.64.0.2/32").unwrap(), 1);
        t.insert(Prefix::parse("100.64.0.2/32").unwrap(), 2);
        assert_eq!(t.lookup(false, &[100, 64, 0, 2]), Some(2));
        t.remove_peer(2);
        assert_eq!(t.lookup(false, &[100, 64, 0, 2]), None);
    }
}
