//! The consuming half.

use core::marker::PhantomData;
use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::chunk::ReadChunk;
use crate::copy;
use crate::error::{Corruption, Field, PopError, SetupError};
use crate::layout::KIND_ELEMENTS;
use crate::producer::checked_shared;
use crate::region::{RawRegion, Shared};
use crate::sync::{fence, Ordering};
use crate::wake::{WaitCheck, WaitWord, Waker};

/// The consuming half of a ring of `T`.
///
/// It keeps its read position privately and only *publishes* it. The
/// producer's write position is loaded once per refresh, validated (it
/// never moves backwards and never claims more than the capacity), and
/// cached; the cache is refreshed only when it says the ring is *possibly*
/// empty.
///
/// `Send` but not `Clone`: there is exactly one consumer per ring.
pub struct Consumer<T> {
    shared: Shared,
    /// Our read position, a free-running wrapping counter. Only we change
    /// it; the shared copy is a publication, never read back.
    read: u64,
    /// The producer's write position as last loaded and validated. Always
    /// `cached_write - read <= capacity` (wrapping). It may be stale: the
    /// producer may have published more since.
    cached_write: u64,
    waker: Waker,
    wait: WaitWord,
    /// Set once the peer is caught breaking the protocol; every later call
    /// returns it.
    poisoned: Option<Corruption>,
    _elements: PhantomData<T>,
}

