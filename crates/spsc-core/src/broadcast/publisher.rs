//! The publishing side: writes every message once, never reads what a
//! subscriber wrote except its control words, and never waits.

use super::error::{BcastPublishError, BcastSetupError};
use super::layout::BcastLayout;
use super::view::{check_region, ControlView, DataView};
use crate::region::RawRegion;
use crate::sync::{fence, Ordering};

/// The publishing end of a broadcast ring over a data region.
///
/// Publishing never waits and never reads memory a subscriber can write:
/// in lossy mode a slow subscriber simply loses messages. Reliable mode
/// (waiting for the slowest subscriber, up to a bound) is built on top by
/// comparing [`head`](Self::head) with the cursors read through
/// [`SubscriberWatch::cursor`].
#[derive(Debug)]
pub struct BcastPublisher {
    view: DataView,
    /// Our head: the sequence number of the next message. Private; the
    /// shared copy is only ever written.
    head: u64,
    /// Our copy of the wake word.
    wake: u32,
    closed: bool,
    /// How the wake-up scan is ordered after the head's store.
    order: WakeOrder,
}

/// How a publisher orders its store of the head before its loads of the
/// subscribers' wait words (the Dekker pattern of "Sleeping and waking" in
/// `docs/LAYOUT.md`). Written into the header's flags, so every
/// subscriber knows which side pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeOrder {
    /// A sequentially consistent fence after every publication (flags 0).
    PublisherFence,
    /// No fence on the publisher's side; each subscriber about to sleep
    /// runs `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` after its fence,
    /// which makes every running thread of the (registered) publisher pass
    /// a full barrier ([`header::FLAG_SLEEPER_BARRIER`](super::layout::header::FLAG_SLEEPER_BARRIER)).
    /// The caller must have registered the publisher's process with
    /// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` first: without it,
    /// wake-ups can be lost.
    ///
    /// sharedring's lossy publishers use it where the registration
    /// succeeds. (A stress test of it lost wake-ups until 2026-11-30: the
    /// subscriber loaded its futex value after announcing, see
    /// [`BcastSubscriber::prepare_wait`](super::BcastSubscriber::prepare_wait).)
    SleeperBarrier,
}

/// Which wake-ups a [`wake_scan`](BcastPublisher::wake_scan) found
/// necessary. At most one of each per scan, whatever the number of
/// sleepers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct WakeNeed {
    /// Some sleeper waits on the futex word: `FUTEX_WAKE` it (all
    /// waiters) at [`BcastPublisher::wake_word`].
    pub futex: bool,
    /// Some sleeper waits on the shared eventfd: signal it once.
    pub eventfd: bool,
}

impl WakeNeed {
    /// Whether any wake-up is needed.
    pub fn any(&self) -> bool {
        self.futex || self.eventfd
    }
}

/// The publisher's view of one subscriber's control region: its cursor
/// and its wait word, which that subscriber may write at any time, so
/// every value is loaded once and validated.
#[derive(Debug)]
pub struct SubscriberWatch {
    view: ControlView,
    last_woken: u32,
}

/// A cursor a subscriber published that no honest subscriber could have:
/// beyond the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorAhead {
    /// The cursor seen.
    pub seen: u64,
    /// The head at the time.
    pub head: u64,
}

impl core::fmt::Display for CursorAhead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "subscriber published cursor {} beyond the head {}",
            self.seen, self.head
        )
    }
}

impl core::error::Error for CursorAhead {}

impl SubscriberWatch {
    /// Zeroes a fresh control region of at least
    /// [`control::SIZE`](super::layout::control::SIZE) bytes, 64-aligned,
    /// and watches it. The subscriber's cursor starts at `start`.
    pub fn create(region: RawRegion, start: u64) -> Result<Self, BcastSetupError> {
        check_region(&region, super::layout::control::SIZE)?;
        let view = ControlView::new(region);
        view.init();
        view.cursor().store(start, Ordering::Relaxed);
        Ok(Self {
            view,
            last_woken: 0,
        })
    }

    /// The subscriber's cursor (the next message it will read), loaded
    /// once and checked against `head`.
    pub fn cursor(&self, head: u64) -> Result<u64, CursorAhead> {
        let seen = self.view.cursor().load(Ordering::Acquire);
        if seen > head {
            return Err(CursorAhead { seen, head });
        }
        Ok(seen)
    }

    /// After the publisher's fence: whether this subscriber announced a
    /// sleep it has not been woken for, and how it sleeps.
    #[inline]
    fn check(&mut self, need: &mut WakeNeed) {
        let word = self.view.wait().load(Ordering::Relaxed);
        if word & 1 == 1 && word != self.last_woken {
            self.last_woken = word;
            // Any value but the two defined ones: wake both ways (it can
            // only be a subscriber hurting itself, or a spurious wake-up).
            match self.view.wait_how().load(Ordering::Relaxed) {
                0 => need.futex = true,
                1 => need.eventfd = true,
                _ => {
                    need.futex = true;
                    need.eventfd = true;
                }
            }
        }
    }
}

impl BcastPublisher {
    /// Initialises a broadcast ring in `region` (64-aligned, at least
    /// `layout.region_size()` bytes), with nothing published.
    /// Its publications fence ([`WakeOrder::PublisherFence`]).
    pub fn create(region: RawRegion, layout: BcastLayout) -> Result<Self, BcastSetupError> {
        Self::create_ordered(region, layout, WakeOrder::PublisherFence)
    }

