//! The consuming half of a message ring: where every length the peer wrote
//! is loaded once and validated.

use core::marker::PhantomData;

use super::{check_aligned, open, pending_word, record_size, tag, MsgPopError};
use super::{Batch, ALIGN, HEADER, SKIP_MARKER};
use crate::consumer::Consumer;
use crate::copy;
use crate::error::{Corruption, Field, PopError, SetupError};
use crate::region::RawRegion;
use crate::sync::Ordering;
use crate::wake::WaitCheck;

/// The consuming half of a message ring.
///
/// It hands out the next message as one contiguous [`Record`]. It waits
/// on the next record's header word (on the same cache line as the start
/// of the payload), not on the producer's write position. Each header
/// word (and a skip marker before it, if any) is loaded from shared memory
/// exactly once, with one atomic load, and its sequence tag and length
/// are checked: the tag against the position, the length against the
/// maximum message size and the end of the ring; a bad one is a
/// [`Corruption`] and poisons the handle. Our read position is private and
/// only published: after every release, or once per
/// [batch](Self::recv_many).
///
/// `Send` but not `Clone`: there is exactly one consumer per ring.
///
/// ```
/// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 256);
/// tx.push(b"one")?;
/// tx.push(b"three")?;
/// let record = rx.read()?;
/// let mut buf = [0u8; 3];
/// record.copy_to_slice(&mut buf);
/// assert_eq!(&buf, b"one");
/// let _wake = record.release();
/// assert_eq!(rx.read()?.len(), 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MsgConsumer {
    /// The element ring's consumer over byte slots: read position (always
    /// a multiple of 8), wait word, poisoning. (Its cached write position
    /// is unused: a message consumer waits on header words.)
    inner: Consumer<u8>,
    /// Our maximum message size, which the header had to match.
    max_msg: u32,
}

impl core::fmt::Debug for MsgConsumer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MsgConsumer")
            .field("max_msg", &self.max_msg)
            .field("inner", &self.inner)
            .finish()
    }
}

/// A validated record: where its payload is, how long, and how far the
/// read position advances past it (and a skip before it).
#[derive(Debug, Clone, Copy)]
struct Found {
    payload: usize,
    len: usize,
    advance: u64,
}

