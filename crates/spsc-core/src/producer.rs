//! The producing half.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::chunk::WriteChunk;
use crate::copy;
use crate::error::{Corruption, Field, PushError, SetupError};
use crate::layout::{RingLayout, KIND_ELEMENTS};
use crate::region::{RawRegion, Shared};
use crate::sync::{fence, Ordering};
use crate::wake::{WaitCheck, WaitWord, Waker};

/// The producing half of a ring of `T`.
///
/// It keeps its write position privately and only *publishes* it; it never
/// reads its own position back from shared memory. The consumer's read
/// position is loaded once per refresh, validated, and cached, and the
/// cache is refreshed only when it says the ring is *possibly* full.
///
/// `Send` but not `Clone`: there is exactly one producer per ring.
pub struct Producer<T> {
    shared: Shared,
    /// Our write position, a free-running wrapping counter. Only we change
    /// it; the shared copy is a publication, never read back.
    write: u64,
    /// The consumer's read position as last loaded and validated. Always
    /// `write - cached_read <= capacity` (wrapping). It may be stale: the
    /// consumer may have moved on since, which only makes us see less free
    /// room than there is.
    cached_read: u64,
    waker: Waker,
    wait: WaitWord,
    /// Set once the peer is caught breaking the protocol; every later call
    /// returns it.
    poisoned: Option<Corruption>,
    _elements: PhantomData<T>,
}

