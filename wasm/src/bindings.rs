//! The JavaScript face of the device. Results come back as one byte buffer of
//! records, so a call (and a batch of many packets) crosses the JS/WASM
//! boundary once: each record is `kind: u8, id: u32 LE, len: u32 LE, bytes`,
//! where kind 1 is a datagram for endpoint `id`, 2 an IP packet from peer `id`,
//! 3 a drop with reason code `id` (no bytes).

use wasm_bindgen::prelude::*;

use crate::allowedips::Prefix;
use crate::device::{Device, Output, DROP_REASONS};

/// Record kinds in a result buffer.
pub const KIND_DATAGRAM: u8 = 1;
/// An IP packet for the host's stack.
pub const KIND_PACKET: u8 = 2;
/// A drop, with its reason code.
pub const KIND_DROP: u8 = 3;

fn encode(outputs: &[Output]) -> Vec<u8> {
    let size: usize = outputs
        .iter()
        .map(|o| {
            9 + match o {
                Output::Datagram { data, .. } | Output::Packet { data, .. } => data.len(),
                Output::Drop(_) => 0,
            }
        })
        .sum();
    let mut buf = Vec::with_capacity(size);
    for o in outputs {
        let (kind, id, data): (u8, u32, &[u8]) = match o {
            Output::Datagram { endpoint, data } => (KIND_DATAGRAM, *endpoint, data),
            Output::Packet { peer, data } => (KIND_PACKET, *peer, data),
            Output::Drop(r) => (KIND_DROP, *r as u32, &[]),
        };
        buf.push(kind);
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
        buf.extend_from_slice(data);
    }
    buf
}

fn key32(b: &[u8], what: &str) -> Result<[u8; 32], JsError> {
    b.try_into()
        .map_err(|_| JsError::new(&format!("{what} must be 32 bytes")))
}

/// Host time to milliseconds. Anything beyond the year 285,000 is clamped,
/// so timer sums stay far from u64 overflow.
fn ms(now: f64) -> u64 {
    const MAX_MS: f64 = 9.0e15; // the largest integer a JS number holds exactly
    if now.is_finite() && now > 0.0 {
        now.min(MAX_MS) as u64
    } else {
        0
    }
}

/// A WireGuard device for JS hosts.
#[wasm_bindgen]
pub struct WgDevice {
    dev: Device,
}

#[wasm_bindgen]
impl WgDevice {
    /// A device with a static private key and 32 bytes of seed from the host's CSPRNG.
    #[wasm_bindgen(constructor)]
    pub fn new(private_key: &[u8], seed: &[u8]) -> Result<WgDevice, JsError> {
        Ok(WgDevice {
            dev: Device::new(key32(private_key, "private key")?, key32(seed, "seed")?),
        })
    }