impl<T> core::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.shared.capacity())
            .field("read", &self.read)
            .field("cached_write", &self.cached_write)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl<T: FromBytes + IntoBytes + Immutable> Consumer<T> {
    /// Initialises a fresh ring of `capacity` elements in `region` and
    /// returns its consumer; the producer then [attaches](crate::Producer::attach).
    pub fn create(region: RawRegion, capacity: usize) -> Result<Self, SetupError> {
        let shared = checked_shared::<T>(region, capacity)?;
        shared.init(KIND_ELEMENTS, size_of::<T>() as u32);
        Ok(Self::from_positions(shared, 0, 0))
    }

    /// Attaches to a ring the producer's side created, after checking the
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
        // Our own published position, read back once at attach time only.
        let read = shared.read_pos().load(Ordering::Relaxed);
        let write = shared.write_pos().load(Ordering::Acquire);
        if write.wrapping_sub(read) > shared.capacity() {
            return Err(SetupError::Corrupted(Corruption {
                field: Field::WritePosition,
                seen: write,
                min: read,
                max: read.wrapping_add(shared.capacity()),
            }));
        }
        Ok(Self::from_positions(shared, read, write))
    }

    pub(crate) fn from_positions(shared: Shared, read: u64, write: u64) -> Self {
        Self {
            shared,
            read,
            cached_write: write,
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

    fn cached_available(&self) -> u64 {
        self.cached_write.wrapping_sub(self.read)
    }

    /// Loads the producer's write position once and validates it: it may
    /// only have moved forward, and never more than a capacity ahead of our
    /// read position.
    fn refresh(&mut self) -> Result<u64, Corruption> {
        if let Some(c) = self.poisoned {
            return Err(c);
        }
        // Acquire: the producer's slot writes happen before our reads.
        let write = self.shared.write_pos().load(Ordering::Acquire);
        let ahead = write.wrapping_sub(self.read);
        if ahead > self.shared.capacity() || ahead < self.cached_available() {
            let c = Corruption {
                field: Field::WritePosition,
                seen: write,
                min: self.cached_write,
                max: self.read.wrapping_add(self.shared.capacity()),
            };
            self.poisoned = Some(c);
            return Err(c);
        }
        self.cached_write = write;
        Ok(ahead)
    }

    /// Filled slots, refreshing the cache only if it says fewer than `want`.
    #[inline]
    pub(crate) fn available(&mut self, want: u64) -> Result<u64, Corruption> {
        if let Some(c) = self.poisoned {
            return Err(c);
        }
        // *Possibly* empty: refresh, then check whether it is *really* empty.
        let available = self.cached_available();
        if available >= want {
            return Ok(available);
        }
        self.refresh()
    }

    /// Filled slots, up to at least `want` if that many are there: the
    /// cached count when it already shows `want`, else a refresh of the
    /// producer's position (what [`read_chunk`](Self::read_chunk) does
    /// first, so calling both costs no second load).
    #[inline]
    pub fn ready(&mut self, want: usize) -> Result<usize, Corruption> {
        self.available(want as u64).map(|n| n as usize)
    }

    /// The number of filled slots now (refreshes the producer's position).
    pub fn slots(&mut self) -> Result<usize, Corruption> {
        self.refresh().map(|n| n as usize)
    }

    /// Pops one element, and releases its slot at once.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_pair!(u8, 2);
    /// assert_eq!(rx.pop(), Err(spsc_core::PopError::Empty));
    /// tx.push(42)?;
    /// assert_eq!(rx.pop()?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn pop(&mut self) -> Result<T, PopError> {
        match self.available(1) {
            Ok(0) => return Err(PopError::Empty),
            Ok(_) => {}
            Err(c) => return Err(PopError::Corrupted(c)),
        }
        let mut value = T::new_zeroed();
        if self.take_inline(value.as_mut_bytes().as_mut_ptr(), 1) {
            self.release(1);
            return Ok(value);
        }
        self.shared.track(self.read, 1, false);
        let slot = self.shared.slot(self.read).cast::<T>();
        // SAFETY: the slot lies inside the data area (masked index) and is
        // aligned for `T` (`check_fits`). The volatile read happens exactly
        // once; whatever bytes the peer left there form a valid `T`
        // because `T: FromBytes`.
        let value = unsafe { core::ptr::read_volatile(slot) };
        self.release(1);
        Ok(value)
    }

    /// Copies as many elements as are available into `dst`, releases them,
    /// and returns how many were popped (0 when empty).
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn pop_slice(&mut self, dst: &mut [T]) -> Result<usize, Corruption> {
        let n = (dst.len() as u64).min(self.available(dst.len() as u64)?) as usize;
        if n == 0 {
            return Ok(0);
        }
        let bytes = dst[..n].as_mut_bytes();
        if self.take_inline(bytes.as_mut_ptr(), n) {
            self.release(n);
            return Ok(n);
        }
        self.shared.track(self.read, n, false);
        let (first, first_len, second_len) = self.shared.runs(self.read, n);
        let split = first_len * size_of::<T>();
        // SAFETY: `runs` returns slot runs inside the data area, filled by
        // the producer; `bytes` is private and does not overlap them. Any
        // bytes are a valid `T` (`FromBytes`).
        unsafe {
            copy::from_shared(bytes.as_mut_ptr(), first, split);
            copy::from_shared(
                bytes.as_mut_ptr().add(split),
                self.shared.data(),
                second_len * size_of::<T>(),
            );
        }
        self.release(n);
        Ok(n)
    }

    /// Copies the `n` elements at our position into private `dst` from
    /// the producer's inline copy, if it holds exactly them: all that is
    /// published (by our cache), few enough bytes, the copy's tag equal to
    /// the write position we loaded and its count equal to `n`, and the
    /// tag unchanged after the copy (a sequence lock: the producer writes
    /// the tag before the bytes). Otherwise returns `false`, and the
    /// caller reads the slots, which stay ours until we release them.
    ///
    /// Each shared value is loaded once; the second load of the tag only
    /// confirms the first. Whatever bytes a lying producer leaves there
    /// are valid elements (`T: FromBytes`), and the count and length come
    /// from our own validated position, so the copy never leaves the
    /// inline bytes or `dst`.
    #[inline]
    fn take_inline(&mut self, dst: *mut u8, n: usize) -> bool {
        let len = n * size_of::<T>();
        if len > crate::layout::INLINE_BYTES || self.cached_available() != n as u64 {
            return false;
        }
        // Acquire: the copy's bytes written before this tag was stored
        // are visible (the write position's Acquire load has done so
        // already for a tag stored before it).
        let tag = self.shared.inline_end().load(Ordering::Acquire);
        if tag != self.cached_write
            || self.shared.inline_count().load(Ordering::Relaxed) != n as u32
        {
            return false;
        }
        // SAFETY: `len <= INLINE_BYTES`, and `dst` is valid for `len`
        // bytes (the caller's `n` elements).
        unsafe { self.shared.inline_read(dst, len) };
        // Acquire fence, then the tag again: if any byte we copied was
        // written for a later publication, its tag (stored before it,
        // behind a Release fence) is what we see now.
        fence(Ordering::Acquire);
        self.shared.inline_end().load(Ordering::Relaxed) == tag
    }

    /// Up to `max` filled slots to read in place, as at most two runs; see
    /// [`ReadChunk`]. Nothing is released until the chunk is released.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_pair!(u64, 8);
    /// tx.push_slice(&[5, 6, 7])?;
    /// let chunk = rx.read_chunk(8)?;
    /// assert_eq!(chunk.len(), 3);
    /// assert_eq!(chunk.get(2), 7);
    /// let _wake = chunk.release_all();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_chunk(&mut self, max: usize) -> Result<ReadChunk<'_, T>, Corruption> {
        let n = (max as u64).min(self.available(max as u64)?) as usize;
        self.shared.track(self.read, n, false);
        let (first, first_len, second_len) = self.shared.runs(self.read, n);
        let data = self.shared.data();
        Ok(ReadChunk::new(self, first, first_len, data, second_len))
    }

    /// Whether the producer announced it is waiting for room and has not
    /// yet been woken for that wait: call after releasing, and if it
    /// returns `true`, wake the producer. One full fence, no syscall.
    #[inline]
    pub fn needs_wake(&mut self) -> bool {
        self.check_wake()
    }

    /// Announces that we are about to sleep until data arrives, then
    /// re-checks. See [`Producer::prepare_wait`](crate::Producer::prepare_wait)
    /// for the protocol; the producer's
    /// [`needs_wake`](crate::Producer::needs_wake) will report the sleep.
    pub fn prepare_wait(&mut self) -> Result<WaitCheck, Corruption> {
        if let Some(c) = self.poisoned {
            return Err(c);
        }
        // The announcement, then a SeqCst fence (and the sleeper's barrier
        // if we declared one) before our re-check; see the `wake` module.
        let ordered = self.wait.announce(self.shared.consumer_wait());
        match self.refresh() {
            // Closed and empty: the end is there, don't sleep. (The
            // producer's `close` stores the mark, then fences and loads
            // our wait word: one of us sees the other.) A failed barrier:
            // don't sleep either (the producer may have skipped its fence).
            Ok(0) if ordered && !self.producer_closed() => Ok(WaitCheck::Sleep),
            Ok(_) => {
                self.finish_wait();
                Ok(WaitCheck::Ready)
            }
            Err(c) => {
                self.finish_wait();
                Err(c)
            }
        }
    }

    /// Withdraws the announcement of [`prepare_wait`](Self::prepare_wait).
    pub fn finish_wait(&mut self) {
        self.wait.withdraw(self.shared.consumer_wait());
    }

    /// Whether the stream has ended: the producer
    /// [closed](crate::Producer::close) it and everything it published
    /// before has been consumed. Call it when the ring was found empty.
    ///
    /// Loads the header's "closed" word once (Acquire); if it is nonzero
    /// (any nonzero value means closed), looks for data once more, since
    /// every publication before the mark is now visible: `true` only if
    /// there is still none. Data a producer publishes after its mark is
    /// delivered if it is seen before this check. The answer is not
    /// sticky (the word is the peer's to write): a caller that reports the
    /// end remembers it. A hostile producer can fake the end, or never
    /// give it, only for its own stream.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_pair!(u64, 8);
    /// assert!(!rx.end_of_stream()?); // open, and empty
    /// tx.push_slice(&[1, 2])?;
    /// let _wake = tx.close();
    /// let mut out = [0u64; 8];
    /// assert_eq!(rx.pop_slice(&mut out)?, 2); // everything first
    /// assert!(rx.end_of_stream()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn end_of_stream(&mut self) -> Result<bool, Corruption> {
        if let Some(c) = self.poisoned {
            return Err(c);
        }
        if !self.producer_closed() {
            return Ok(false);
        }
        Ok(self.refresh()? == 0)
    }

    /// Whether the producer has marked its stream closed (one Acquire
    /// load of `producer_closed`), whether or not data is still queued:
    /// an event loop uses it to say how a peer that hung up left
    /// ([`end_of_stream`](Self::end_of_stream) says when to stop reading).
    #[inline]
    pub fn closed_mark(&self) -> bool {
        self.producer_closed()
    }

    /// The corruption this handle has seen, if any.
    pub fn corruption(&self) -> Option<Corruption> {
        self.poisoned
    }
}

