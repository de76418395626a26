//! The subscribing side: reads a region it cannot write, copies each
//! message out, and keeps it only if the slot's stamp did not change.

use super::error::{BcastCorruption, BcastRecvError, BcastSetupError};
use super::layout::{
    header, BcastLayout, BCAST_DATA_OFFSET, BCAST_MAGIC, BCAST_VERSION, KIND_BROADCAST,
};
use super::publisher::WakeOrder;
use super::view::{check_region, ControlView, DataView};
use crate::region::RawRegion;
use crate::sync::{fence, Ordering};

/// Where a new subscriber starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// With the next message published.
    Newest,
    /// With up to this many of the messages already published, as far as
    /// the ring still holds them (at most `slots - 1`).
    History(u64),
    /// Where the publisher said when it offered the ring: the cursor it
    /// wrote into our control region (its head at that time), less up to
    /// `history` messages (at most `slots - 1`). So nothing published
    /// between the offer and our attaching is missed. A cursor beyond the
    /// head is not believed: we start at the head.
    Offered {
        /// Messages before the offered cursor to start with.
        history: u64,
    },
}

/// How a sleeping subscriber waits, as it tells the publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitHow {
    /// `FUTEX_WAIT` on the wake word of the read-only data region.
    Futex = 0,
    /// Readiness (edge-triggered) of the eventfd shared by all subscribers.
    Eventfd = 1,
}

/// What a subscriber should do after announcing sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum BcastWait {
    /// A message (or the close) arrived: don't sleep. The announcement is
    /// withdrawn.
    Ready,
    /// Sleep: `FUTEX_WAIT` on [`BcastSubscriber::wake_word`] while it
    /// still holds `futex_value` (or wait for the eventfd), then call
    /// [`finish_wait`](BcastSubscriber::finish_wait).
    Sleep {
        /// The wake word's value when the announcement was made.
        futex_value: u32,
    },
}

/// The subscribing end of a broadcast ring.
///
/// The data region is normally mapped read-only (the publisher's memfd is
/// sealed with `F_SEAL_FUTURE_WRITE`): a subscriber never writes it. It
/// writes only its own control region (its cursor and wait word).
///
/// Whatever the publisher writes, each call is O(1), reads only inside the
/// region, and either returns a message whose stamp was unchanged around
/// the copy, or an error. A `Lagged` result always advances the cursor by
/// at least one, so even a publisher that toggles stamps cannot keep a
/// reader from reaching the head.
#[derive(Debug)]
pub struct BcastSubscriber {
    view: DataView,
    ctl: ControlView,
    cursor: u64,
    seen_head: u64,
    wait_seq: u32,
    broken: Option<BcastCorruption>,
    /// From the header's flags: whether we must run the sleeper's barrier.
    order: WakeOrder,
}

impl BcastSubscriber {
    /// Attaches to the ring in `data` (mapped at least readable), checking
    /// its header against `layout`, which *we* decided on; `control` is
    /// this subscriber's control region (writable, at least
    /// [`control::SIZE`](super::layout::control::SIZE) bytes).
    pub fn attach(
        data: RawRegion,
        layout: BcastLayout,
        control: RawRegion,
        start: StartAt,
    ) -> Result<Self, BcastSetupError> {
        check_region(&data, layout.region_size())?;
        check_region(&control, super::layout::control::SIZE)?;
        let view = DataView::new(data, layout);
        let mismatch = |field, expected: u64, found: u64| {
            if expected == found {
                Ok(())
            } else {
                Err(BcastSetupError::HeaderMismatch {
                    field,
                    expected,
                    found,
                })
            }
        };
        mismatch("magic", BCAST_MAGIC, view.load_header_u64(header::MAGIC))?;
        mismatch(
            "version",
            BCAST_VERSION.into(),
            view.load_header_u32(header::VERSION).into(),
        )?;
        mismatch(
            "kind",
            KIND_BROADCAST.into(),
            view.load_header_u32(header::KIND).into(),
        )?;
        mismatch(
            "slots",
            layout.slots() as u64,
            view.load_header_u32(header::SLOTS).into(),
        )?;
        mismatch(
            "slot_size",
            layout.slot_size() as u64,
            view.load_header_u32(header::SLOT_SIZE).into(),
        )?;
        mismatch(
            "max_msg",
            layout.max_msg() as u64,
            view.load_header_u32(header::MAX_MSG).into(),
        )?;
        let order = match view.load_header_u32(header::FLAGS) {
            0 => WakeOrder::PublisherFence,
            header::FLAG_SLEEPER_BARRIER => WakeOrder::SleeperBarrier,
            other => {
                return Err(BcastSetupError::HeaderMismatch {
                    field: "flags (bits other than FLAG_SLEEPER_BARRIER)",
                    expected: header::FLAG_SLEEPER_BARRIER.into(),
                    found: other.into(),
                })
            }
        };
        mismatch(
            "data_offset",
            BCAST_DATA_OFFSET as u64,
            view.load_header_u64(header::DATA_OFFSET),
        )?;
        let head = view.head().load(Ordering::Acquire);
        let ctl = ControlView::new(control);
        let keep = |n: u64| n.min(layout.slots() as u64 - 1);
        let cursor = match start {
            StartAt::Newest => head,
            StartAt::History(n) => head.saturating_sub(keep(n)),
            StartAt::Offered { history } => {
                let offered = ctl.cursor().load(Ordering::Acquire);
                offered.min(head).saturating_sub(keep(history))
            }
        };
        ctl.cursor().store(cursor, Ordering::Release);
        Ok(Self {
            view,
            ctl,
            cursor,
            seen_head: head,
            wait_seq: 0,
            broken: None,
            order,
        })
    }