impl<T> core::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.shared.capacity())
            .field("write", &self.write)
            .field("cached_read", &self.cached_read)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl<T: FromBytes + IntoBytes + Immutable> Producer<T> {
    /// Initialises a fresh ring of `capacity` elements in `region` and
    /// returns its producer; the consumer then [attaches](crate::Consumer::attach).
    ///
    /// Call this before the peer can see the region, or at least before it
    /// attaches: the header is written without synchronisation beyond the
    /// magic's release store.
    pub fn create(region: RawRegion, capacity: usize) -> Result<Self, SetupError> {
        let shared = checked_shared::<T>(region, capacity)?;
        shared.init(KIND_ELEMENTS, size_of::<T>() as u32);
        Ok(Self::from_positions(shared, 0, 0))
    }

    /// Attaches to a ring the consumer's side created, after checking the
    /// header against what *we* expect: layout version, kind, our element
    /// size and `capacity`. The positions are loaded once and must be
    /// consistent.
    pub fn attach(region: RawRegion, capacity: usize) -> Result<Self, SetupError> {
        let shared = checked_shared::<T>(region, capacity)?;
        shared.validate(KIND_ELEMENTS, size_of::<T>() as u32)?;
        Self::attach_validated(shared)
    }

    /// The position part of `attach`, for a header already validated.
    pub(crate) fn attach_validated(shared: Shared) -> Result<Self, SetupError> {
        // Our own published position, read back once at attach time only:
        // the creator wrote it, and it must be consistent with the read
        // position. From here on it lives in private memory.
        let write = shared.write_pos().load(Ordering::Relaxed);
        let read = shared.read_pos().load(Ordering::Acquire);
        let used = write.wrapping_sub(read);
        if used > shared.capacity() {
            return Err(SetupError::Corrupted(Corruption {
                field: Field::ReadPosition,
                seen: read,
                min: write.wrapping_sub(shared.capacity()),
                max: write,
            }));
        }
        Ok(Self::from_positions(shared, write, read))
    }

    pub(crate) fn from_positions(shared: Shared, write: u64, read: u64) -> Self {
        Self {
            shared,
            write,
            cached_read: read,
            waker: Waker::default(),
            wait: WaitWord::default(),
            poisoned: None,
            _elements: PhantomData,
        }
    }

    /// The capacity in elements.
    pub fn capacity(&self) -> usize {
        self.shared.capacity() as usize
    }

    /// Free slots according to the cache (a lower bound).
    fn cached_free(&self) -> u64 {
        self.shared.capacity() - self.write.wrapping_sub(self.cached_read)
    }

    /// Loads the consumer's read position once and validates it: it may
    /// only have moved forward, and never past our write position.
    fn refresh(&mut self) -> Result<u64, Corruption> {
        if let Some(c) = self.poisoned {
            return Err(c);
        }
        // Acquire: the consumer's reads of the slots it released happen
        // before our writes into them.
        let read = self.shared.read_pos().load(Ordering::Acquire);
        // Valid iff `cached_read <= read <= write` in wrapping coordinates
        // anchored at `cached_read`.
        if read.wrapping_sub(self.cached_read) > self.write.wrapping_sub(self.cached_read) {
            let c = Corruption {
                field: Field::ReadPosition,
                seen: read,
                min: self.cached_read,
                max: self.write,
            };
            self.poisoned = Some(c);
            return Err(c);
        }
        self.cached_read = read;
        Ok(self.cached_free())
    }

    /// Free slots, refreshing the cache only if it says fewer than `want`.
    #[inline]
    pub(crate) fn free(&mut self, want: u64) -> Result<u64, Corruption> {
        if let Some(c) = self.poisoned {
            return Err(c);
        }
        // *Possibly* full: refresh, then check whether it is *really* full.
        let free = self.cached_free();
        if free >= want {
            return Ok(free);
        }
        self.refresh()
    }

    /// The number of free slots now (refreshes the consumer's position).
    pub fn slots(&mut self) -> Result<usize, Corruption> {
        self.refresh().map(|n| n as usize)
    }

    /// Pushes one element, and publishes it at once.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_pair!(u32, 4);
    /// tx.push(7)?;
    /// assert_eq!(rx.pop()?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        match self.free(1) {
            Ok(0) => return Err(PushError::Full(value)),
            Ok(_) => {}
            Err(c) => return Err(PushError::Corrupted(c)),
        }
        self.shared.track(self.write, 1, true);
        let slot = self.shared.slot(self.write).cast::<T>();
        self.stage_inline(value.as_bytes().as_ptr(), 1);
        // SAFETY: the slot lies inside the data area (masked index), is
        // aligned for `T` (`check_fits`), and is free: the consumer has
        // released it. A volatile write never lets the compiler assume
        // anything about memory the peer may also write.
        unsafe { core::ptr::write_volatile(slot, value) };
        self.publish(1);
        Ok(())
    }

    /// Copies the `n` elements about to be published (from private `src`)
    /// into the inline copy on our line, tagged with the position after
    /// them, when they fit ([`INLINE_BYTES`](crate::INLINE_BYTES)): a
    /// consumer that is caught up then reads them from the line it loads
    /// the write position from, one cache-line transfer instead of two.
    /// The slots hold them too, and stay the truth.
    #[inline]
    fn stage_inline(&self, src: *const u8, n: usize) {
        let len = n * size_of::<T>();
        if len > crate::layout::INLINE_BYTES {
            return;
        }
        let end = self.write.wrapping_add(n as u64);
        // The tag first, then (Release fence) the bytes and the count: a
        // consumer that reads any of these bytes and then (Acquire fence)
        // the tag again sees this tag, so it never takes a copy we are
        // overwriting for one it had found complete. The Release store
        // of the write position that follows publishes the copy whole.
        self.shared.inline_end().store(end, Ordering::Relaxed);
        fence(Ordering::Release);
        // SAFETY: `src` is valid for `len` bytes (the caller's elements).
        unsafe { self.shared.inline_write(src, len) };
        self.shared
            .inline_count()
            .store(n as u32, Ordering::Relaxed);
    }

    /// Copies as many elements of `src` as fit, publishes them, and returns
    /// how many were pushed (0 when full).
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_pair!(u16, 4);
    /// assert_eq!(tx.push_slice(&[1, 2, 3, 4, 5, 6])?, 4);
    /// let mut out = [0u16; 8];
    /// assert_eq!(rx.pop_slice(&mut out)?, 4);
    /// assert_eq!(out[..4], [1, 2, 3, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn push_slice(&mut self, src: &[T]) -> Result<usize, Corruption> {
        let n = (src.len() as u64).min(self.free(src.len() as u64)?) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.shared.track(self.write, n, true);
        let (first, first_len, second_len) = self.shared.runs(self.write, n);
        let bytes = src[..n].as_bytes();
        let split = first_len * size_of::<T>();
        // SAFETY: `runs` returns slot runs inside the data area, free for
        // us to write; `bytes` is private and does not overlap them.
        unsafe {
            copy::to_shared(first, bytes.as_ptr(), split);
            copy::to_shared(
                self.shared.data(),
                bytes.as_ptr().add(split),
                second_len * size_of::<T>(),
            );
        }
        self.stage_inline(bytes.as_ptr(), n);
        self.publish(n);
        Ok(n)
    }

    /// Up to `max` free slots to write in place, as at most two runs; see
    /// [`WriteChunk`]. Nothing is published until the chunk is committed.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_pair!(u64, 8);
    /// let mut chunk = tx.write_chunk(3)?;
    /// for i in 0..chunk.len() {
    ///     chunk.set(i, i as u64 * 10);
    /// }
    /// let _wake = chunk.commit_all();
    /// assert_eq!(rx.pop()?, 0);
    /// assert_eq!(rx.pop()?, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_chunk(&mut self, max: usize) -> Result<WriteChunk<'_, T>, Corruption> {
        let n = (max as u64).min(self.free(max as u64)?) as usize;
        self.shared.track(self.write, n, true);
        let (first, first_len, second_len) = self.shared.runs(self.write, n);
        let data = self.shared.data();
        Ok(WriteChunk::new(self, first, first_len, data, second_len))
    }

    /// Whether the consumer announced it is going to sleep and has not yet
    /// been woken for that sleep: call after publishing, and if it returns
    /// `true`, wake the consumer (for example by an eventfd write).
    ///
    /// Costs one full fence (see the crate docs for why it is needed) and no
    /// syscall; a consumer that keeps up never announces sleep, so never
    /// costs a wake-up.
    #[inline]
    pub fn needs_wake(&mut self) -> bool {
        self.check_wake()
    }

    /// Announces that we are about to sleep until the consumer frees at
    /// least `want` slots, then re-checks.
    ///
    /// If it returns [`WaitCheck::Ready`] the room is there: don't sleep.
    /// If it returns [`WaitCheck::Sleep`], sleep until woken (or a timeout),
    /// then call [`finish_wait`](Self::finish_wait). The consumer's
    /// [`needs_wake`](crate::Consumer::needs_wake) will report the sleep.
    pub fn prepare_wait(&mut self, want: usize) -> Result<WaitCheck, Corruption> {
        if let Some(c) = self.poisoned {
            return Err(c);
        }
        // The announcement, then a SeqCst fence (and the sleeper's barrier
        // if we declared one) before our re-check, paired with the
        // consumer's fence (or our barrier) between its release and its
        // check of our announcement: at least one side sees the other's
        // store, so no wake-up is lost. A failed barrier: don't sleep.
        let ordered = self.wait.announce(self.shared.producer_wait());
        match self.refresh() {
            Ok(free) if !ordered || free >= (want as u64).min(self.shared.capacity()) => {
                self.finish_wait();
                Ok(WaitCheck::Ready)
            }
            Ok(_) => Ok(WaitCheck::Sleep),
            Err(c) => {
                self.finish_wait();
                Err(c)
            }
        }
    }

    /// Withdraws the announcement of [`prepare_wait`](Self::prepare_wait).
    pub fn finish_wait(&mut self) {
        self.wait.withdraw(self.shared.producer_wait());
    }

    /// Declares that every announcement of ours runs `barrier`, which
    /// must be `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` (or
    /// stronger), after its fence: a registered consumer may then skip
    /// the fence of its wake-up checks. See [`SLEEPER_BARRIER`](crate::SLEEPER_BARRIER).
    /// `barrier` returns `false` if it failed; the announcement is then
    /// not slept on ([`prepare_wait`](Self::prepare_wait) answers
    /// `Ready`).
    pub fn declare_sleeper_barrier(&mut self, barrier: fn() -> bool) {
        self.wait
            .declare_barrier(self.shared.producer_barrier(), barrier);
    }

    /// Withdraws [`declare_sleeper_barrier`](Self::declare_sleeper_barrier):
    /// stores 0 in our declaration, then runs the barrier once (so a peer
    /// check that read the declaration before is ordered by it); our
    /// announcements then only fence. For a half handed to an event loop
    /// that announces often. `false` if that barrier failed (the
    /// declaration then stays).
    pub fn withdraw_sleeper_barrier(&mut self) -> bool {
        self.wait.withdraw_barrier(self.shared.producer_barrier())
    }

    /// Says that this process registered with
    /// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`: our wake-up checks
    /// skip their fence when the consumer declared its sleeper's barrier
    /// ([`SLEEPER_BARRIER`](crate::SLEEPER_BARRIER)).
    pub fn set_registered_for_sleeper_barrier(&mut self) {
        self.waker.set_registered();
    }

    /// The corruption this handle has seen, if any.
    pub fn corruption(&self) -> Option<Corruption> {
        self.poisoned
    }
}