impl<T> Consumer<T> {
    /// The view of the region.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Our private read position.
    pub(crate) fn read_position(&self) -> u64 {
        self.read
    }

    /// Whether the producer's "closed" word is set (one Acquire load:
    /// every publication before the mark is visible after it).
    #[inline]
    pub(crate) fn producer_closed(&self) -> bool {
        self.shared.producer_closed().load(Ordering::Acquire) != 0
    }

    /// Records that the peer was caught breaking the protocol (sticky).
    pub(crate) fn poison(&mut self, c: Corruption) -> Corruption {
        *self.poisoned.get_or_insert(c)
    }

    /// Releases `n` slots. Release ordering: our reads of them happen
    /// before the producer's Acquire load sees the new position and
    /// overwrites them.
    #[inline]
    pub(crate) fn release(&mut self, n: usize) {
        self.advance(n);
        self.publish_position();
    }

    /// Moves our private read position by `n` without publishing it (a
    /// message ring's batch receive publishes once per batch).
    #[inline]
    pub(crate) fn advance(&mut self, n: usize) {
        self.read = self.read.wrapping_add(n as u64);
    }

    /// Stores our private read position in the header. Release: our reads
    /// of the released slots happen before the producer's Acquire load
    /// sees it and overwrites them.
    #[inline]
    pub(crate) fn publish_position(&mut self) {
        self.shared.read_pos().store(self.read, Ordering::Release);
    }

