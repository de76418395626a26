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
//!
//! **The sleeper's barrier.** A side may instead make its own sleeps pay:
//! it declares (its declaration word, `SLEEPER_BARRIER`) that after the
//! fence of every announcement it calls
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which returns only after
//! every CPU running a thread of a registered process has passed a full
//! barrier. A waker whose process registered, and which finds the
//! declaration, then skips its fence: if its store of the position was
//! still in its store buffer at the barrier, the barrier drained it before
//! the sleeper's re-check, which sees it; otherwise its load of the wait
//! word comes after the barrier, hence after the announcement, which it
//! sees. (A waker not running at the barrier passed a context switch,
//! itself a full barrier.) The waker reads the declaration at every
//! check, on the wait words' line it loads anyway; a peer that declares
//! and does not run the barrier can only lose its own wake-ups. Loom
//! cannot model `membarrier`, so loom builds always fence.
//!
//! The wait word is not a futex word (`docs/LAYOUT.md`, "Wake-ups").

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

/// Our own wait word's private state: the announcement counter, and the
/// sleeper's barrier if we declared one.
#[derive(Debug, Default)]
pub(crate) struct WaitWord {
    seq: u32,
    barrier: Option<fn() -> bool>,
}

impl WaitWord {
    /// Publishes "about to sleep" with a fresh sequence number, then
    /// orders it before the caller's re-check: a SeqCst fence, and the
    /// sleeper's barrier if we declared one (see the module docs).
    /// Returns `false` if the barrier failed: the caller must not sleep
    /// on this announcement (a waker may have skipped its fence).
    #[must_use]
    pub(crate) fn announce(&mut self, word: &AtomicU32) -> bool {
        self.seq = self.seq.wrapping_add(1);
        // Relaxed: ordering comes from the SeqCst fence below.
        word.store((self.seq << 1) | 1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        match self.barrier {
            Some(barrier) => barrier(),
            None => true,
        }
    }

    /// Withdraws the declaration in `decl`: stores 0, then runs the
    /// barrier once, so that a waker that read the declaration before the
    /// store has its check ordered by that barrier, and every later check
    /// sees 0 and fences. From then on our announcements only fence. If
    /// that barrier fails the declaration stays (returns `false`).
    pub(crate) fn withdraw_barrier(&mut self, decl: &AtomicU32) -> bool {
        let Some(barrier) = self.barrier else {
            return true;
        };
        decl.store(0, Ordering::SeqCst);
        if barrier() {
            self.barrier = None;
            true
        } else {
            decl.store(crate::layout::SLEEPER_BARRIER, Ordering::SeqCst);
            false
        }
    }

    /// Declares in `decl` (our own declaration word) that every
    /// announcement from now on runs `barrier` before the re-check.
    pub(crate) fn declare_barrier(&mut self, decl: &AtomicU32, barrier: fn() -> bool) {
        self.barrier = Some(barrier);
        // Release: nothing needs it (the promise holds from before this
        // store), but a peer that reads it sees a settled handle.
        decl.store(crate::layout::SLEEPER_BARRIER, Ordering::Release);
    }

    /// Withdraws the announcement.
    pub(crate) fn withdraw(&self, word: &AtomicU32) {
        word.store(self.seq << 1, Ordering::Relaxed);
    }
}

/// The waker's memory of the last announcement it woke, and whether our
/// process is registered for the sleeper's barrier.
#[derive(Debug, Default)]
pub(crate) struct Waker {
    last_woken: u32,
    registered: bool,
}

impl Waker {
    /// Our process registered with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`:
    /// a peer's `MEMBARRIER_CMD_GLOBAL_EXPEDITED` makes our CPU pass a full
    /// barrier, so we may skip our fence when the peer declared it runs one.
    pub(crate) fn set_registered(&mut self) {
        self.registered = true;
    }

    /// After publishing: whether the peer is (about to be) asleep and not
    /// yet woken for this announcement. `peer_decl` is the peer's
    /// sleeper-barrier declaration.
    #[inline]
    pub(crate) fn check(&mut self, peer_word: &AtomicU32, peer_decl: &AtomicU32) -> bool {
        // Pairs with the sleeper's fence, or with its barrier when it
        // declared one and we are registered; see the module docs. The
        // barrier makes our CPU pass a full barrier at an instruction
        // boundary, so without the fence all we must prevent is the
        // compiler moving the load of the wait word above the caller's
        // store of the position: a compiler fence, which emits nothing.
        // (Loom cannot model the barrier: its builds always fence.)
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        #[cfg(not(loom))]
        let skip =
            self.registered && peer_decl.load(Ordering::Relaxed) == crate::layout::SLEEPER_BARRIER;
        #[cfg(loom)]
        let skip = {
            let _ = peer_decl;
            false
        };
        if !skip {
            fence(Ordering::SeqCst);
        }
        let word = peer_word.load(Ordering::Relaxed);
        if word & 1 == 1 && word != self.last_woken {
            self.last_woken = word;
            true
        } else {
            false
        }
    }
}