impl MsgConsumer {
    /// Initialises a fresh message ring of `capacity` bytes for messages of
    /// at most `max_msg` bytes (see [`MsgLayout`](crate::MsgLayout)) in `region` and returns
    /// its consumer; the producer then [attaches](crate::MsgProducer::attach).
    ///
    /// ```
    /// use spsc_core::{MsgConsumer, MsgProducer, RawRegion};
    /// # let region = spsc_core::__doc_msg_region!(1024, 64);
    /// let rx = MsgConsumer::create(region, 1024, 64)?;
    /// let tx = MsgProducer::attach(region, 1024, 64)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(region: RawRegion, capacity: usize, max_msg: usize) -> Result<Self, SetupError> {
        let shared = open(region, capacity, max_msg, true)?;
        Ok(Self {
            inner: Consumer::from_positions(shared, 0, 0),
            max_msg: max_msg as u32,
        })
    }

    /// Attaches to a message ring the producer's side created, after
    /// checking the header against what *we* expect: layout version, kind,
    /// `capacity` and `max_msg`. The positions are loaded once and must be
    /// consistent, and ours must be a multiple of 8.
    ///
    /// ```
    /// use spsc_core::{MsgConsumer, MsgProducer, RawRegion, SetupError};
    /// # let region = spsc_core::__doc_msg_region!(1024, 64);
    /// let tx = MsgProducer::create(region, 1024, 64)?;
    /// assert!(matches!(
    ///     MsgConsumer::attach(region, 512, 64),
    ///     Err(SetupError::CapacityMismatch { expected: 512, found: 1024 })
    /// ));
    /// let rx = MsgConsumer::attach(region, 1024, 64)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach(region: RawRegion, capacity: usize, max_msg: usize) -> Result<Self, SetupError> {
        let inner = Consumer::attach_validated(open(region, capacity, max_msg, false)?)?;
        check_aligned(inner.read_position(), Field::ReadPosition)?;
        let max_msg = max_msg as u32;
        Ok(Self { inner, max_msg })
    }

    /// The capacity in bytes.
    ///
    /// ```
    /// # let (_tx, rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert_eq!(rx.capacity(), 1024);
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// The maximum message size in bytes.
    ///
    /// ```
    /// # let (_tx, rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert_eq!(rx.max_msg(), 64);
    /// ```
    pub fn max_msg(&self) -> usize {
        self.max_msg as usize
    }

    /// Bytes published and not yet released, record headers, padding and
    /// skips included; zero exactly when there is no message.
    ///
    /// Counted by walking the published records' header words from our
    /// position (each validated as a receive would, up to the first not
    /// yet published), so it costs one load per pending record. The
    /// producer's write position in the header is only a lagging hint and
    /// is not used. A corrupted first record is reported (and poisons the
    /// handle, as a receive would); the count stops before a corrupted
    /// later one, which the receive that reaches it reports.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert_eq!(rx.pending_bytes()?, 0);
    /// tx.push(&[1; 9])?;
    /// assert_eq!(rx.pending_bytes()?, 8 + 16);
    /// tx.push(b"two")?;
    /// assert_eq!(rx.pending_bytes()?, 8 + 16 + 8 + 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pending_bytes(&mut self) -> Result<usize, Corruption> {
        let first = match self.next() {
            Ok(found) => found,
            Err(PopError::Empty) => return Ok(0),
            Err(PopError::Corrupted(c)) => return Err(c),
        };
        let capacity = self.inner.shared().capacity();
        let read = self.inner.read_position();
        let mut pending = first.advance;
        // Every advance is at least one header, so this ends within
        // `capacity / 8` records even if the producer lies.
        while pending < capacity {
            match self.locate_at(read.wrapping_add(pending)) {
                Ok(Some(found)) => pending += found.advance,
                Ok(None) | Err(_) => break,
            }
        }
        Ok(pending.min(capacity) as usize)
    }

    /// Finds and validates the next record, if the producer has published
    /// one. Each header word is loaded exactly once, with one atomic load;
    /// only the locals are used.
    #[inline]
    fn locate(&self) -> Result<Option<Found>, Corruption> {
        self.locate_at(self.inner.read_position())
    }

    /// [`locate`](Self::locate) for the record at position `read`: ours,
    /// or (for [`pending_bytes`](Self::pending_bytes)) the end of a
    /// published record after it, where the producer wrote the pending
    /// word before publishing that record.
    #[inline]
    fn locate_at(&self, read: u64) -> Result<Option<Found>, Corruption> {
        let shared = self.inner.shared();
        let capacity = shared.capacity();
        // Our read position is a multiple of 8 (checked at attach; every
        // advance is one), so a header never straddles the ring's end.
        let index = read & (capacity - 1);
        // Acquire: pairs with the producer's Release store of this word,
        // so the payload (and the pending word after the record) that it
        // wrote before are visible to us.
        let word = shared.record_word(index as usize).load(Ordering::Acquire);
        let expected = tag(read);
        let seen = (word >> 32) as u32;
        if seen != expected {
            // The header of the previous lap: the producer filled the ring
            // to the last byte and has not written here since. Not yet.
            // (`capacity / 8` is below 2^32 and not 0 mod 2^32, so this
            // tag differs from the expected one.)
            if seen == tag(read.wrapping_sub(capacity)) {
                return Ok(None);
            }
            return Err(Corruption {
                field: Field::RecordSequence,
                seen: u64::from(seen),
                min: u64::from(expected),
                max: u64::from(expected),
            });
        }
        if word == pending_word(read) {
            return Ok(None);
        }
        let mut len = word as u32;
        let mut at = index;
        let mut skip = 0;
        if len == SKIP_MARKER {
            // A marker at offset 0 would skip the whole ring.
            if index == 0 {
                return Err(Corruption {
                    field: Field::SkipMarker,
                    seen: capacity,
                    min: HEADER,
                    max: capacity - HEADER,
                });
            }
            skip = capacity - index;
            at = 0;
            let pos = read.wrapping_add(skip);
            // Acquire, as above. The producer stored the record at offset
            // 0 before the marker: it must be there, with its tag.
            let word = shared.record_word(0).load(Ordering::Acquire);
            let expected = tag(pos);
            let seen = (word >> 32) as u32;
            if seen != expected {
                return Err(Corruption {
                    field: Field::RecordSequence,
                    seen: u64::from(seen),
                    min: u64::from(expected),
                    max: u64::from(expected),
                });
            }
            len = word as u32;
        }
        // The padded record must end before the ring's end, and the length
        // respect the maximum. A skip marker or a pending word here (after
        // a skip) exceeds the maximum.
        let room = (capacity - at - HEADER) & !(ALIGN - 1);
        let max = room.min(u64::from(self.max_msg));
        if u64::from(len) > max {
            return Err(Corruption {
                field: Field::RecordLength,
                seen: u64::from(len),
                min: 0,
                max,
            });
        }
        Ok(Some(Found {
            payload: (at + HEADER) as usize,
            len: len as usize,
            advance: skip + record_size(u64::from(len)),
        }))
    }

    /// The next message, as one contiguous [`Record`] to read in place.
    /// Nothing is freed until it is [released](Record::release); dropping
    /// it leaves the message in the ring.
    ///
    /// ```
    /// use spsc_core::PopError;
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert!(matches!(rx.read(), Err(PopError::Empty)));
    /// tx.push(b"abc")?;
    /// let record = rx.read()?;
    /// assert_eq!(record.len(), 3);
    /// let _wake = record.release();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn read(&mut self) -> Result<Record<'_>, PopError> {
        let found = self.next()?;
        Ok(self.record(found))
    }

    /// The record view of a validated record.
    #[inline]
    fn record(&mut self, found: Found) -> Record<'_> {
        let shared = self.inner.shared();
        // Loom: the whole record now (its headers were just read), and the
        // payload bytes again when they are copied, so that a copy after
        // release shows as a race.
        shared.track_bytes(self.inner.read_position(), found.advance, false);
        // SAFETY: `locate` checked that the payload lies inside the data
        // area.
        let payload = unsafe { shared.data().add(found.payload) };
        Record {
            consumer: self,
            payload,
            len: found.len,
            advance: found.advance,
            _borrow: PhantomData,
        }
    }

    /// The next record, validated; poisons the handle on corruption.
    #[inline]
    fn next(&mut self) -> Result<Found, PopError> {
        if let Some(c) = self.inner.poisoned() {
            return Err(PopError::Corrupted(c));
        }
        match self.locate() {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(PopError::Empty),
            Err(c) => Err(PopError::Corrupted(self.inner.poison(c))),
        }
    }

    /// Copies the next message into `buf`, releases it, and returns its
    /// length (without checking for a waiting producer: call
    /// [`needs_wake`](Self::needs_wake) after one or a batch of pops).
    ///
    /// A message longer than `buf` stays in the ring
    /// ([`MsgPopError::BufferTooSmall`]); a buffer of
    /// [`max_msg`](Self::max_msg) bytes always suffices.
    ///
    /// ```
    /// use spsc_core::MsgPopError;
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(b"hello")?;
    /// assert_eq!(rx.pop(&mut [0; 4]), Err(MsgPopError::BufferTooSmall { len: 5, buf: 4 }));
    /// let mut buf = [0; 64];
    /// assert_eq!(rx.pop(&mut buf)?, 5);
    /// assert_eq!(rx.pop(&mut buf), Err(MsgPopError::Empty));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn pop(&mut self, buf: &mut [u8]) -> Result<usize, MsgPopError> {
        let record = self.read().map_err(|e| match e {
            PopError::Empty => MsgPopError::Empty,
            PopError::Corrupted(c) => MsgPopError::Corrupted(c),
        })?;
        let len = record.len();
        if len > buf.len() {
            return Err(MsgPopError::BufferTooSmall {
                len,
                buf: buf.len(),
            });
        }
        record.copy_to_slice(&mut buf[..len]);
        let advance = record.advance as usize;
        record.consumer.inner.release(advance);
        Ok(len)
    }

    /// [`pop`](Self::pop) with an empty ring as `Ok(None)`: copies the
    /// next message into `buf`, releases it and returns its length, or
    /// `None` if there is none yet (no wake-up check: call
    /// [`needs_wake`](Self::needs_wake) after one or a batch).
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// let mut buf = [0; 64];
    /// assert_eq!(rx.try_recv_into(&mut buf)?, None);
    /// tx.push(b"hi")?;
    /// assert_eq!(rx.try_recv_into(&mut buf)?, Some(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<Option<usize>, MsgPopError> {
        match self.pop(buf) {
            Ok(n) => Ok(Some(n)),
            Err(MsgPopError::Empty) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Receives up to `max` messages that are there now, handing each to
    /// `each` to read in place (as [`Record::read_at`] and friends allow),
    /// then publishes the read position once and checks once whether the
    /// producer sleeps (one fence for the whole batch).
    ///
    /// Returns how many messages were received and whether to wake the
    /// producer. Every message handed to `each` is released. If the peer is
    /// caught corrupting the ring after some messages were received, those
    /// are released and returned, and the next call reports the corruption
    /// (the handle is poisoned).
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(b"one")?;
    /// tx.push(b"two")?;
    /// let mut got = Vec::new();
    /// let batch = rx.recv_many(16, |record| {
    ///     let mut buf = [0u8; 3];
    ///     record.copy_to_slice(&mut buf);
    ///     got.push(buf);
    /// })?;
    /// assert_eq!(batch.messages, 2);
    /// assert_eq!(got, [*b"one", *b"two"]);
    /// if batch.wake {
    ///     // wake the producer
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn recv_many(
        &mut self,
        max: usize,
        mut each: impl FnMut(&Record<'_>),
    ) -> Result<Batch, Corruption> {
        let mut received = 0;
        while received < max {
            let found = match self.next() {
                Ok(found) => found,
                Err(PopError::Empty) => break,
                Err(PopError::Corrupted(c)) if received == 0 => return Err(c),
                Err(PopError::Corrupted(_)) => break,
            };
            each(&self.record(found));
            // Released now, published at the end of the batch.
            self.inner.advance(found.advance as usize);
            received += 1;
        }
        if received == 0 {
            return Ok(Batch::default());
        }
        self.inner.publish_position();
        Ok(Batch {
            messages: received,
            wake: self.inner.check_wake(),
        })
    }

    /// Whether the producer announced it is waiting for room and has not
    /// yet been woken for that wait: call after [`pop`](Self::pop)s, and if
    /// it returns `true`, wake the producer. One full fence, no syscall.
    /// ([`Record::release`] does this for you.)
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(b"x")?;
    /// rx.pop(&mut [0; 64])?;
    /// assert!(!rx.needs_wake());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn needs_wake(&mut self) -> bool {
        self.inner.needs_wake()
    }

    /// Declares the sleeper's barrier for our announcements; see
    /// [`Consumer::declare_sleeper_barrier`](crate::Consumer::declare_sleeper_barrier).
    pub fn declare_sleeper_barrier(&mut self, barrier: fn() -> bool) {
        self.inner.declare_sleeper_barrier(barrier);
    }

    /// Withdraws the declaration; see
    /// [`Consumer::withdraw_sleeper_barrier`](crate::Consumer::withdraw_sleeper_barrier).
    pub fn withdraw_sleeper_barrier(&mut self) -> bool {
        self.inner.withdraw_sleeper_barrier()
    }

    /// Our process is registered for the sleeper's barrier; see
    /// [`Consumer::set_registered_for_sleeper_barrier`](crate::Consumer::set_registered_for_sleeper_barrier).
    pub fn set_registered_for_sleeper_barrier(&mut self) {
        self.inner.set_registered_for_sleeper_barrier();
    }

    /// Announces that we are about to sleep until a message arrives, then
    /// re-checks. See [`MsgProducer::prepare_wait`](crate::MsgProducer::prepare_wait)
    /// for the protocol; the producer's
    /// [`needs_wake`](crate::MsgProducer::needs_wake) reports the sleep.
    ///
    /// ```
    /// use spsc_core::WaitCheck;
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert_eq!(rx.prepare_wait()?, WaitCheck::Sleep);
    /// tx.push(b"wake up")?;
    /// assert!(tx.needs_wake());
    /// rx.finish_wait();
    /// assert_eq!(rx.prepare_wait()?, WaitCheck::Ready);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prepare_wait(&mut self) -> Result<WaitCheck, Corruption> {
        if let Some(c) = self.inner.poisoned() {
            return Err(c);
        }
        // The announcement, then a SeqCst fence (and the sleeper's barrier
        // if we declared one) before our re-check of the next header
        // word, paired with the producer's fence (or our barrier) in its
        // `needs_wake` (or commit) between its Release store of that word
        // and its load of our wait word: at least one side sees the
        // other's store, so no wake-up is lost. See the `wake` module.
        let ordered = self.inner.announce_wait();
        if !ordered {
            // The barrier failed: don't sleep on this announcement.
            self.finish_wait();
            return Ok(WaitCheck::Ready);
        }
        match self.next() {
            Ok(_) => {
                self.finish_wait();
                Ok(WaitCheck::Ready)
            }
            // Closed and empty: the end is there, don't sleep (the
            // producer's `close` stores the mark, then fences and loads
            // our wait word: one of us sees the other).
            Err(PopError::Empty) if self.inner.producer_closed() => {
                self.finish_wait();
                Ok(WaitCheck::Ready)
            }
            Err(PopError::Empty) => Ok(WaitCheck::Sleep),
            Err(PopError::Corrupted(c)) => {
                self.finish_wait();
                Err(c)
            }
        }
    }

    /// Withdraws the announcement of [`prepare_wait`](Self::prepare_wait).
    pub fn finish_wait(&mut self) {
        self.inner.withdraw_wait()
    }

    /// Whether the producer has marked its stream closed (one Acquire
    /// load of `producer_closed`), whether or not records are still
    /// queued; [`end_of_stream`](Self::end_of_stream) says when to stop.
    #[inline]
    pub fn closed_mark(&self) -> bool {
        self.inner.producer_closed()
    }

    /// Whether the stream has ended: the producer
    /// [closed](crate::MsgProducer::close) it and every record it
    /// published before has been received. Call it when the ring was
    /// found empty.
    ///
    /// Loads the header's "closed" word once (Acquire); if it is nonzero,
    /// looks at the next record's header word once more: `true` only if
    /// there is still no record. Records published after the mark are
    /// delivered if seen before this check. Not sticky (the word is the
    /// peer's): a caller that reports the end remembers it.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert!(!rx.end_of_stream()?);
    /// tx.push(b"bye")?;
    /// let _wake = tx.close();
    /// assert!(!rx.end_of_stream()?); // a record is still there
    /// assert_eq!(rx.pop(&mut [0; 64])?, 3);
    /// assert!(rx.end_of_stream()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    // Inlined: a polling receiver calls it on every empty poll, where
    // all it does is load the closed word; the rest is out of line.
    #[inline]
    pub fn end_of_stream(&mut self) -> Result<bool, Corruption> {
        if let Some(c) = self.inner.poisoned() {
            return Err(c);
        }
        if !self.inner.producer_closed() {
            return Ok(false);
        }
        self.drained()
    }

    /// After the closed mark: whether the ring is still empty.
    #[cold]
    #[inline(never)]
    fn drained(&mut self) -> Result<bool, Corruption> {
        match self.next() {
            Ok(_) => Ok(false),
            Err(PopError::Empty) => Ok(true),
            Err(PopError::Corrupted(c)) => Err(c),
        }
    }

    /// The corruption this handle has seen, if any.
    ///
    /// ```
    /// # let (_tx, rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert_eq!(rx.corruption(), None);
    /// ```
    pub fn corruption(&self) -> Option<Corruption> {
        self.inner.corruption()
    }
}

