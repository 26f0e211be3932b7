//! Sliding-window replay protection for transport counters (RFC 6479's
//! bitmap ring, as the whitepaper §5.4.6 recommends).

use crate::constants::REJECT_AFTER_MESSAGES;

const BLOCK_BITS: u64 = 64;
const RING_BLOCKS: usize = 128;
/// How far behind the highest counter seen a counter may be and still be accepted.
pub const WINDOW_SIZE: u64 = (RING_BLOCKS as u64 - 1) * BLOCK_BITS;

/// Outcome of checking a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCheck {
    /// New counter: accepted and now recorded.
    Fresh,
    /// Already seen.
    Replayed,
    /// Older than the window (or past the message limit).
    OutOfWindow,
}

/// The receive window of one session.
#[derive(Clone)]
pub struct ReplayWindow {
    last: u64,
    ring: [u64; RING_BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> Self {
        ReplayWindow {
            last: 0,
            ring: [0; RING_BLOCKS],
        }
    }

    /// Check a counter without recording it (before authenticating the packet).
    pub fn check(&self, counter: u64) -> ReplayCheck {
        if counter >= REJECT_AFTER_MESSAGES {
            return ReplayCheck::OutOfWindow;
        }
        if counter + WINDOW_SIZE < self.last {
            return ReplayCheck::OutOfWindow;
        }
        if counter > self.last {
            return ReplayCheck::Fresh;
        }
        let block = ((counter / BLOCK_BITS) as usize) % RING_BLOCKS;
        if self.ring[block] & (1 << (counter % BLOCK_BITS)) != 0 {
            ReplayCheck::Replayed
        } else {
            ReplayCheck::Fresh
        }
    }

    /// Record a counter once its packet authenticated; returns the check result.
    pub fn accept(&mut self, counter: u64) -> ReplayCheck {
        let verdict = self.check(counter);
        if verdict != ReplayCheck::Fresh {
            return verdict;
        }
        let block = counter / BLOCK_BITS;
        if counter > self.last {
            let current = self.last / BLOCK_BITS;
            let diff = (block - current).min(RING_BLOCKS as u64);
            for i in 1..=diff {
                self.ring[((current + i) as usize) % RING_BLOCKS] = 0;
            }
            self.last = counter;
        }
        self.ring[(block as usize) % RING_BLOCKS] |= 1 << (counter % BLOCK_BITS);
        ReplayCheck::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_in_order_and_out_of_order_once() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(0), ReplayCheck::Fresh);
        assert_eq!(w.accept(0), ReplayCheck::Replayed);
        assert_eq!(w.accept(5), ReplayCheck::Fresh);
        assert_eq!(w.accept(3), ReplayCheck::Fresh);
        assert_eq!(w.accept(3), ReplayCheck::Replayed);
        assert_eq!(w.accept(4), ReplayCheck::Fresh);
        assert_eq!(w.accept(5), ReplayCheck::Replayed);
    }

    #[test]
    fn window_edges() {
        let mut w = ReplayWindow::new();
        let top = 100_000;
        assert_eq!(w.accept(top), ReplayCheck::Fresh);
        assert_eq!(w.accept(top - WINDOW_SIZE), ReplayCheck::Fresh);
        assert_eq!(w.accept(top - WINDOW_SIZE - 1), ReplayCheck::OutOfWindow);
        // A jump far ahead forgets everything older than the new window.
        assert_eq!(w.accept(top + 10 * WINDOW_SIZE), ReplayCheck::Fresh);
        assert_eq!(w.accept(top), ReplayCheck::OutOfWindow);
        assert_eq!(w.accept(top + 10 * WINDOW_SIZE - 1), ReplayCheck::Fresh);
    }

    #[test]
    fn ring_reuse_clears_stale_bits() {
        let mut w = ReplayWindow::new();
        for c in 0..20_000u64 {
            assert_eq!(w.accept(c), ReplayCheck::Fresh, "counter {c}");
        }
        // Counters a ring's length apart share a slot; the old bit must not leak.
        assert_eq!(
            w.check(20_000 + (RING_BLOCKS as u64) * 64),
            ReplayCheck::Fresh
        );
        assert_eq!(w.accept(19_999), ReplayCheck::Replayed);
    }

    #[test]
    fn rejects_past_the_message_limit() {
        let w = ReplayWindow::new();
        assert_eq!(w.check(REJECT_AFTER_MESSAGES), ReplayCheck::OutOfWindow);
    }
}
