//! The node's packet filter, with the semantics of Tailscale's
//! (wgengine/filter): the control server compiles the policy into this
//! node's `FilterRule`s; every decrypted packet is checked before it reaches
//! the stack or the host.
//!
//! - A TCP segment that opens a connection (SYN without ACK) must match a
//!   rule; other TCP segments pass (they belong to a connection the rules
//!   allowed, or the receiving stack resets them).
//! - UDP and ICMP echo pass when a rule allows them, or when they answer a
//!   flow this node opened (connection tracking, bounded, with expiry).
//! - Fragments after the first carry no ports and pass; the first is judged.
//! - Everything else must match a rule by protocol (and port where the
//!   protocol has ports).
//!
//! Address sets are compiled to sorted, merged ranges searched by binary
//! search, so a packet costs a few comparisons per rule and no allocation.

use std::collections::{HashMap, VecDeque};

use serde::Deserialize;

use super::packet::{Addr, Flow, ICMP4, ICMP6, SCTP, TCP, UDP};

/// `tailcfg.FilterRule` as the control server sends it (unknown fields ignored).
#[derive(Deserialize)]
struct RuleJson {
    #[serde(rename = "SrcIPs")]
    src_ips: Vec<String>,
    #[serde(rename = "DstPorts", default)]
    dst_ports: Vec<DstJson>,
    #[serde(rename = "IPProto", default)]
    ip_proto: Vec<i64>,
}

#[derive(Deserialize)]
struct DstJson {
    #[serde(rename = "IP")]
    ip: String,
    #[serde(rename = "Ports")]
    ports: PortsJson,
}

#[derive(Deserialize)]
struct PortsJson {
    #[serde(rename = "First")]
    first: i64,
    #[serde(rename = "Last")]
    last: i64,
}

/// The protocols a rule without IPProto covers: TCP, UDP, ICMPv4, ICMPv6.
const DEFAULT_PROTOS: [u8; 4] = [TCP, UDP, ICMP4, ICMP6];

fn has_ports(proto: u8) -> bool {
    proto == TCP || proto == UDP || proto == SCTP
}

/// A set of addresses as sorted, merged, non-adjacent inclusive ranges.
#[derive(Default, Debug)]
pub struct AddrSet {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

impl AddrSet {
    /// Parse filter addresses: `*`, an address, a CIDR prefix, or `first-last`.
    pub fn parse(texts: &[String]) -> Result<AddrSet, String> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for t in texts {
            if t == "*" {
                v4.push((0, u128::from(u32::MAX)));
                v6.push((0, u128::MAX));
                continue;
            }
            let (v, lo, hi) = range_of(t).ok_or_else(|| format!("bad filter address \"{t}\""))?;
            if v {
                v6.push((lo, hi));
            } else {
                v4.push((lo, hi));
            }
        }
        Ok(AddrSet {
            v4: merge(v4),
            v6: merge(v6),
        })
    }

    /// Whether `a` is in the set.
    pub fn contains(&self, a: Addr) -> bool {
        let ranges = if a.v6 { &self.v6 } else { &self.v4 };
        // The last range starting at or before `a`.
        let i = ranges.partition_point(|&(lo, _)| lo <= a.n);
        i > 0 && ranges[i - 1].1 >= a.n
    }
}

fn range_of(text: &str) -> Option<(bool, u128, u128)> {
    if let Some((lo, hi)) = text.split_once('-') {
        let (lo, hi) = (Addr::parse(lo)?, Addr::parse(hi)?);
        return (lo.v6 == hi.v6 && lo.n <= hi.n).then_some((lo.v6, lo.n, hi.n));
    }
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, Some(len.parse::<u32>().ok()?)),
        None => (text, None),
    };
    let a = Addr::parse(ip)?;
    let width = if a.v6 { 128 } else { 32 };
    let len = len.unwrap_or(width);
    if len > width {
        return None;
    }
    let host_bits = width - len;
    let host = if host_bits == 0 {
        0
    } else if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    Some((a.v6, a.n & !host, (a.n & !host) | host))
}

