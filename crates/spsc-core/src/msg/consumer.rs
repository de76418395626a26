//! The consuming half of a message ring: where every length the peer wrote
//! is loaded once and validated.

use core::marker::PhantomData;

use super::{check_aligned, open, record_size, MsgPopError, SKIP_MARKER};
use super::{ALIGN, HEADER};
use crate::consumer::Consumer;
use crate::copy;
use crate::error::{Corruption, Field, PopError, SetupError};
use crate::region::RawRegion;
use crate::wake::WaitCheck;

/// The consuming half of a message ring.
///
/// It hands out the next message as one contiguous [`Record`]. The length
/// in each record header (and a skip marker before it, if any) is loaded
/// from shared memory exactly once and checked against the maximum message
/// size, the bytes the producer published and the end of the ring; a bad
/// one is a [`Corruption`] and poisons the handle. The position
/// bookkeeping is the element ring's: our read position is private and
/// only published; the producer's write position is loaded once per
/// refresh, validated and cached.
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
    /// a multiple of 8), cached write position, wait word, poisoning.
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
    /// skips included (refreshes the producer's position). Zero exactly
    /// when there is no message.
    ///
    /// ```
    /// # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(1024, 64);
    /// assert_eq!(rx.pending_bytes()?, 0);
    /// tx.push(&[1; 9])?;
    /// assert_eq!(rx.pending_bytes()?, 8 + 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pending_bytes(&mut self) -> Result<usize, Corruption> {
        self.inner.slots()
    }

    /// Finds and validates the next record among `avail` published bytes.
    /// Each header word is loaded exactly once; only the locals are used.
    #[inline]
    fn locate(&self, avail: u64) -> Result<Found, Corruption> {
        let shared = self.inner.shared();
        let capacity = shared.capacity();
        let read = self.inner.read_position();
        if avail < HEADER {
            // Only a write position that is not a multiple of 8 leaves
            // fewer published bytes than a record header.
            return Err(Corruption {
                field: Field::WritePosition,
                seen: read.wrapping_add(avail),
                min: read.wrapping_add(HEADER),
                max: read.wrapping_add(capacity),
            });
        }
        // Our read position is a multiple of 8 (checked at attach; every
        // advance is one), so a header never straddles the ring's end.
        let index = read & (capacity - 1);
        let mut at = index;
        let mut skip = 0;
        // SAFETY: `index + 8 <= capacity`, inside the data area.
        let mut len = unsafe { read_len(shared.data().add(index as usize)) };
        if len == SKIP_MARKER {
            let to_end = capacity - index;
            // The skipped tail must be published and followed by a
            // published record header. This also refuses a marker at
            // offset 0, which would skip the whole ring (`avail <=
            // capacity`), so at most one skip precedes a record.
            if to_end + HEADER > avail {
                return Err(Corruption {
                    field: Field::SkipMarker,
                    seen: to_end,
                    min: HEADER,
                    max: avail - HEADER,
                });
            }
            skip = to_end;
            at = 0;
            // SAFETY: offset 0 of the data area; capacity >= 16.
            len = unsafe { read_len(shared.data()) };
        }
        // The payload must end before the ring's end and within the
        // published bytes, both rounded down to the record alignment so
        // that the padded record fits too; and respect the maximum. A skip
        // marker here (after a skip) exceeds the maximum.
        let room = (((avail - skip).min(capacity - at)) - HEADER) & !(ALIGN - 1);
        let max = room.min(u64::from(self.max_msg));
        if u64::from(len) > max {
            return Err(Corruption {
                field: Field::RecordLength,
                seen: u64::from(len),
                min: 0,
                max,
            });
        }
        Ok(Found {
            payload: (at + HEADER) as usize,
            len: len as usize,
            advance: skip + record_size(u64::from(len)),
        })
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
        let shared = self.inner.shared();
        // Loom: the whole record now (its headers were just read), and the
        // payload bytes again when they are copied, so that a copy after
        // release shows as a race.
        shared.track_bytes(self.inner.read_position(), found.advance, false);
        // SAFETY: `locate` checked that the payload lies inside the data
        // area.
        let payload = unsafe { shared.data().add(found.payload) };
        Ok(Record {
            consumer: self,
            payload,
            len: found.len,
            advance: found.advance,
            _borrow: PhantomData,
        })
    }

    /// The next record, validated; poisons the handle on corruption.
    #[inline]
    fn next(&mut self) -> Result<Found, PopError> {
        // *Possibly* empty by the cache: `available` refreshes, then we
        // check whether it is *really* empty.
        let avail = match self.inner.available(HEADER) {
            Ok(0) => return Err(PopError::Empty),
            Ok(n) => n,
            Err(c) => return Err(PopError::Corrupted(c)),
        };
        self.locate(avail)
            .map_err(|c| PopError::Corrupted(self.inner.poison(c)))
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
        self.inner.prepare_wait()
    }

    /// Withdraws the announcement of [`prepare_wait`](Self::prepare_wait).
    pub fn finish_wait(&mut self) {
        self.inner.finish_wait()
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
    #[inline]
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
    #[inline]
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

/// Loads a record header's length word, once.
///
/// # Safety
///
/// `at` is 4-aligned and valid for reads of 4 bytes.
#[inline]
unsafe fn read_len(at: *const u8) -> u32 {
    // SAFETY: the caller's contract. Volatile: the peer may write the word
    // concurrently, and the value must be read exactly once.
    unsafe { core::ptr::read_volatile(at.cast::<u32>()) }
}