impl<T> Producer<T> {
    /// Closes the stream: stores 1 in the header's "closed" word (Release,
    /// after every publication so far), then checks, as after a
    /// publication, whether the consumer sleeps. Returns `true` if it must
    /// be woken (an eventfd write, say), so that it sees the end.
    ///
    /// The consumer delivers everything published before, then reports
    /// the end ([`Consumer::end_of_stream`](crate::Consumer::end_of_stream)).
    /// Publishing after `close` is a protocol error of ours: the consumer
    /// may or may not see what comes after the mark.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_pair!(u32, 4);
    /// tx.push(1)?;
    /// let _wake = tx.close();
    /// assert!(!rx.end_of_stream()?); // 1 is still there
    /// assert_eq!(rx.pop()?, 1);
    /// assert!(rx.end_of_stream()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "if this returns true, the consumer is asleep and must be woken"]
    pub fn close(&mut self) -> bool {
        // Release: the write position stores before (every publication)
        // happen before a consumer's Acquire load that sees the mark, so
        // its re-check after that load sees all the data.
        self.shared.producer_closed().store(1, Ordering::Release);
        // The wake-up check of a publication: SeqCst fence, then the
        // consumer's wait word (see the `wake` module; the consumer's
        // `prepare_wait` re-checks the mark after its fence).
        self.check_wake()
    }
}

