//! The producing half of a message ring.

use core::marker::PhantomData;

use super::SKIP_MARKER;
use super::{check_aligned, header_word, open, pending_word, record_size, Batch, MsgPushError};
use crate::copy;
use crate::error::{Corruption, Field, SetupError};
use crate::producer::Producer;
use crate::region::RawRegion;
use crate::sync::Ordering;
use crate::wake::WaitCheck;

/// The producing half of a message ring.
///
/// It places each message as one contiguous record: a message that does
/// not fit before the end of the ring is preceded by a skip marker and
/// starts at offset 0. Each record is published by the Release store of
/// its header word (which the consumer waits on), after its payload and
/// the pending word where the next record will go. The position
/// bookkeeping is the element ring's (over byte slots): our write position
/// is private; it is also stored in the header as a lagging hint (once
/// for every half ring published, after each batch, and before closing),
/// which the consumer does not wait on. The consumer's read position is
/// loaded once per refresh, validated and cached, and refreshed only when
/// the cache says *possibly* full.
///
/// The hint is not stored with every record on purpose: it shares its
/// cache line with the closed word, which a consumer loads whenever it
/// finds the ring empty, so a store per record would move that line
/// between the cores once per message, beside the record's own line
/// (`docs/LAYOUT.md`, "Positions" of message rings).
///
/// `Send` but not `Clone`: there is exactly one producer per ring.
///
/// ```
/// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 256);
/// tx.push(b"hello")?;
/// let mut buf = [0u8; 256];
/// let n = rx.pop(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MsgProducer {
    /// The element ring's producer over byte slots: write position (always
    /// a multiple of 8), cached read position, wait word, poisoning.
    inner: Producer<u8>,
    /// Our maximum message size, which the header had to match.
    max_msg: u32,
    /// The write position we last stored as the header's hint.
    hinted: u64,
}

impl core::fmt::Debug for MsgProducer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MsgProducer")
            .field("max_msg", &self.max_msg)
            .field("inner", &self.inner)
            .finish()
    }
}

/// Where a record of a given length goes, from our write position.
#[derive(Debug, Clone, Copy)]
struct Placement {
    /// Bytes of tail skipped before the record (0 if it fits).
    skip: u64,
    /// Offset of the record header in the data area.
    at: usize,
    /// `skip` plus the record's size: the room it needs.
    need: u64,
}

