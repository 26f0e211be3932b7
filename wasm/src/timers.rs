//! The timer state machine of whitepaper §6, driven by the host's clock: each
//! `tick(now)` fires whatever came due since the last one.

use crate::constants::*;
use crate::device::{Device, DropReason, Output};

impl Device {
    /// Fire due timers: handshake retries and give-up, passive and persistent
    /// keepalives, rekeying when sent data went unanswered, and expiry of old
    /// sessions. Call it every few hundred milliseconds.
    pub fn tick(&mut self, now: u64, out: &mut Vec<Output>) {
        let ids: Vec<u32> = self.peers.keys().copied().collect();
        for id in ids {
            self.tick_peer(id, now, out);
        }
    }

    fn tick_peer(&mut self, id: u32, now: u64, out: &mut Vec<Output>) {
        let peer = &self.peers[&id];

        // Retransmit an unanswered initiation, or give up after REKEY_ATTEMPT_TIME.
        if peer.retry_at.is_some_and(|t| now >= t) {
            let started = peer.handshake_started.unwrap_or(now);
            if now.saturating_sub(started) >= REKEY_ATTEMPT_TIME {
                let peer = self.peers.get_mut(&id).unwrap();
                peer.retry_at = None;
                peer.handshake_started = None;
                let dropped = peer.staged.len();
                peer.staged.clear();
                if let Some(h) = peer.handshake.take() {
                    self.indices.remove(&h.local_index);
                }
                for _ in 0..dropped {
                    self.drop_packet(out, DropReason::StagedDropped);
                }
            } else {
                self.begin_handshake(id, now, true, out);
            }
        }

        // Sent data but heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: try a new session.
        let peer = &self.peers[&id];
        if peer.new_handshake_due.is_some_and(|t| now >= t) {
            self.peers.get_mut(&id).unwrap().new_handshake_due = None;
            self.begin_handshake(id, now, false, out);
        }

        // Passive keepalive: we received data and have sent nothing since.
        let peer = &self.peers[&id];
        let has_session = peer
            .keypairs
            .current
            .as_ref()
            .is_some_and(|k| k.can_send(now));
        if peer.keepalive_due.is_some_and(|t| now >= t) {
            self.peers.get_mut(&id).unwrap().keepalive_due = None;
            if has_session {
                self.send_transport(id, &[], now, out);
            }
        }

        // Persistent keepalive, for peers behind NAT.
        let peer = &self.peers[&id];
        let interval = u64::from(peer.persistent_keepalive) * 1000;
        if interval > 0
            && peer
                .last_sent
                .is_none_or(|t| now.saturating_sub(t) >= interval)
        {
            if has_session {
                self.send_transport(id, &[], now, out);
            } else {
                self.begin_handshake(id, now, false, out);
            }
        }

        // Sessions are useless after REJECT_AFTER_TIME; erase their keys after three times that.
        let peer = self.peers.get_mut(&id).unwrap();
        let gone = peer.keypairs.expire(now, REJECT_AFTER_TIME * 3);
        for g in gone {
            self.indices.remove(&g);
        }
    }
}