    /// Like [`create`](Self::create), choosing how wake-ups are ordered.
    /// With [`WakeOrder::SleeperBarrier`] the caller must have registered
    /// its process for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` already.
    pub fn create_ordered(
        region: RawRegion,
        layout: BcastLayout,
        order: WakeOrder,
    ) -> Result<Self, BcastSetupError> {
        check_region(&region, layout.region_size())?;
        let view = DataView::new(region, layout);
        view.init_hot();
        view.write_header(match order {
            WakeOrder::PublisherFence => 0,
            WakeOrder::SleeperBarrier => super::layout::header::FLAG_SLEEPER_BARRIER,
        });
        Ok(Self {
            view,
            head: 0,
            wake: 0,
            closed: false,
            order,
        })
    }

    /// How this publisher's wake-ups are ordered.
    pub fn wake_order(&self) -> WakeOrder {
        self.order
    }

    /// The geometry.
    pub fn layout(&self) -> &BcastLayout {
        self.view.layout()
    }

    /// The number of messages published so far (the sequence number of
    /// the next one).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Publishes one message of at most `max_msg` bytes and returns its
    /// sequence number. Never waits: the oldest message is overwritten.
    ///
    /// The slot's stamp is set odd (`2s+1`, "being written"), then the
    /// length and payload are written, then the stamp is set even
    /// (`2s+2`, Release) and the head advanced (Release). A reader that
    /// copies a slot and finds its stamp changed discards the copy.
    #[inline]
    pub fn publish(&mut self, msg: &[u8]) -> Result<u64, BcastPublishError> {
        if self.closed {
            return Err(BcastPublishError::Closed);
        }
        let max = self.view.layout().max_msg();
        if msg.len() > max {
            return Err(BcastPublishError::TooLarge {
                len: msg.len(),
                max,
            });
        }
        let seq = self.head;
        let index = self.view.index(seq);
        let stamp = self.view.stamp(index);
        stamp.store(seq.wrapping_mul(2).wrapping_add(1), Ordering::Relaxed);
        // Orders the odd stamp before the payload stores: a reader whose
        // copy saw any new byte sees the odd (or a later) stamp on its
        // re-check (Boehm's seqlock; pairs with the reader's Acquire
        // fence).
        fence(Ordering::Release);
        self.view
            .len(index)
            .store(msg.len() as u32, Ordering::Relaxed);
        self.view.write_payload(index, msg);
        stamp.store(seq.wrapping_mul(2).wrapping_add(2), Ordering::Release);
        self.head = seq.wrapping_add(1);
        self.view.head().store(self.head, Ordering::Release);
        Ok(seq)
    }

    /// Marks the ring closed: subscribers get
    /// [`BcastRecvError::Closed`](super::BcastRecvError::Closed) once they
    /// have read everything. Publishing afterwards fails. The wake word is
    /// advanced too: the caller then wakes every sleeper (`FUTEX_WAKE` and
    /// the eventfd), whatever their wait words say.
    pub fn close(&mut self) {
        self.closed = true;
        self.view.closed().store(1, Ordering::Release);
        self.wake = self.wake.wrapping_add(1);
        self.view.wake().store(self.wake, Ordering::Release);
    }

    /// After publishing (one message or a batch): checks every
    /// subscriber's wait word once and, if any announced a sleep not yet
    /// woken, advances the wake word. The caller then performs the wake-ups
    /// in the returned [`WakeNeed`]: at most one `FUTEX_WAKE` (of all
    /// waiters) and one eventfd signal, whatever the number of sleepers.
    ///
    /// Why no wake-up is lost: the publisher stores the head, then a
    /// SeqCst fence, then loads the wait words; a sleeper stores its wait
    /// word, then a SeqCst fence, then loads the wake word and the head.
    /// One of the two fences comes first: either the publisher sees the
    /// announcement, or the sleeper sees the new head and does not sleep.
    /// With [`WakeOrder::SleeperBarrier`] the publisher's fence is the
    /// full barrier the sleeper's `membarrier` forces on the publisher's
    /// CPU between the sleeper's store and its re-check: the publisher's
    /// head store either precedes it (and the sleeper sees the head) or
    /// follows it, and then so do the loads after it in program order
    /// (and they see the announcement).
    /// A sleeper that loaded the wake word before our increment has its
    /// `FUTEX_WAIT` refused (the value changed) or woken by our
    /// `FUTEX_WAKE`; one that loaded it after the increment also sees the
    /// head stored before it (Release/Acquire), and does not sleep.
    pub fn wake_scan<'a>(
        &mut self,
        subscribers: impl IntoIterator<Item = &'a mut SubscriberWatch>,
    ) -> WakeNeed {
        match self.order {
            WakeOrder::PublisherFence => fence(Ordering::SeqCst),
            // The sleeper's membarrier makes this CPU pass a full barrier
            // at an instruction boundary; all we must prevent is the
            // compiler moving the loads above the head's store. (Loom
            // cannot model membarrier: its builds keep the fence.)
            #[cfg(not(loom))]
            WakeOrder::SleeperBarrier => {
                core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst)
            }
            #[cfg(loom)]
            WakeOrder::SleeperBarrier => fence(Ordering::SeqCst),
        }
        let mut need = WakeNeed::default();
        for s in subscribers {
            s.check(&mut need);
        }
        if need.any() {
            self.wake = self.wake.wrapping_add(1);
            self.view.wake().store(self.wake, Ordering::Release);
        }
        need
    }

    /// The wake word's address in our mapping, for `FUTEX_WAKE`. A shared
    /// (not `FUTEX_PRIVATE`) futex on a file mapping is keyed by the file
    /// and offset, so it reaches subscribers waiting in their read-only
    /// mappings.
    pub fn wake_word(&self) -> *const u32 {
        self.view.wake_ptr()
    }
}