fn merge(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

struct Rule {
    /// protos[p] is true when the rule covers IANA protocol p.
    protos: [bool; 256],
    src: AddrSet,
    dsts: Vec<(AddrSet, u16, u16)>,
}

/// A node's filter rules, compiled.
#[derive(Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Compile a JSON array of `FilterRule`s. A rule with no destinations (a
    /// capability grant alone) admits no packets.
    pub fn from_json(text: &str) -> Result<Rules, String> {
        let parsed: Vec<RuleJson> =
            serde_json::from_str(text).map_err(|e| format!("packet filter is not valid: {e}"))?;
        let mut rules = Vec::with_capacity(parsed.len());
        for r in parsed {
            let mut protos = [false; 256];
            if !r.dst_ports.is_empty() {
                if r.ip_proto.is_empty() {
                    for p in DEFAULT_PROTOS {
                        protos[usize::from(p)] = true;
                    }
                } else {
                    for p in r.ip_proto {
                        if (0..=255).contains(&p) {
                            protos[p as usize] = true;
                        }
                    }
                }
            }
            let mut dsts = Vec::with_capacity(r.dst_ports.len());
            for d in r.dst_ports {
                let first = d.ports.first.clamp(0, 65535) as u16;
                let last = d.ports.last.clamp(0, 65535) as u16;
                dsts.push((AddrSet::parse(&[d.ip])?, first, last));
            }
            rules.push(Rule {
                protos,
                src: AddrSet::parse(&r.src_ips)?,
                dsts,
            });
        }
        Ok(Rules { rules })
    }

    /// The index of the first rule admitting the flow, if any.
    pub fn matches(&self, f: &Flow) -> Option<usize> {
        let ports = has_ports(f.proto);
        self.rules.iter().position(|r| {
            r.protos[usize::from(f.proto)]
                && r.src.contains(f.src)
                && r.dsts.iter().any(|(set, first, last)| {
                    set.contains(f.dst) && (!ports || (f.dport >= *first && f.dport <= *last))
                })
        })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rule admits anything.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// A flow this node opened, as its answers will look: (proto, their address,
/// their port, our address, our port). ICMP echo uses the identifier as both ports.
type FlowKey = (u8, Addr, u16, Addr, u16);

/// How long an idle tracked flow is remembered (ms): UDP as Tailscale's
/// filter (and Linux conntrack's unreplied timeout), ICMP echo shorter.
pub const UDP_FLOW_TTL_MS: u64 = 120_000;
/// See UDP_FLOW_TTL_MS.
pub const ICMP_FLOW_TTL_MS: u64 = 30_000;
/// Flows remembered at most; the oldest go first when it is full.
pub const MAX_FLOWS: usize = 8192;

/// Flows this node opened (UDP, ICMP echo), so their answers pass.
#[derive(Default)]
pub struct Conntrack {
    expiry: HashMap<FlowKey, u64>,
    order: VecDeque<FlowKey>,
}

impl Conntrack {
    fn note(&mut self, key: FlowKey, until: u64) {
        if self.expiry.insert(key, until).is_none() {
            self.order.push_back(key);
            while self.expiry.len() > MAX_FLOWS {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                self.expiry.remove(&old);
            }
        }
    }

    fn answers(&mut self, key: &FlowKey, now: u64) -> bool {
        match self.expiry.get(key) {
            Some(&until) if until > now => true,
            Some(_) => {
                self.expiry.remove(key);
                false
            }
            None => false,
        }
    }

    /// Forget expired flows (bounded work per call).
    pub fn sweep(&mut self, now: u64) {
        for _ in 0..64 {
            let Some(key) = self.order.front().copied() else {
                return;
            };
            match self.expiry.get(&key) {
                Some(&until) if until > now => {
                    // Refreshed entries sit out of order: rotate instead of scanning.
                    self.order.rotate_left(1);
                }
                Some(_) => {
                    self.expiry.remove(&key);
                    self.order.pop_front();
                }
                None => {
                    self.order.pop_front();
                }
            }
        }
    }

    /// Number of tracked flows.
    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    /// True when no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }
}

/// Why the filter refused a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No rule admits it and it answers no flow this node opened.
    NoRule,
    /// Not a parsable IP packet.
    Malformed,
}

/// Rules and connection tracking.
#[derive(Default)]
pub struct Filter {
    /// The compiled rules (replaced whenever the netmap brings new ones).
    pub rules: Rules,
    /// Flows this node opened.
    pub conntrack: Conntrack,
}

impl Filter {
    /// Judge a decrypted packet arriving from a peer.
    pub fn inbound(&mut self, f: &Flow, now: u64) -> Result<(), Refusal> {
        if f.later_fragment {
            return Ok(());
        }
        if f.proto == TCP && !f.tcp_syn {
            return Ok(());
        }
        if self.rules.matches(f).is_some() {
            return Ok(());
        }
        let answers = match f.proto {
            UDP => self
                .conntrack
                .answers(&(UDP, f.src, f.sport, f.dst, f.dport), now),
            ICMP4 | ICMP6 if f.is_echo_reply() => self
                .conntrack
                .answers(&(f.proto, f.src, f.sport, f.dst, f.dport), now),
            _ => false,
        };
        if answers {
            Ok(())
        } else {
            Err(Refusal::NoRule)
        }
    }

    /// Note a packet this node sends, so the answers to it pass.
    pub fn outbound(&mut self, f: &Flow, now: u64) {
        if f.later_fragment {
            return;
        }
        match f.proto {
            UDP => self
                .conntrack
                .note((UDP, f.dst, f.dport, f.src, f.sport), now + UDP_FLOW_TTL_MS),
            ICMP4 | ICMP6 if f.is_echo_request() => self.conntrack.note(
                (f.proto, f.dst, f.dport, f.src, f.sport),
                now + ICMP_FLOW_TTL_MS,
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(proto: u8, src: &str, dst: &str, sport: u16, dport: u16) -> Flow {
        Flow {
            src: Addr::parse(src).unwrap(),
            dst: Addr::parse(dst).unwrap(),
            proto,
            sport,
            dport,
            tcp_syn: proto == TCP,
            icmp_type: None,
            later_fragment: false,
        }
    }

    const RULES: &str = r#"[
      {"SrcIPs":["100.64.0.1","100.64.0.10-100.64.0.20","fd7a:115c:a1e0::/64"],
       "DstPorts":[{"IP":"100.64.0.2","Ports":{"First":22,"Last":22}},
                   {"IP":"10.0.0.0/8","Ports":{"First":8000,"Last":8999}}]},
      {"SrcIPs":["*"],"DstPorts":[{"IP":"fd7a:115c:a1e0::2","Ports":{"First":443,"Last":443}}],"IPProto":[17]},
      {"SrcIPs":["*"],"CapGrant":[{"Dsts":["100.64.0.2/32"],"CapMap":{}}]}
    ]"#;

    #[test]
    fn rules_match_like_tailscale() {
        let r = Rules::from_json(RULES).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r.matches(&flow(TCP, "100.64.0.1", "100.64.0.2", 1, 22)),
            Some(0)
        );
        assert_eq!(
            r.matches(&flow(UDP, "100.64.0.15", "10.1.2.3", 1, 8080)),
            Some(0)
        );
        assert_eq!(
            r.matches(&flow(TCP, "100.64.0.21", "100.64.0.2", 1, 22)),
            None
        );
        assert_eq!(
            r.matches(&flow(TCP, "100.64.0.1", "100.64.0.2", 1, 23)),
            None
        );
        // ICMP has no ports; SCTP is not in the default set.
        let mut ping = flow(ICMP4, "100.64.0.1", "100.64.0.2", 7, 7);
        ping.icmp_type = Some(8);
        assert_eq!(r.matches(&ping), Some(0));
        assert_eq!(
            r.matches(&flow(SCTP, "100.64.0.1", "100.64.0.2", 1, 22)),
            None
        );
        // IPProto narrows a rule.
        assert_eq!(
            r.matches(&flow(UDP, "192.0.2.1", "fd7a:115c:a1e0::2", 1, 443)),
            Some(1)
        );
        assert_eq!(
            r.matches(&flow(TCP, "192.0.2.1", "fd7a:115c:a1e0::2", 1, 443)),
            None
        );
    }

    #[test]
    fn refuses_bad_filters() {
        assert!(Rules::from_json("not json").is_err());
        assert!(Rules::from_json(r#"[{"SrcIPs":["10.0.0.300"]}]"#).is_err());
        assert!(Rules::from_json(r#"[{"SrcIPs":["10.0.0.9-10.0.0.1"]}]"#).is_err());
        assert!(Rules::from_json(r#"[{"SrcIPs":["10.0.0.0/33"]}]"#).is_err());
    }

    #[test]
    fn address_sets_merge_and_find_edges() {
        let s = AddrSet::parse(&[
            "10.0.0.0/24".into(),
            "10.0.1.0/24".into(),
            "::/1".into(),
            "8000::-8000::5".into(),
        ])
        .unwrap();
        for (a, want) in [
            ("9.255.255.255", false),
            ("10.0.0.0", true),
            ("10.0.1.255", true),
            ("10.0.2.0", false),
            ("::", true),
            ("8000::5", true),
            ("8000::6", false),
        ] {
            assert_eq!(s.contains(Addr::parse(a).unwrap()), want, "{a}");
        }
        let all = AddrSet::parse(&["*".into()]).unwrap();
        assert!(all.contains(Addr::parse("255.255.255.255").unwrap()));
        assert!(all.contains(Addr::parse("ffff::1").unwrap()));
    }

    #[test]
    fn stateful_answers_to_flows_this_node_opened() {
        let mut f = Filter {
            rules: Rules::from_json("[]").unwrap(),
            ..Filter::default()
        };
        let ours = flow(UDP, "100.64.0.2", "100.64.0.9", 5000, 53);
        let answer = flow(UDP, "100.64.0.9", "100.64.0.2", 53, 5000);
        assert_eq!(f.inbound(&answer, 0), Err(Refusal::NoRule));
        f.outbound(&ours, 0);
        assert_eq!(f.inbound(&answer, 1000), Ok(()));
        // Another port of the same host is not an answer.
        assert_eq!(
            f.inbound(&flow(UDP, "100.64.0.9", "100.64.0.2", 54, 5000), 1000),
            Err(Refusal::NoRule)
        );
        assert_eq!(
            f.inbound(&answer, UDP_FLOW_TTL_MS + 1),
            Err(Refusal::NoRule)
        );
        // TCP: only connection-opening SYNs are judged.
        let mut ack = flow(TCP, "100.64.0.9", "100.64.0.2", 80, 40000);
        ack.tcp_syn = false;
        assert_eq!(f.inbound(&ack, 0), Ok(()));
        assert_eq!(
            f.inbound(&flow(TCP, "100.64.0.9", "100.64.0.2", 1, 22), 0),
            Err(Refusal::NoRule)
        );
    }

    #[test]
    fn echo_replies_pass_only_for_our_requests() {
        let mut f = Filter::default();
        let mut req = flow(ICMP4, "100.64.0.2", "100.64.0.9", 77, 77);
        req.icmp_type = Some(8);
        let mut reply = flow(ICMP4, "100.64.0.9", "100.64.0.2", 77, 77);
        reply.icmp_type = Some(0);
        assert_eq!(f.inbound(&reply, 0), Err(Refusal::NoRule));
        f.outbound(&req, 0);
        assert_eq!(f.inbound(&reply, 10), Ok(()));
        let mut other = reply;
        other.sport = 78;
        other.dport = 78;
        assert_eq!(f.inbound(&other, 10), Err(Refusal::NoRule));
    }

    #[test]
    fn conntrack_stays_bounded() {
        let mut f = Filter::default();
        for port in 0..(MAX_FLOWS as u32 + 500) {
            let p = (port % 65535) as u16;
            let mut fl = flow(UDP, "100.64.0.2", "100.64.0.9", p, 53);
            fl.dst.n += u128::from(port / 65535);
            f.outbound(&fl, 0);
        }
        assert_eq!(f.conntrack.len(), MAX_FLOWS);
        f.conntrack.sweep(UDP_FLOW_TTL_MS * 2);
        assert!(f.conntrack.len() < MAX_FLOWS);
    }
}