    /// The corruption this handle has seen, if any (for wrappers whose
    /// element type is not `FromBytes`-bounded here).
    pub(crate) fn poisoned(&self) -> Option<Corruption> {
        self.poisoned
    }

    /// Announces sleep in our wait word, then fences (and runs the
    /// sleeper's barrier if we declared one); the caller then re-checks
    /// whatever it waits for. `false`: the barrier failed, don't sleep.
    #[must_use]
    pub(crate) fn announce_wait(&mut self) -> bool {
        self.wait.announce(self.shared.consumer_wait())
    }

    /// Declares that every announcement of ours runs `barrier`, which
    /// must be `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` (or
    /// stronger), after its fence: a registered producer may then skip
    /// the fence of its wake-up checks. See [`SLEEPER_BARRIER`](crate::SLEEPER_BARRIER).
    /// `barrier` returns `false` if it failed; the announcement is then
    /// not slept on ([`prepare_wait`](Self::prepare_wait) answers
    /// `Ready`).
    pub fn declare_sleeper_barrier(&mut self, barrier: fn() -> bool) {
        self.wait
            .declare_barrier(self.shared.consumer_barrier(), barrier);
    }

    /// Withdraws [`declare_sleeper_barrier`](Self::declare_sleeper_barrier):
    /// stores 0 in our declaration, then runs the barrier once (so a peer
    /// check that read the declaration before is ordered by it); our
    /// announcements then only fence. For a half handed to an event loop
    /// that announces often. `false` if that barrier failed (the
    /// declaration then stays).
    pub fn withdraw_sleeper_barrier(&mut self) -> bool {
        self.wait.withdraw_barrier(self.shared.consumer_barrier())
    }

    /// Says that this process registered with
    /// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`: our wake-up checks
    /// skip their fence when the producer declared its sleeper's barrier
    /// ([`SLEEPER_BARRIER`](crate::SLEEPER_BARRIER)).
    pub fn set_registered_for_sleeper_barrier(&mut self) {
        self.waker.set_registered();
    }

    /// Withdraws the announcement (for wrappers).
    pub(crate) fn withdraw_wait(&mut self) {
        self.wait.withdraw(self.shared.consumer_wait());
    }

    /// Whether the producer sleeps and must be woken (fence, then its
    /// wait word), for wrappers.
    #[inline]
    pub(crate) fn check_wake(&mut self) -> bool {
        self.waker
            .check(self.shared.producer_wait(), self.shared.producer_barrier())
    }

    /// Releases `n` slots read through a chunk and says whether the
    /// producer must be woken.
    pub(crate) fn release_chunk(&mut self, n: usize) -> bool {
        self.release(n);
        self.check_wake()
    }
}