impl MsgProducer {
    /// Initialises a fresh message ring of `capacity` bytes for messages of
    /// at most `max_msg` bytes (see [`MsgLayout`](crate::MsgLayout)) in `region` and returns
    /// its producer; the consumer then [attaches](crate::MsgConsumer::attach).
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use spsc_core::{MsgConsumer, MsgLayout, MsgProducer, RawRegion};
    ///
    /// let layout = MsgLayout::new(4096, 512)?;
    /// let mut buf = vec![0u64; layout.region_size() / 8];
    /// let ptr = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
    /// // SAFETY: `buf` outlives the handles and is not touched through
    /// // references while they exist.
    /// let region = unsafe { RawRegion::new(ptr, layout.region_size()) };
    /// let tx = MsgProducer::create(region, 4096, 512)?;
    /// let rx = MsgConsumer::attach(region, 4096, 512)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(region: RawRegion, capacity: usize, max_msg: usize) -> Result<Self, SetupError> {
        let shared = open(region, capacity, max_msg, true)?;
        Ok(Self {
            inner: Producer::from_positions(shared, 0, 0),
            max_msg: max_msg as u32,
            hinted: 0,
        })
    }

    /// Attaches to a message ring the consumer's side created, after
    /// checking the header against what *we* expect: layout version, kind,
    /// `capacity` and `max_msg`. The positions are loaded once and must be
    /// consistent, and ours must be a multiple of 8.
    ///
    /// ```
    /// use spsc_core::{MsgConsumer, MsgProducer, RawRegion, SetupError};
    /// # let region = spsc_core::__doc_msg_region!(1024, 64);
    /// let rx = MsgConsumer::create(region, 1024, 64)?;
    /// // A producer that expects another maximum is refused.
    /// assert!(matches!(
    ///     MsgProducer::attach(region, 1024, 128),
    ///     Err(SetupError::MaxMessageMismatch { expected: 128, found: 64 })
    /// ));
    /// let tx = MsgProducer::attach(region, 1024, 64)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach(region: RawRegion, capacity: usize, max_msg: usize) -> Result<Self, SetupError> {
        let inner = Producer::attach_validated(open(region, capacity, max_msg, false)?)?;
        check_aligned(inner.write_position(), Field::WritePosition)?;
        let max_msg = max_msg as u32;
        let hinted = inner.write_position();
        Ok(Self {
            inner,
            max_msg,
            hinted,
        })
    }

    /// The capacity in bytes.
    ///
    /// ```
    /// # let (tx, _rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert_eq!(tx.capacity(), 1024);
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// The maximum message size in bytes.
    ///
    /// ```
    /// # let (tx, _rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert_eq!(tx.max_msg(), 64);
    /// ```
    pub fn max_msg(&self) -> usize {
        self.max_msg as usize
    }

    /// Free bytes now (refreshes the consumer's position). A record needs
    /// 8 header bytes plus its padded payload, and possibly the tail of
    /// the ring for a skip, so this is not the largest message that fits.
    ///
    /// ```
    /// # let (mut tx, _rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(&[1, 2, 3])?;
    /// assert_eq!(tx.free_bytes()?, 1024 - 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn free_bytes(&mut self) -> Result<usize, Corruption> {
        self.inner.slots()
    }

    /// Where a record of `len` bytes would go.
    #[inline]
    fn placement(&self, len: usize) -> Placement {
        let capacity = self.inner.shared().capacity();
        // Our write position is a multiple of 8 (checked at attach, and
        // every record size is one), so `to_end >= 8`.
        let index = self.inner.write_position() & (capacity - 1);
        let size = record_size(len as u64);
        let to_end = capacity - index;
        if size <= to_end {
            Placement {
                skip: 0,
                at: index as usize,
                need: size,
            }
        } else {
            // `size <= capacity / 2` and `to_end < size`, so the skip and
            // the record together need less than the whole ring: an empty
            // ring always has room.
            Placement {
                skip: to_end,
                at: 0,
                need: to_end + size,
            }
        }
    }

    /// Reserves a contiguous region of exactly `len` bytes for a message,
    /// to write in place; see [`Reservation`]. Nothing is published until
    /// it is committed; dropping it abandons the reservation.
    ///
    /// Fails with [`MsgPushError::Full`] if the consumer has not freed
    /// enough room yet, and [`MsgPushError::TooLarge`] if `len` exceeds the
    /// maximum message size.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// let mut r = tx.reserve(5)?;
    /// r.write_at(0, b"he");
    /// r.write_at(2, b"llo");
    /// let _wake = r.commit();
    /// let mut buf = [0u8; 64];
    /// assert_eq!(rx.pop(&mut buf)?, 5);
    /// assert_eq!(&buf[..5], b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_>, MsgPushError> {
        // A caught peer is reported first, whatever we are asked (sticky).
        if let Some(c) = self.inner.corruption() {
            return Err(MsgPushError::Corrupted(c));
        }
        if len > self.max_msg as usize {
            return Err(MsgPushError::TooLarge {
                len,
                max: self.max_msg as usize,
            });
        }
        let placement = self.placement(len);
        // *Possibly* full by the cache: `free` refreshes, then we check
        // whether it is *really* full.
        if self.inner.free(placement.need)? < placement.need {
            return Err(MsgPushError::Full);
        }
        let shared = self.inner.shared();
        shared.track_bytes(self.inner.write_position(), placement.need, true);
        // SAFETY: `at + 8 + len <= capacity` (the placement keeps the
        // record before the ring's end), so the payload lies inside the
        // data area.
        let payload = unsafe { shared.data().add(placement.at + super::RECORD_HEADER) };
        Ok(Reservation {
            producer: self,
            placement,
            payload,
            len,
            _borrow: PhantomData,
        })
    }

    /// Copies `msg` into the ring as one record and publishes it at once
    /// (without checking for a sleeping consumer: call
    /// [`needs_wake`](Self::needs_wake) after one or a batch of pushes).
    ///
    /// ```
    /// use spsc_core::MsgPushError;
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(64, 24);
    /// tx.push(&[7; 24])?;
    /// assert_eq!(tx.push(&[0; 25]), Err(MsgPushError::TooLarge { len: 25, max: 24 }));
    /// tx.push(&[8; 24])?;
    /// // Two records of 32 bytes fill the ring.
    /// assert_eq!(tx.push(&[]), Err(MsgPushError::Full));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn push(&mut self, msg: &[u8]) -> Result<(), MsgPushError> {
        let mut reservation = self.reserve(msg.len())?;
        reservation.copy_from_slice(msg);
        reservation.publish();
        Ok(())
    }

    /// Pushes the messages of `msgs` in order, as many as fit, and then
    /// stores the write position once and checks once whether the consumer
    /// sleeps (one fence for the whole batch). Stops at the first message
    /// that does not fit; returns how many were pushed and whether to wake
    /// the consumer.
    ///
    /// A message above the maximum stops the batch too: it is reported as
    /// [`MsgPushError::TooLarge`] if it is the first, else by the next call.
    /// A corrupted ring is reported the same way (the handle is poisoned).
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(64, 24);
    /// let batch = tx.push_many(&[&b"one"[..], b"two", b"three", b"four", b"five"])?;
    /// // Four records of 16 bytes fill the 64-byte ring.
    /// assert_eq!(batch.messages, 4);
    /// let mut buf = [0u8; 24];
    /// assert_eq!(rx.pop(&mut buf)?, 3);
    /// assert_eq!(&buf[..3], b"one");
    /// if batch.wake {
    ///     // wake the consumer
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_many<M: AsRef<[u8]>>(&mut self, msgs: &[M]) -> Result<Batch, MsgPushError> {
        let mut sent = 0;
        for msg in msgs {
            let msg = msg.as_ref();
            let n = match self.reserve(msg.len()) {
                Ok(mut reservation) => {
                    reservation.copy_from_slice(msg);
                    reservation.write_headers()
                }
                Err(MsgPushError::Full) => break,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            };
            // Published by its header word; the position waits for the
            // end of the batch.
            self.inner.advance(n);
            sent += 1;
        }
        if sent == 0 {
            return Ok(Batch::default());
        }
        self.store_hint();
        Ok(Batch {
            messages: sent,
            wake: self.inner.needs_wake(),
        })
    }

    /// Whether the consumer announced it is going to sleep and has not yet
    /// been woken for that sleep: call after [`push`](Self::push)es, and if
    /// it returns `true`, wake the consumer. One full fence, no syscall.
    /// ([`Reservation::commit`] does this for you.)
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(b"x")?;
    /// assert!(!tx.needs_wake()); // the consumer keeps up: no syscall
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn needs_wake(&mut self) -> bool {
        self.inner.needs_wake()
    }

    /// Announces that we are about to sleep until a message of `len` bytes
    /// (clamped to the maximum message size) can be reserved, then
    /// re-checks. On [`WaitCheck::Ready`] don't sleep; on
    /// [`WaitCheck::Sleep`] sleep until woken (or a timeout), then call
    /// [`finish_wait`](Self::finish_wait). The consumer's
    /// [`needs_wake`](crate::MsgConsumer::needs_wake) reports the sleep.
    ///
    /// ```
    /// use spsc_core::WaitCheck;
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(64, 24);
    /// tx.push(&[1; 24])?;
    /// tx.push(&[2; 24])?;
    /// assert_eq!(tx.prepare_wait(24)?, WaitCheck::Sleep);
    /// rx.pop(&mut [0; 24])?;
    /// assert!(rx.needs_wake()); // the producer must be woken
    /// tx.finish_wait();
    /// assert_eq!(tx.prepare_wait(24)?, WaitCheck::Ready);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prepare_wait(&mut self, len: usize) -> Result<WaitCheck, Corruption> {
        let need = self.placement(len.min(self.max_msg as usize)).need;
        self.inner.prepare_wait(need as usize)
    }

    /// Withdraws the announcement of [`prepare_wait`](Self::prepare_wait).
    pub fn finish_wait(&mut self) {
        self.inner.finish_wait()
    }

    /// Declares the sleeper's barrier for our announcements; see
    /// [`Producer::declare_sleeper_barrier`](crate::Producer::declare_sleeper_barrier).
    pub fn declare_sleeper_barrier(&mut self, barrier: fn() -> bool) {
        self.inner.declare_sleeper_barrier(barrier);
    }

    /// Withdraws the declaration; see
    /// [`Producer::withdraw_sleeper_barrier`](crate::Producer::withdraw_sleeper_barrier).
    pub fn withdraw_sleeper_barrier(&mut self) -> bool {
        self.inner.withdraw_sleeper_barrier()
    }

    /// Our process is registered for the sleeper's barrier; see
    /// [`Producer::set_registered_for_sleeper_barrier`](crate::Producer::set_registered_for_sleeper_barrier).
    pub fn set_registered_for_sleeper_barrier(&mut self) {
        self.inner.set_registered_for_sleeper_barrier();
    }

    /// Closes the stream: after the last record (its header word, stored
    /// by its publication), stores the write position hint, then 1 in the
    /// header's "closed" word (Release), then checks, as after a
    /// publication, whether the consumer sleeps. Returns `true` if it must
    /// be woken. The consumer delivers every record published before,
    /// then reports the end ([`MsgConsumer::end_of_stream`](crate::MsgConsumer::end_of_stream)).
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// tx.push(b"last")?;
    /// if tx.close() {
    ///     // wake the consumer
    /// }
    /// assert_eq!(rx.pop(&mut [0; 64])?, 4);
    /// assert!(rx.end_of_stream()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "if this returns true, the consumer is asleep and must be woken"]
    pub fn close(&mut self) -> bool {
        self.store_hint();
        self.inner.close()
    }

    /// Stores our write position as the header's hint (Release, after the
    /// header words it covers).
    #[inline]
    fn store_hint(&mut self) {
        self.inner.publish_position();
        self.hinted = self.inner.write_position();
    }

    /// Moves our write position past a record just published by its
    /// header word, and stores the hint only once half a ring has been
    /// published since the last (see the type's docs for why not every
    /// time).
    #[inline]
    fn advance(&mut self, n: usize) {
        self.inner.advance(n);
        let since = self.inner.write_position().wrapping_sub(self.hinted);
        if since >= self.inner.shared().capacity() / 2 {
            self.store_hint();
        }
    }

    /// The corruption this handle has seen, if any.
    ///
    /// ```
    /// # let (tx, _rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert_eq!(tx.corruption(), None);
    /// ```
    pub fn corruption(&self) -> Option<Corruption> {
        self.inner.corruption()
    }
}

