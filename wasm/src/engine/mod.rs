//! The node engine's packet path, in one place so a packet never returns to
//! the host between steps: a datagram from a path is decrypted by the
//! WireGuard device, judged by the packet filter, and handed to the
//! userspace TCP/IP stack (browser tabs, unprivileged gateways) or to the
//! host (a gateway's TUN device); what the stack or the host sends is noted
//! by the filter's connection tracking and encrypted. Every drop is counted
//! by reason. Time and randomness come from the host, as in the device.

pub mod filter;
pub mod forward;
pub mod packet;
pub mod stack;

use std::ops::Range;

use crate::device::{Device, Output, DROP_REASONS, SEND_HEADROOM};
use filter::{Filter, Refusal, Rules};
use forward::Forwarded;
use packet::Addr;
use stack::{Event, SocketError, Stack};

/// Why the engine (after the WireGuard device) dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EngineDrop {
    /// The packet filter admits it under no rule and it answers no flow of ours.
    FilterNoRule = 64,
    /// A decrypted packet that is not a parsable IP packet.
    Malformed,
    /// For an address that is not this node's, and there is no host to route it.
    NotLocal,
    /// The stack's receive queue is full.
    StackQueueFull,
    /// For an address on a route this node serves in userspace, but not
    /// something it carries there: a fragment, a protocol other than TCP, UDP
    /// and ICMP echo, or too many connections waiting for their dial.
    ForwardRefused,
}

/// Every engine drop reason, for the stats table.
pub const ENGINE_DROPS: [EngineDrop; 5] = [
    EngineDrop::FilterNoRule,
    EngineDrop::Malformed,
    EngineDrop::NotLocal,
    EngineDrop::StackQueueFull,
    EngineDrop::ForwardRefused,
];

impl EngineDrop {
    /// Stable name for logs and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineDrop::FilterNoRule => "filter_no_rule",
            EngineDrop::Malformed => "filter_malformed",
            EngineDrop::NotLocal => "not_local",
            EngineDrop::StackQueueFull => "stack_queue_full",
            EngineDrop::ForwardRefused => "forward_refused",
        }
    }
}

/// What the host must do after an engine call.
#[derive(Debug, PartialEq, Eq)]
pub enum EngineOutput {
    /// From the device: a datagram to send, an IP packet for the host, a drop.
    Wire(Output),
    /// A packet dropped after decryption.
    Dropped(EngineDrop),
    /// News from the stack's sockets.
    Socket(Event),
}

/// Where admitted packets for this node go.
pub enum Delivery {
    /// Into the userspace stack (browser tabs, `--userspace` gateways).
    Stack(Box<Stack>),
    /// Out to the host (a TUN device), for any destination.
    Host,
}

/// The engine.
pub struct Engine {
    /// The WireGuard device.
    pub wg: Device,
    /// The packet filter.
    pub filter: Filter,
    delivery: Delivery,
    drops: [u64; ENGINE_DROPS.len()],
}

impl Engine {
    /// An engine with this private key and seed, delivering to a userspace
    /// stack (`stack`) or to the host.
    pub fn new(private_key: [u8; 32], seed: [u8; 32], stack: bool, now: u64) -> Engine {
        let stack_seed = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")) ^ 0x5eed;
        Engine {
            wg: Device::new(private_key, seed),
            filter: Filter::default(),
            delivery: if stack {
                Delivery::Stack(Box::new(Stack::new(stack_seed, now)))
            } else {
                Delivery::Host
            },
            drops: [0; ENGINE_DROPS.len()],
        }
    }

    /// Replace the filter's rules (a JSON array of `FilterRule`); the tracked flows stay.
    pub fn set_filter(&mut self, json: &str) -> Result<(), String> {
        self.filter.rules = Rules::from_json(json)?;
        Ok(())
    }

    /// This node's own addresses (the stack answers for them).
    pub fn set_addresses(&mut self, addrs: &[Addr]) {
        if let Delivery::Stack(s) = &mut self.delivery {
            s.set_addresses(addrs);
        }
    }