    /// The geometry.
    pub fn layout(&self) -> &BcastLayout {
        self.view.layout()
    }

    /// How the publisher orders wake-ups (from the header's flags). With
    /// [`WakeOrder::SleeperBarrier`], [`prepare_wait`](Self::prepare_wait)
    /// runs the barrier it is given.
    pub fn wake_order(&self) -> WakeOrder {
        self.order
    }

    /// The sequence number of the next message we will read.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Messages published but not yet read, as of the last head we saw.
    pub fn lag(&self) -> u64 {
        self.seen_head.saturating_sub(self.cursor)
    }

    /// Loads the head once and checks it did not go back.
    #[inline]
    fn load_head(&mut self) -> Result<u64, BcastRecvError> {
        let h = self.view.head().load(Ordering::Acquire);
        if h < self.seen_head {
            return Err(self.corrupt(BcastCorruption::HeadBackwards {
                seen: h,
                before: self.seen_head,
            }));
        }
        self.seen_head = h;
        Ok(h)
    }

    fn corrupt(&mut self, c: BcastCorruption) -> BcastRecvError {
        self.broken = Some(c);
        BcastRecvError::Corrupted(c)
    }

    #[inline]
    fn set_cursor(&mut self, cursor: u64) {
        self.cursor = cursor;
        self.ctl.cursor().store(cursor, Ordering::Release);
    }

    /// The slot of message `seq` was overwritten (or is being): skip to
    /// the oldest message that may still be intact, at least one further.
    #[cold]
    fn lapped(&mut self, seq: u64) -> BcastRecvError {
        let h = match self.load_head() {
            Ok(h) => h,
            Err(e) => return e,
        };
        let slots = self.view.layout().slots() as u64;
        let oldest = h.saturating_sub(slots).saturating_add(1);
        let next = oldest.max(seq + 1);
        self.set_cursor(next);
        BcastRecvError::Lagged { missed: next - seq }
    }

    /// Copies the next message into `buf` and returns its length.
    ///
    /// `Empty` when nothing is new; `Lagged { missed }` when messages were
    /// overwritten before we read them (the next call reads the oldest one
    /// still intact); `Closed` once the publisher closed the ring and
    /// everything was read; `BufferTooSmall` leaves the message unread.
    #[inline]
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, BcastRecvError> {
        if let Some(c) = self.broken {
            return Err(BcastRecvError::Corrupted(c));
        }
        // The closed flag before the head: a close seen here covers every
        // message published before it.
        let closed = self.view.closed().load(Ordering::Acquire);
        let h = self.load_head()?;
        let seq = self.cursor;
        if seq == h {
            return Err(if closed != 0 {
                BcastRecvError::Closed
            } else {
                BcastRecvError::Empty
            });
        }
        let slots = self.view.layout().slots() as u64;
        if h - seq > slots {
            let next = h - slots;
            self.set_cursor(next);
            return Err(BcastRecvError::Lagged { missed: next - seq });
        }
        let index = self.view.index(seq);
        let stamp = self.view.stamp(index);
        let want = seq.wrapping_mul(2).wrapping_add(2);
        let s1 = stamp.load(Ordering::Acquire);
        if s1 != want {
            // The head covers `seq`, and the publisher completes a slot
            // before advancing the head: anything older is a lie.
            return Err(if s1 > want {
                self.lapped(seq)
            } else {
                self.corrupt(BcastCorruption::StaleStamp { seq, stamp: s1 })
            });
        }
        let len = self.view.len(index).load(Ordering::Relaxed);
        let max = self.view.layout().max_msg();
        if len as usize > max || len as usize > buf.len() {
            fence(Ordering::Acquire);
            if stamp.load(Ordering::Relaxed) != s1 {
                return Err(self.lapped(seq));
            }
            return Err(if len as usize > max {
                self.corrupt(BcastCorruption::Length {
                    seq,
                    len,
                    max: max as u32,
                })
            } else {
                BcastRecvError::BufferTooSmall {
                    needed: len as usize,
                }
            });
        }
        let len = len as usize;
        self.view.read_payload(index, &mut buf[..len]);
        // Pairs with the publisher's Release fence after its odd stamp:
        // if the copy saw any byte of a later message, this load sees
        // that message's stamp.
        fence(Ordering::Acquire);
        if stamp.load(Ordering::Relaxed) != s1 {
            return Err(self.lapped(seq));
        }
        self.set_cursor(seq + 1);
        Ok(len)
    }