/// A contiguous region of exactly `len` bytes reserved for one message.
///
/// There is no safe `&mut [u8]`: the peer can write these bytes at any
/// time, which a Rust reference forbids. Writes are volatile copies, or go
/// through [`as_mut_ptr`](Self::as_mut_ptr);
/// [`as_mut_slice`](Self::as_mut_slice) is the `unsafe` variant for a
/// trusted peer. The payload starts 8-byte aligned.
///
/// [`commit`](Self::commit) publishes the message; dropping the
/// reservation publishes nothing.
#[derive(Debug)]
pub struct Reservation<'a> {
    producer: &'a mut MsgProducer,
    placement: Placement,
    payload: *mut u8,
    /// The message length, at most the reserved length.
    len: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl Reservation<'_> {
    /// The message length in bytes.
    ///
    /// ```
    /// # let (mut tx, _rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert_eq!(tx.reserve(10)?.len(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    ///
    /// ```
    /// # let (mut tx, _rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert!(tx.reserve(0)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` into the message at byte `offset`.
    ///
    /// # Panics
    ///
    /// If `offset + src.len() > self.len()`, like slice indexing.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// let mut r = tx.reserve(4)?;
    /// r.write_at(2, &[3, 4]);
    /// r.write_at(0, &[1, 2]);
    /// let _ = r.commit();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn write_at(&mut self, offset: usize, src: &[u8]) {
        assert!(
            offset <= self.len && src.len() <= self.len - offset,
            "{} bytes at offset {offset} of a message of {}",
            src.len(),
            self.len
        );
        // SAFETY: the range lies inside the reservation (checked above),
        // which is inside the data area and ours until commit; `src` is
        // private memory.
        unsafe { copy::to_shared(self.payload.add(offset), src.as_ptr(), src.len()) }
    }

    /// Copies `src` into the message's first `src.len()` bytes.
    ///
    /// # Panics
    ///
    /// If `src` is longer than the message.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// let mut r = tx.reserve(3)?;
    /// r.copy_from_slice(b"abc");
    /// let _ = r.commit();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn copy_from_slice(&mut self, src: &[u8]) {
        self.write_at(0, src)
    }

    /// Shortens the message to `len` bytes, if it is longer: reserve the
    /// most you may write (a datagram's maximum, say), write, then keep
    /// what was written. The skip decision made at reservation stands.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// let mut r = tx.reserve(64)?;
    /// r.write_at(0, b"short");
    /// r.truncate(5);
    /// let _ = r.commit();
    /// assert_eq!(rx.read()?.len(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// A raw pointer to the first payload byte (8-byte aligned), valid for
    /// writes of [`len`](Self::len) bytes until the reservation is
    /// committed or dropped, for code that writes in place (a `read`
    /// syscall, say). The peer may access the bytes concurrently.
    ///
    /// ```
    /// # let (mut tx, _rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// let mut r = tx.reserve(8)?;
    /// assert_eq!(r.as_mut_ptr() as usize % 8, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.payload
    }

    /// The message as a mutable slice, for code that trusts its peer.
    ///
    /// # Safety
    ///
    /// While the slice lives, no other party (the peer process included)
    /// may read or write these bytes. Against a hostile peer that promise
    /// cannot be kept; use [`write_at`](Self::write_at) instead.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// let mut r = tx.reserve(3)?;
    /// // SAFETY: the consumer is in this process and does not touch
    /// // unpublished bytes.
    /// unsafe { r.as_mut_slice() }.copy_from_slice(b"xyz");
    /// let _ = r.commit();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the payload is inside the data area and ours until
        // commit; the caller promises nobody else accesses it meanwhile.
        unsafe { core::slice::from_raw_parts_mut(self.payload, self.len) }
    }

    /// Publishes the message. Returns whether the consumer must be woken
    /// (it announced sleep); the fence this needs is paid once per commit.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// let r = tx.reserve(0)?;
    /// if r.commit() {
    ///     // wake the consumer (eventfd, futex, ...)
    /// }
    /// assert_eq!(rx.read()?.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "if this returns true, the consumer is asleep and must be woken"]
    #[inline]
    pub fn commit(self) -> bool {
        let n = self.write_headers();
        self.producer.advance(n);
        self.producer.inner.needs_wake()
    }

    /// Publishes without the wake-up check (for `push`).
    #[inline]
    fn publish(self) {
        let n = self.write_headers();
        self.producer.advance(n);
    }

    /// Writes the pending word after the record, the record header, and
    /// the skip marker if there is one (each header word with one atomic
    /// store), and returns how far the write position advances.
    #[inline]
    fn write_headers(&self) -> usize {
        let Placement { skip, at, .. } = self.placement;
        let inner = &self.producer.inner;
        let shared = inner.shared();
        let capacity = shared.capacity();
        let write = inner.write_position();
        let start = write.wrapping_add(skip);
        let size = record_size(self.len as u64);
        let end = start.wrapping_add(size);
        // The next record's header goes at `end`: mark it pending, so that
        // the consumer, once it has this record, finds there the pending
        // word or the next header, never a stale word from an earlier lap
        // (or payload bytes that look like a header). Skip it only if the
        // word is not ours: when this record fills the ring to the last
        // byte by our cache, it holds the header at `end - capacity` (the
        // oldest the consumer may not have released), whose tag is the
        // previous lap's. Relaxed: the Release store of the header below
        // publishes it with the payload.
        if end.wrapping_sub(inner.cached_read()) < capacity {
            shared
                .record_word((end & (capacity - 1)) as usize)
                .store(pending_word(end), Ordering::Relaxed);
        }
        // Release: the payload and the pending word happen before the
        // consumer's Acquire load of this header sees it. `at` is
        // 8-aligned and at least 8 bytes before the ring's end.
        shared
            .record_word(at)
            .store(header_word(start, self.len as u32), Ordering::Release);
        if skip > 0 {
            // Release: the record at offset 0 (written above) happens
            // before the consumer's Acquire load of the skip marker that
            // leads to it. The skipped tail is at least 8 bytes.
            let tail = (write & (capacity - 1)) as usize;
            shared
                .record_word(tail)
                .store(header_word(write, SKIP_MARKER), Ordering::Release);
        }
        (skip + size) as usize
    }
}