    /// Subnet routes this node serves through its userspace stack (CIDR
    /// prefixes); ignored for an engine that delivers to the host.
    pub fn set_routes(&mut self, prefixes: &[String]) -> Result<(), String> {
        match &mut self.delivery {
            Delivery::Stack(s) => s.set_routes(prefixes),
            Delivery::Host => Ok(()),
        }
    }

    /// The userspace stack, if packets are delivered to one.
    pub fn stack(&mut self) -> Result<&mut Stack, SocketError> {
        match &mut self.delivery {
            Delivery::Stack(s) => Ok(s),
            Delivery::Host => Err(SocketError::UnknownHandle),
        }
    }

    fn drop_packet(&mut self, out: &mut Vec<EngineOutput>, reason: EngineDrop) {
        self.drops[(reason as usize) - (EngineDrop::FilterNoRule as usize)] += 1;
        out.push(EngineOutput::Dropped(reason));
    }

    /// Drops counted for an engine reason.
    pub fn drops(&self, reason: EngineDrop) -> u64 {
        self.drops[(reason as usize) - (EngineDrop::FilterNoRule as usize)]
    }

    /// Judge and deliver what the device decrypted; pass the rest on.
    fn deliver(&mut self, wire: Vec<Output>, now: u64, out: &mut Vec<EngineOutput>) {
        for o in wire {
            let Output::Packet { peer, data } = o else {
                out.push(EngineOutput::Wire(o));
                continue;
            };
            let Some(flow) = packet::parse(&data) else {
                self.drop_packet(out, EngineDrop::Malformed);
                continue;
            };
            if let Err(r) = self.filter.inbound(&flow, now) {
                let reason = match r {
                    Refusal::NoRule => EngineDrop::FilterNoRule,
                    Refusal::Malformed => EngineDrop::Malformed,
                };
                self.drop_packet(out, reason);
                continue;
            }
            match &mut self.delivery {
                Delivery::Host => out.push(EngineOutput::Wire(Output::Packet { peer, data })),
                Delivery::Stack(s) => {
                    if s.is_local(flow.dst) {
                        if !s.push(data) {
                            self.drop_packet(out, EngineDrop::StackQueueFull);
                        }
                    } else if s.is_routed(flow.dst) {
                        match s.forward(data, now) {
                            Forwarded::Event(e) => out.push(EngineOutput::Socket(e)),
                            Forwarded::Stack(true) | Forwarded::Held => {}
                            Forwarded::Stack(false) => {
                                self.drop_packet(out, EngineDrop::StackQueueFull)
                            }
                            Forwarded::Refused => self.drop_packet(out, EngineDrop::ForwardRefused),
                        }
                    } else {
                        self.drop_packet(out, EngineDrop::NotLocal);
                    }
                }
            }
        }
    }

    /// Datagrams from paths, each from its endpoint handle.
    pub fn receive(&mut self, datagrams: &[(&[u8], u32)], now: u64, out: &mut Vec<EngineOutput>) {
        let mut wire = Vec::new();
        for (d, ep) in datagrams {
            self.wg.receive(d, *ep, now, &mut wire);
        }
        self.deliver(wire, now, out);
        self.run_stack(now, out);
    }

    /// IP packets from the host (a TUN device) to send to peers.
    pub fn send(&mut self, packets: &[&[u8]], now: u64, out: &mut Vec<EngineOutput>) {
        let mut wire = Vec::new();
        for p in packets {
            if let Some(flow) = packet::parse(p) {
                self.filter.outbound(&flow, now);
            }
            self.wg.send(p, now, &mut wire);
        }
        out.extend(wire.into_iter().map(EngineOutput::Wire));
    }

