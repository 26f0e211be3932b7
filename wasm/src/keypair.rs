//! A transport session's keys and counters (whitepaper §5.4.6), and the
//! previous/current/next rotation of sessions per peer.

use crate::constants::*;
use crate::noise::SessionKeys;
use crate::replay::ReplayWindow;
use zeroize::Zeroize;

/// One direction pair of transport keys with its counters.
pub struct Keypair {
    /// Key for messages we send.
    pub send_key: [u8; 32],
    /// Key for messages we receive.
    pub recv_key: [u8; 32],
    /// Next counter to send with.
    pub send_counter: u64,
    /// Counters received so far.
    pub replay: ReplayWindow,
    /// When the handshake that made it completed (ms).
    pub created: u64,
    /// Whether we initiated that handshake (only the initiator rekeys on time).
    pub initiator: bool,
    /// Our index for this session.
    pub local_index: u32,
    /// The peer's index for this session.
    pub remote_index: u32,
}

impl Keypair {
    /// A keypair from a completed handshake.
    pub fn new(keys: SessionKeys, now: u64) -> Keypair {
        Keypair {
            send_key: keys.send,
            recv_key: keys.recv,
            send_counter: 0,
            replay: ReplayWindow::new(),
            created: now,
            initiator: keys.initiator,
            local_index: keys.local_index,
            remote_index: keys.remote_index,
        }
    }

    /// Age in milliseconds.
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.created)
    }

    /// May it still send? (Not past REJECT_AFTER_TIME nor the message limit.)
    pub fn can_send(&self, now: u64) -> bool {
        self.age(now) < REJECT_AFTER_TIME && self.send_counter < REJECT_AFTER_MESSAGES
    }

    /// May it still receive?
    pub fn can_receive(&self, now: u64) -> bool {
        self.age(now) < REJECT_AFTER_TIME
    }

    /// Should its initiator start a new handshake before sending more?
    pub fn needs_rekey(&self, now: u64) -> bool {
        self.initiator
            && (self.age(now) >= REKEY_AFTER_TIME || self.send_counter >= REKEY_AFTER_MESSAGES)
    }
}

impl Drop for Keypair {
    fn drop(&mut self) {
        self.send_key.zeroize();
        self.recv_key.zeroize();
    }
}

/// The sessions of one peer: the one in use, the one before it (still
/// accepted for packets in flight), and a new one the responder holds until
/// the initiator confirms it by sending on it.
#[derive(Default)]
pub struct Keypairs {
    /// Previous session.
    pub previous: Option<Keypair>,
    /// Current session.
    pub current: Option<Keypair>,
    /// Responder's unconfirmed session.
    pub next: Option<Keypair>,
}

/// Which slot a session is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// `previous`
    Previous,
    /// `current`
    Current,
    /// `next`
    Next,
}

impl Keypairs {
    /// Install a session we initiated: it is confirmed at once. A pending
    /// responder session (both sides initiated at once) is kept as `previous`,
    /// so packets the peer sends on it still arrive, as wireguard-go does.
    /// Returns the local indices of sessions that fell out.
    pub fn install_initiator(&mut self, kp: Keypair) -> Vec<u32> {
        let mut gone = Vec::new();
        if let Some(p) = self.previous.take() {
            gone.push(p.local_index);
        }
        match self.next.take() {
            Some(n) => {
                if let Some(c) = self.current.take() {
                    gone.push(c.local_index);
                }
                self.previous = Some(n);
            }
            None => self.previous = self.current.take(),
        }
        self.current = Some(kp);
        gone
    }

    /// Install a session we responded to: it waits in `next` for confirmation.
    pub fn install_responder(&mut self, kp: Keypair) -> Vec<u32> {
        let mut gone = Vec::new();
        if let Some(n) = self.next.replace(kp) {
            gone.push(n.local_index);
        }
        if let Some(p) = self.previous.take() {
            gone.push(p.local_index);
        }
        gone
    }

    /// The initiator sent on `next`: it becomes current.
    pub fn confirm_next(&mut self) -> Vec<u32> {
        let mut gone = Vec::new();
        if let Some(n) = self.next.take() {
            if let Some(p) = self.previous.take() {
                gone.push(p.local_index);
            }
            self.previous = self.current.take();
            self.current = Some(n);
        }
        gone
    }

    /// The session with our index `local`, if any.
    pub fn find(&mut self, local: u32) -> Option<(Slot, &mut Keypair)> {
        if let Some(k) = self.current.as_mut().filter(|k| k.local_index == local) {
            return Some((Slot::Current, k));
        }
        if let Some(k) = self.previous.as_mut().filter(|k| k.local_index == local) {
            return Some((Slot::Previous, k));
        }
        if let Some(k) = self.next.as_mut().filter(|k| k.local_index == local) {
            return Some((Slot::Next, k));
        }
        None
    }

    /// Drop sessions older than `max_age`; returns their local indices.
    pub fn expire(&mut self, now: u64, max_age: u64) -> Vec<u32> {
        let mut gone = Vec::new();
        for slot in [&mut self.previous, &mut self.current, &mut self.next] {
            if slot.as_ref().is_some_and(|k| k.age(now) >= max_age) {
                gone.push(slot.take().unwrap().local_index);
            }
        }
        gone
    }

    /// Drop everything; returns the local indices.
    pub fn clear(&mut self) -> Vec<u32> {
        [self.previous.take(), self.current.take(), self.next.take()]
            .into_iter()
            .flatten()
            .map(|k| k.local_index)
            .collect()
    }
}