    /// The newest message (a latest-value cell: history 1, no queue):
    /// copies the last message published into `buf`, whether or not it
    /// was read before, and returns its sequence number and length. The
    /// cursor moves past it, so [`try_recv`](Self::try_recv) then waits
    /// for the next one.
    ///
    /// `Empty` before the first message. The copy is checked like any
    /// read; if the publisher overwrote the slot meanwhile (it published a
    /// whole lap during our copy), this tries again with the new newest
    /// message, at most four times, then returns that `Lagged` error.
    pub fn try_latest(&mut self, buf: &mut [u8]) -> Result<(u64, usize), BcastRecvError> {
        let mut last = BcastRecvError::Empty;
        for _ in 0..4 {
            if let Some(c) = self.broken {
                return Err(BcastRecvError::Corrupted(c));
            }
            let h = self.load_head()?;
            if h == 0 {
                return Err(BcastRecvError::Empty);
            }
            // Re-read the newest even if already read: a cell.
            self.cursor = h - 1;
            match self.try_recv(buf) {
                Ok(n) => return Ok((h - 1, n)),
                Err(e @ BcastRecvError::Lagged { .. }) => last = e,
                Err(BcastRecvError::Empty) => {
                    // The head moved back under us: `try_recv` reported
                    // nothing new only if the cursor met the head.
                    return Err(BcastRecvError::Empty);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Announces that we are about to sleep (in our control region), then
    /// re-checks the ring. See [`BcastPublisher::wake_scan`](super::BcastPublisher::wake_scan)
    /// for why no wake-up is lost.
    ///
    /// `sleeper_barrier` runs between the announcement's fence and the
    /// re-check when the publisher asked for it
    /// ([`WakeOrder::SleeperBarrier`]): it must run
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` and return whether
    /// that succeeded. If it fails we cannot sleep safely, so the
    /// announcement is withdrawn and [`BcastWait::Ready`] returned: the
    /// caller polls instead of sleeping, and loses nothing.
    pub fn prepare_wait(
        &mut self,
        how: WaitHow,
        sleeper_barrier: impl FnOnce() -> bool,
    ) -> BcastWait {
        // The value to sleep on, loaded *before* the announcement: any
        // wake-up the publisher makes for this announcement increments the
        // word after seeing it, so after this load, and our `FUTEX_WAIT`
        // is refused or woken. Loaded after the announcement, it could
        // already include that increment (a publisher whose scan of an
        // earlier message saw the announcement late) while the head shows
        // nothing new, and we would sleep through the next message: the
        // publisher wakes each announcement once.
        let futex_value = self.view.wake().load(Ordering::Acquire);
        self.wait_seq = self.wait_seq.wrapping_add(1) & 0x3fff_ffff;
        self.ctl.wait_how().store(how as u32, Ordering::Relaxed);
        self.ctl
            .wait()
            .store((self.wait_seq << 1) | 1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.order == WakeOrder::SleeperBarrier && !sleeper_barrier() {
            self.finish_wait();
            return BcastWait::Ready;
        }
        let closed = self.view.closed().load(Ordering::Acquire);
        let head = self.view.head().load(Ordering::Acquire);
        if head != self.cursor || closed != 0 || self.broken.is_some() {
            self.finish_wait();
            return BcastWait::Ready;
        }
        BcastWait::Sleep { futex_value }
    }

    /// Withdraws the sleep announcement (after waking).
    pub fn finish_wait(&mut self) {
        self.ctl.wait().store(self.wait_seq << 1, Ordering::Relaxed);
    }

    /// The wake word's address in our (read-only) mapping, for
    /// `FUTEX_WAIT`, which needs only read access.
    pub fn wake_word(&self) -> *const u32 {
        self.view.wake_ptr()
    }
}