    /// Our static public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.dev.public_key().to_vec()
    }

    /// Add or update a peer. `psk` empty for none; `allowed_ips` comma-separated
    /// CIDRs; `endpoint` negative for none. Returns the peer id.
    pub fn upsert_peer(
        &mut self,
        public_key: &[u8],
        psk: &[u8],
        allowed_ips: &str,
        endpoint: f64,
        persistent_keepalive: u32,
    ) -> Result<u32, JsError> {
        let public = key32(public_key, "public key")?;
        let psk = if psk.is_empty() {
            None
        } else {
            Some(key32(psk, "preshared key")?)
        };
        let mut prefixes = Vec::new();
        for s in allowed_ips
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            prefixes.push(
                Prefix::parse(s).ok_or_else(|| JsError::new(&format!("bad allowed IP \"{s}\"")))?,
            );
        }
        let endpoint =
            (endpoint >= 0.0 && endpoint <= f64::from(u32::MAX)).then_some(endpoint as u32);
        Ok(self
            .dev
            .upsert_peer(public, psk, &prefixes, endpoint, persistent_keepalive))
    }

    /// Remove a peer; false if unknown.
    pub fn remove_peer(&mut self, public_key: &[u8]) -> Result<bool, JsError> {
        Ok(self.dev.remove_peer(&key32(public_key, "public key")?))
    }

    /// Point a peer at an endpoint handle.
    pub fn set_endpoint(&mut self, public_key: &[u8], endpoint: u32) -> Result<bool, JsError> {
        Ok(self
            .dev
            .set_endpoint(&key32(public_key, "public key")?, endpoint))
    }

    /// Answer every handshake with a cookie reply unless it carries a valid mac2.
    pub fn set_under_load(&mut self, on: bool) {
        self.dev.set_under_load(on);
    }

    /// Encrypt one IP packet.
    pub fn send(&mut self, packet: &[u8], now: f64) -> Vec<u8> {
        let mut out = Vec::new();
        self.dev.send(packet, ms(now), &mut out);
        encode(&out)
    }

    /// Encrypt many IP packets laid out back to back (`lens` gives each length).
    pub fn send_batch(
        &mut self,
        packets: &[u8],
        lens: &[u32],
        now: f64,
    ) -> Result<Vec<u8>, JsError> {
        let mut out = Vec::new();
        let mut off = 0usize;
        for &len in lens {
            let end = off
                .checked_add(len as usize)
                .filter(|&e| e <= packets.len());
            let end = end.ok_or_else(|| JsError::new("lengths exceed the buffer"))?;
            self.dev.send(&packets[off..end], ms(now), &mut out);
            off = end;
        }
        Ok(encode(&out))
    }

    /// Process one datagram from an endpoint.
    pub fn receive(&mut self, datagram: &[u8], endpoint: u32, now: f64) -> Vec<u8> {
        let mut out = Vec::new();
        self.dev.receive(datagram, endpoint, ms(now), &mut out);
        encode(&out)
    }

    /// Process many datagrams laid out back to back, each from `endpoints[i]`.
    pub fn receive_batch(
        &mut self,
        datagrams: &[u8],
        lens: &[u32],
        endpoints: &[u32],
        now: f64,
    ) -> Result<Vec<u8>, JsError> {
        if lens.len() != endpoints.len() {
            return Err(JsError::new("lens and endpoints differ in length"));
        }
        let mut out = Vec::new();
        let mut off = 0usize;
        for (&len, &ep) in lens.iter().zip(endpoints) {
            let end = off
                .checked_add(len as usize)
                .filter(|&e| e <= datagrams.len());
            let end = end.ok_or_else(|| JsError::new("lengths exceed the buffer"))?;
            self.dev
                .receive(&datagrams[off..end], ep, ms(now), &mut out);
            off = end;
        }
        Ok(encode(&out))
    }

    /// Fire due timers.
    pub fn tick(&mut self, now: f64) -> Vec<u8> {
        let mut out = Vec::new();
        self.dev.tick(ms(now), &mut out);
        encode(&out)
    }

    /// Drop counters and per-peer state as JSON.
    pub fn stats_json(&self) -> String {
        let drops: Vec<String> = DROP_REASONS
            .iter()
            .map(|r| format!("\"{}\":{}", r.as_str(), self.dev.drops(*r)))
            .collect();
        let mut ids: Vec<u32> = self.dev.peers.keys().copied().collect();
        ids.sort_unstable();
        let peers: Vec<String> = ids
            .iter()
            .map(|id| {
                let p = &self.dev.peers[id];
                let key: String = p.public.iter().map(|b| format!("{b:02x}")).collect();
                format!(
                    "{{\"id\":{},\"public_key\":\"{}\",\"endpoint\":{},\"rx_bytes\":{},\"tx_bytes\":{},\"handshakes\":{},\"last_handshake_ms\":{},\"has_session\":{}}}",
                    p.id,
                    key,
                    p.endpoint.map_or("null".to_string(), |e| e.to_string()),
                    p.stats.rx_bytes,
                    p.stats.tx_bytes,
                    p.stats.handshakes,
                    p.stats.last_handshake,
                    p.keypairs.current.is_some()
                )
            })
            .collect();
        format!(
            "{{\"drops\":{{{}}},\"peers\":[{}]}}",
            drops.join(","),
            peers.join(",")
        )
    }

    /// Name of a drop reason code.
    pub fn drop_reason_name(code: u32) -> String {
        DROP_REASONS
            .iter()
            .find(|r| **r as u32 == code)
            .map_or("unknown", |r| r.as_str())
            .to_string()
    }
}