/// Checks the geometry and the region for a ring of `T`.
pub(crate) fn checked_shared<T>(region: RawRegion, capacity: usize) -> Result<Shared, SetupError> {
    let layout = RingLayout::new::<T>(capacity)?;
    region.check_fits(&layout, align_of::<T>())?;
    Ok(Shared::new(region, &layout))
}

impl<T> Producer<T> {
    /// The view of the region.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Our private write position.
    pub(crate) fn write_position(&self) -> u64 {
        self.write
    }

    /// The consumer's read position as last loaded and validated.
    pub(crate) fn cached_read(&self) -> u64 {
        self.cached_read
    }

    /// Publishes `n` more elements. Release: the slot writes happen before
    /// the consumer's Acquire load sees the new position.
    /// Whether the consumer sleeps and must be woken: the fence (unless
    /// the consumer declared the sleeper's barrier and we registered),
    /// then its wait word; see the `wake` module.
    #[inline]
    pub(crate) fn check_wake(&mut self) -> bool {
        self.waker
            .check(self.shared.consumer_wait(), self.shared.consumer_barrier())
    }

    #[inline]
    pub(crate) fn publish(&mut self, n: usize) {
        self.advance(n);
        self.publish_position();
    }

    /// Moves our private write position by `n` without publishing it (a
    /// message ring publishes each record through its header word, and
    /// its write position once per batch).
    #[inline]
    pub(crate) fn advance(&mut self, n: usize) {
        self.write = self.write.wrapping_add(n as u64);
    }

    /// Stores our private write position in the header. Release: the slot
    /// writes happen before the consumer's Acquire load sees it.
    #[inline]
    pub(crate) fn publish_position(&mut self) {
        self.shared.write_pos().store(self.write, Ordering::Release);
    }

    /// Publishes `n` elements written through a chunk and says whether the
    /// consumer must be woken.
    pub(crate) fn commit_chunk(&mut self, n: usize) -> bool {
        self.publish(n);
        self.check_wake()
    }
}