/// One message to read in place: a contiguous, validated run of `len`
/// bytes (8-byte aligned) that the peer may (wrongly) still write.
///
/// Reads are volatile copies; there is no safe `&[u8]`.
/// [`as_slice`](Self::as_slice) is the `unsafe` variant for a trusted peer.
/// [`release`](Self::release) frees the message; dropping the record
/// leaves it in the ring.
#[derive(Debug)]
pub struct Record<'a> {
    consumer: &'a mut MsgConsumer,
    payload: *const u8,
    len: usize,
    /// Skip plus record size: how far the read position moves on release.
    advance: u64,
    _borrow: PhantomData<&'a [u8]>,
}

impl Record<'_> {
    /// The message length in bytes.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(&[0; 33])?;
    /// assert_eq!(rx.read()?.len(), 33);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(&[])?;
    /// assert!(rx.read()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `dst.len()` bytes of the message from byte `offset` into
    /// `dst`.
    ///
    /// # Panics
    ///
    /// If `offset + dst.len() > self.len()`, like slice indexing.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(b"header:body")?;
    /// let record = rx.read()?;
    /// let mut body = [0u8; 4];
    /// record.read_at(7, &mut body);
    /// assert_eq!(&body, b"body");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) {
        assert!(
            offset <= self.len && dst.len() <= self.len - offset,
            "{} bytes at offset {offset} of a message of {}",
            dst.len(),
            self.len
        );
        let shared = self.consumer.inner.shared();
        let index = self.payload as u64 - shared.data() as u64 + offset as u64;
        shared.track_bytes(index, dst.len() as u64, false);
        // SAFETY: the range lies inside the validated record, inside the
        // data area; `dst` is private memory.
        unsafe { copy::from_shared(dst.as_mut_ptr(), self.payload.add(offset), dst.len()) }
    }

    /// Copies the message's first `dst.len()` bytes into `dst`.
    ///
    /// # Panics
    ///
    /// If `dst` is longer than the message.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(b"abc")?;
    /// let mut buf = [0u8; 3];
    /// rx.read()?.copy_to_slice(&mut buf);
    /// assert_eq!(&buf, b"abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn copy_to_slice(&self, dst: &mut [u8]) {
        self.read_at(0, dst)
    }

    /// A raw pointer to the first payload byte (8-byte aligned), valid for
    /// reads of [`len`](Self::len) bytes until the record is released or
    /// dropped. The peer may write the bytes concurrently.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(b"abc")?;
    /// assert_eq!(rx.read()?.as_ptr() as usize % 8, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.payload
    }

    /// The message as a slice, for code that trusts its peer.
    ///
    /// # Safety
    ///
    /// While the slice lives, no other party (the peer process included)
    /// may write these bytes. Against a hostile peer that promise cannot be
    /// kept; use [`read_at`](Self::read_at) instead.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(b"trusted")?;
    /// let record = rx.read()?;
    /// // SAFETY: the producer is in this process and never writes
    /// // published bytes.
    /// assert_eq!(unsafe { record.as_slice() }, b"trusted");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the payload is inside the data area and published; the
        // caller promises nobody writes it meanwhile.
        unsafe { core::slice::from_raw_parts(self.payload, self.len) }
    }

    /// Frees the message (and a skip before it). Returns whether the
    /// producer must be woken (it announced it waits for room); the fence
    /// this needs is paid once per release.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(b"abc")?;
    /// if rx.read()?.release() {
    ///     // wake the producer
    /// }
    /// assert_eq!(rx.pending_bytes()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "if this returns true, the producer is asleep and must be woken"]
    #[inline]
    pub fn release(self) -> bool {
        self.consumer.inner.release_chunk(self.advance as usize)
    }
}
