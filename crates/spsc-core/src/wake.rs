//! The "I am going to sleep" protocol.
//!
//! Each side owns one 32-bit *wait word* in its own header line. Bit 0 says
//! "asleep, or about to be"; bits 1.. count the announcements, so that the
//! waker can tell a new sleep from one it has already woken. The word is
//! written only by its owner and read only by the peer; any value the peer
//! writes into *its* word can at worst cost us a spurious notification or
//! cost the peer a missed one, which is its own loss.
//!
//! Why no wake-up is lost. The sleeper does
//! `announce (store) ; fence(SeqCst) ; load the peer's position`, and the
//! waker does `publish its position (store) ; fence(SeqCst) ; load the
//! wait word`. The two SeqCst fences are totally ordered. If the sleeper's
//! fence comes first, the waker's load after its fence sees the
//! announcement and wakes it; if the waker's fence comes first, the
//! sleeper's load after its fence sees the new position and does not
//! sleep. For a message ring the "position" the consumer re-checks is the
//! next record's header word, which the producer stores (Release) before
//! its fence; the argument is the same. (This is the store-buffering
//! pattern; without the fences both
//! loads could miss both stores, since x86 lets a load pass an earlier
//! store.) The loom model checks in `tests/loom.rs` explore every
//! interleaving of exactly this code.
//!
//! The fence is paid once per publication that the caller checks (a chunk
//! commit, or a call to `needs_wake`), never per element in `push`/`pop`.
//! The word is 32 bits and 4-byte aligned, so it can also serve as a futex
//! word.

use crate::sync::{fence, AtomicU32, Ordering};

/// What a side should do after announcing sleep and re-checking the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum WaitCheck {
    /// What we wait for arrived between our last look and the
    /// announcement; the announcement is withdrawn. Don't sleep.
    Ready,
    /// Still nothing: sleep until woken, then call `finish_wait`.
    Sleep,
}

/// Our own wait word's private state: the announcement counter.
#[derive(Debug, Default)]
pub(crate) struct WaitWord {
    seq: u32,
}

impl WaitWord {
    /// Publishes "about to sleep" with a fresh sequence number. The caller
    /// follows with a SeqCst fence before re-checking.
    pub(crate) fn announce(&mut self, word: &AtomicU32) {
        self.seq = self.seq.wrapping_add(1);
        // Relaxed: ordering comes from the caller's SeqCst fence.
        word.store((self.seq << 1) | 1, Ordering::Relaxed);
    }

    /// Withdraws the announcement.
    pub(crate) fn withdraw(&self, word: &AtomicU32) {
        word.store(self.seq << 1, Ordering::Relaxed);
    }
}

/// The waker's memory of the last announcement it woke.
#[derive(Debug, Default)]
pub(crate) struct Waker {
    last_woken: u32,
}

impl Waker {
    /// After publishing: whether the peer is (about to be) asleep and not
    /// yet woken for this announcement.
    #[inline]
    pub(crate) fn check(&mut self, peer_word: &AtomicU32) -> bool {
        // Pairs with the sleeper's fence; see the module docs.
        fence(Ordering::SeqCst);
        let word = peer_word.load(Ordering::Relaxed);
        if word & 1 == 1 && word != self.last_woken {
            self.last_woken = word;
            true
        } else {
            false
        }
    }
}