    /// The hot path of `send` for a host engine (gateways with a TUN device):
    /// the IP packet at `buf[SEND_HEADROOM..][..len]` is noted by connection
    /// tracking and encrypted in place (see `Device::send_in_place`); returns
    /// the endpoint and the transport message's length at `buf[0..]`. None:
    /// it took the slow path, whose results are in `out`. `scratch` is the
    /// caller's reusable buffer for the device's outputs (nothing is
    /// allocated per packet on the fast path).
    pub fn send_in_place(
        &mut self,
        buf: &mut [u8],
        len: usize,
        now: u64,
        scratch: &mut Vec<Output>,
        out: &mut Vec<EngineOutput>,
    ) -> Option<(u32, usize)> {
        if let Some(flow) = buf
            .get(SEND_HEADROOM..SEND_HEADROOM + len)
            .and_then(packet::parse)
        {
            self.filter.outbound(&flow, now);
        }
        let sent = self.wg.send_in_place(buf, len, now, scratch);
        out.extend(scratch.drain(..).map(EngineOutput::Wire));
        sent
    }

    /// The hot path of `receive` for a host engine: the datagram in `buf` is
    /// decrypted in place and judged by the filter; returns where the
    /// admitted IP packet lies in `buf` (for the host). Everything else —
    /// handshakes, replies, drops, packets for a userspace stack — goes as
    /// `receive` would, into `out`.
    pub fn receive_in_place(
        &mut self,
        buf: &mut [u8],
        endpoint: u32,
        now: u64,
        scratch: &mut Vec<Output>,
        out: &mut Vec<EngineOutput>,
    ) -> Option<Range<usize>> {
        let got = self.wg.receive_in_place(buf, endpoint, now, scratch);
        out.extend(scratch.drain(..).map(EngineOutput::Wire));
        let (peer, range) = got?;
        if !matches!(self.delivery, Delivery::Host) {
            self.deliver(
                vec![Output::Packet {
                    peer,
                    data: buf[range].to_vec(),
                }],
                now,
                out,
            );
            self.run_stack(now, out);
            return None;
        }
        let Some(flow) = packet::parse(&buf[range.clone()]) else {
            self.drop_packet(out, EngineDrop::Malformed);
            return None;
        };
        if let Err(r) = self.filter.inbound(&flow, now) {
            let reason = match r {
                Refusal::NoRule => EngineDrop::FilterNoRule,
                Refusal::Malformed => EngineDrop::Malformed,
            };
            self.drop_packet(out, reason);
            return None;
        }
        Some(range)
    }

    /// Fire due timers (the device's, the stack's), sweep connection tracking,
    /// and let sockets send what the host gave them.
    pub fn poll(&mut self, now: u64, out: &mut Vec<EngineOutput>) {
        let mut wire = Vec::new();
        self.wg.tick(now, &mut wire);
        self.deliver(wire, now, out);
        self.filter.conntrack.sweep(now);
        self.run_stack(now, out);
    }

    /// Poll the stack: its events to the host, its packets to the device.
    fn run_stack(&mut self, now: u64, out: &mut Vec<EngineOutput>) {
        let Delivery::Stack(s) = &mut self.delivery else {
            return;
        };
        let mut events = Vec::new();
        let packets = s.poll(now, &mut events);
        out.extend(events.into_iter().map(EngineOutput::Socket));
        let mut wire = Vec::new();
        for p in packets {
            if let Some(flow) = packet::parse(&p) {
                self.filter.outbound(&flow, now);
            }
            self.wg.send(&p, now, &mut wire);
        }
        out.extend(wire.into_iter().map(EngineOutput::Wire));
    }

    /// When to poll next (ms): the stack's next timer, or within 250 ms for the device's.
    pub fn next_poll(&mut self, now: u64) -> u64 {
        let device = now + 250;
        match &mut self.delivery {
            Delivery::Stack(s) => s.poll_at(now).map_or(device, |t| t.min(device)),
            Delivery::Host => device,
        }
    }

    /// Drop counters of the device and the engine, by name.
    pub fn drop_counts(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<(&'static str, u64)> = DROP_REASONS
            .iter()
            .map(|r| (r.as_str(), self.wg.drops(*r)))
            .collect();
        v.extend(ENGINE_DROPS.iter().map(|r| (r.as_str(), self.drops(*r))));
        v
    }
}

#[cfg(test)]
mod tests;
