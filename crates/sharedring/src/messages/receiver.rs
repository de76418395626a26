//! The receiving end of a message ring: its data path.

use std::time::Duration;

use spsc_core::{Corruption, MsgConsumer, PopError, Record, WaitCheck};

use super::MsgRecv;
use crate::endpoint::park::{self, Outcome, Side};
use crate::endpoint::Endpoint;
use crate::error::Error;

/// The receiving end of a message ring; see [`MsgSender`](crate::MsgSender).
///
/// Every receive comes in three forms: into a caller's slice
/// ([`recv_into`](Self::recv_into), no allocation), into a `Vec` resized
/// to the message ([`recv`](Self::recv)), or read in place
/// ([`recv_with`](Self::recv_with)); each has a non-blocking `try_` twin.
/// When the sender closes its stream (or is dropped), everything it sent
/// is still delivered, and only then [`Error::Closed`]; when the peer dies
/// instead, everything it committed, then [`Error::PeerGone`].
///
/// ```
/// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
/// tx.send(b"last words", None)?;
/// drop(tx);
/// let mut buf = [0u8; 64];
/// assert_eq!(rx.recv_into(&mut buf, None)?, 10);
/// assert!(matches!(rx.recv_into(&mut buf, None), Err(sharedring::Error::Closed)));
/// # Ok::<(), sharedring::Error>(())
/// ```
pub struct MsgReceiver {
    pub(crate) end: Endpoint<MsgRecv>,
}

ring_end! {
    impl[] MsgReceiver => MsgRecv,
    end: crate::End::Receiver,
    cap: bytes via capacity_bytes,
    half: consumer_without_wake -> MsgConsumer,
    docs: {
        this: "MsgReceiver",
        peer: "MsgSender",
        peer_link: "MsgSender",
        cap: "4096",
        pair: "let (peer_end, mut this_end) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;",
    },
}

/// Ready when a record is published.
pub(crate) struct MsgData;

impl Side<MsgConsumer> for MsgData {
    fn ready(&mut self, consumer: &mut MsgConsumer) -> Result<bool, Corruption> {
        // One look at the next record's header word (the record stays in
        // the ring); the end of the stream is something to wake up for too.
        match consumer.read() {
            Ok(_) => Ok(true),
            Err(PopError::Empty) => consumer.end_of_stream(),
            Err(PopError::Corrupted(c)) => Err(c),
        }
    }
    fn prepare_wait(&mut self, consumer: &mut MsgConsumer) -> Result<WaitCheck, Corruption> {
        consumer.prepare_wait()
    }
    fn finish_wait(&mut self, consumer: &mut MsgConsumer) {
        consumer.finish_wait()
    }
}

/// What a read did with the record it was shown.
pub(crate) enum Taken<R> {
    /// Consumed: release the record.
    Done(R),
    /// Left in the ring (it did not fit the caller's buffer).
    Kept(Error),
}

/// Copies a record into `buf`, which must be long enough.
// Inlined: a plain function is otherwise called out of line from the
// caller's crate, on every message received.
#[inline]
fn copy_into(record: &Record<'_>, buf: &mut [u8]) -> Taken<usize> {
    let len = record.len();
    if len > buf.len() {
        return Taken::Kept(Error::BufferTooSmall {
            len,
            buf: buf.len(),
        });
    }
    record.copy_to_slice(&mut buf[..len]);
    Taken::Done(len)
}

/// Copies a record into `buf`, resized to its length (bounded by the
/// ring's maximum message size, which we validated).
// Inlined: a plain function is otherwise called out of line from the
// caller's crate, on every message received.
#[inline]
pub(crate) fn copy_out(record: &Record<'_>, buf: &mut Vec<u8>) -> Taken<usize> {
    let len = record.len();
    // Only the growth is zero-filled (then overwritten): clearing first
    // would zero the whole message on every call, an extra pass over it
    // that cost a fifth of the throughput at 64 KiB.
    buf.truncate(len);
    buf.resize(len, 0);
    record.copy_to_slice(buf);
    Taken::Done(len)
}

impl MsgReceiver {
    /// The capacity in bytes.
    ///
    /// ```
    /// let (_tx, rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// assert_eq!(rx.capacity_bytes(), 4096);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn capacity_bytes(&self) -> usize {
        self.end.half.capacity()
    }

    /// The largest message this ring carries, in bytes.
    ///
    /// ```
    /// let opts = sharedring::Options::new().capacity_bytes(4096).max_msg(100);
    /// let (_tx, rx) = sharedring::msg_channel(&opts)?;
    /// assert_eq!(rx.max_msg(), 100);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn max_msg(&self) -> usize {
        self.end.half.max_msg()
    }

    /// The one read every receive goes through: shows the next record to
    /// `read` if one is there now, releases it if `read` consumed it, and
    /// wakes the sender if it waits for room. `Ok(None)`: empty.
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    fn next<R>(
        &mut self,
        read: &mut Option<impl FnOnce(&Record<'_>) -> Taken<R>>,
    ) -> Result<Option<R>, Error> {
        let record = match self.end.half.read() {
            Ok(record) => record,
            Err(PopError::Empty) => return Ok(None),
            Err(PopError::Corrupted(c)) => return Err(Error::Corrupted(c)),
        };
        let f = read.take().expect("read once");
        match f(&record) {
            Taken::Done(out) => {
                let wake = record.release();
                self.end.busy();
                self.end.wake_if(wake)?;
                Ok(Some(out))
            }
            // Dropping the record without a release leaves it in the ring.
            Taken::Kept(e) => Err(e),
        }
    }

    /// The one non-blocking receive: [`next`](Self::next), and on an empty
    /// ring, whether the peer is gone (then everything it published before
    /// it went is delivered first).
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    fn try_take<R>(
        &mut self,
        read: impl FnOnce(&Record<'_>) -> Taken<R>,
    ) -> Result<Option<R>, Error> {
        if self.end.closed {
            return Err(Error::Closed);
        }
        let mut read = Some(read);
        if let Some(out) = self.next(&mut read)? {
            return Ok(Some(out));
        }
        if self.end.idle_gone() {
            return match self.next(&mut read)? {
                Some(out) => Ok(Some(out)),
                None => Err(self.end.end_of_stream()),
            };
        }
        Ok(None)
    }

    /// The one blocking receive: [`next`](Self::next), parking while the
    /// ring is empty, within `timeout`; after the sender closed its stream
    /// or is gone, delivers what it committed, then [`Error::Closed`] or
    /// [`Error::PeerGone`].
    fn take<R>(
        &mut self,
        timeout: Option<Duration>,
        read: impl FnOnce(&Record<'_>) -> Taken<R>,
    ) -> Result<R, Error> {
        if self.end.closed {
            return Err(Error::Closed);
        }
        let deadline = park::deadline(timeout);
        let mut read = Some(read);
        loop {
            if let Some(out) = self.next(&mut read)? {
                return Ok(out);
            }
            if self.end.peer_closed() || self.end.link.known_gone() {
                return Err(self.end.end_of_stream());
            }
            match self.end.wait(MsgData, deadline)? {
                // On PeerGone, loop once more: the ring is drained first.
                Outcome::Ready | Outcome::PeerGone => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: 0 }),
            }
        }
    }

    /// Receives the next message into `buf` if one is there now, and
    /// returns its length. A message longer than `buf` stays in the ring,
    /// and the error says how long it is.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let mut buf = [0u8; 4];
    /// assert_eq!(rx.try_recv_into(&mut buf)?, None); // empty
    /// tx.send(b"hello", None)?;
    /// let err = rx.try_recv_into(&mut buf).unwrap_err();
    /// assert!(matches!(err, sharedring::Error::BufferTooSmall { len: 5, buf: 4 }));
    /// assert_eq!(rx.try_recv_into(&mut [0u8; 8])?, Some(5)); // still there
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the ring is drained and the sender closed its
    /// stream (and from then on); [`Error::PeerGone`] once the ring is
    /// drained and the peer is known to be gone; [`Error::BufferTooSmall`];
    /// [`Error::Corrupted`].
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        self.try_take(|record| copy_into(record, buf))
    }

    /// Receives the next message into `buf`, blocking (spin, then park)
    /// until one arrives, the timeout passes, or the peer is gone and
    /// everything it sent was received. A message longer than `buf` stays
    /// in the ring ([`Error::BufferTooSmall`]).
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// tx.send(b"frame", None)?;
    /// let mut buf = [0u8; 64];
    /// let n = rx.recv_into(&mut buf, None)?;
    /// assert_eq!(&buf[..n], b"frame");
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn recv_into(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, Error> {
        self.take(timeout, |record| copy_into(record, buf))
    }

    /// Receives the next message into `buf` (resized to fit; at most
    /// [`max_msg`](Self::max_msg) bytes) if one is there now.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let mut buf = Vec::new();
    /// assert_eq!(rx.try_recv(&mut buf)?, None);
    /// tx.send(b"abc", None)?;
    /// assert_eq!(rx.try_recv(&mut buf)?, Some(3));
    /// assert_eq!(buf, b"abc");
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn try_recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>, Error> {
        self.try_take(|record| copy_out(record, buf))
    }

    /// Receives the next message into `buf` (resized to fit), blocking as
    /// [`recv_into`](Self::recv_into) does; returns its length.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// tx.send(b"xyz", None)?;
    /// let mut buf = Vec::new();
    /// assert_eq!(rx.recv(&mut buf, None)?, 3);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn recv(&mut self, buf: &mut Vec<u8>, timeout: Option<Duration>) -> Result<usize, Error> {
        self.take(timeout, |record| copy_out(record, buf))
    }

    /// Reads the next message in place with `read` and releases it, if one
    /// is there now. Returns `None` when the ring is empty.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// tx.send(b"in place", None)?;
    /// assert_eq!(rx.try_recv_with(|rec| rec.len())?, Some(8));
    /// assert_eq!(rx.try_recv_with(|rec| rec.len())?, None);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn try_recv_with<R>(
        &mut self,
        read: impl FnOnce(&Record<'_>) -> R,
    ) -> Result<Option<R>, Error> {
        self.try_take(|record| Taken::Done(read(record)))
    }

    /// Blocks (spin, then park) until a message arrives, reads it in place
    /// with `read`, and releases it. After the peer is gone, delivers what
    /// it committed, then [`Error::Closed`] or [`Error::PeerGone`].
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// tx.send(&[1, 2, 3], None)?;
    /// let first = rx.recv_with(None, |rec| {
    ///     let mut b = [0u8; 1];
    ///     rec.read_at(0, &mut b);
    ///     b[0]
    /// })?;
    /// assert_eq!(first, 1);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn recv_with<R>(
        &mut self,
        timeout: Option<Duration>,
        read: impl FnOnce(&Record<'_>) -> R,
    ) -> Result<R, Error> {
        self.take(timeout, |record| Taken::Done(read(record)))
    }

    /// Up to `max` messages that are there now, each shown in place to
    /// `each` and released; one position store and one wake-up check for
    /// the whole batch (the per-message cost of [`try_recv_with`]
    /// otherwise). `Ok(0)`: empty.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// for m in [&b"a"[..], b"bc", b"def"] {
    ///     tx.send(m, None)?;
    /// }
    /// let mut lens = Vec::new();
    /// assert_eq!(rx.try_recv_many(16, |rec| lens.push(rec.len()))?, 3);
    /// assert_eq!(lens, [1, 2, 3]);
    /// assert_eq!(rx.try_recv_many(16, |_| ())?, 0);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`try_recv_with`](Self::try_recv_with): [`Error::Closed`] or
    /// [`Error::PeerGone`] once the ring is drained and the sender closed
    /// its stream or is known to be gone; [`Error::Corrupted`].
    ///
    /// [`try_recv_with`]: Self::try_recv_with
    pub fn try_recv_many(
        &mut self,
        max: usize,
        mut each: impl FnMut(&Record<'_>),
    ) -> Result<usize, Error> {
        if self.end.closed {
            return Err(Error::Closed);
        }
        let n = self.batch(max, &mut each)?;
        if n > 0 || max == 0 {
            return Ok(n);
        }
        if self.end.idle_gone() {
            // Whatever was published before the hang-up is visible now.
            return match self.batch(max, &mut each)? {
                0 => Err(self.end.end_of_stream()),
                n => Ok(n),
            };
        }
        Ok(0)
    }

    /// Blocks (spin, then park) until at least one message is there, then
    /// receives up to `max` as [`try_recv_many`](Self::try_recv_many)
    /// does. After the sender closed its stream or is gone, delivers what
    /// it committed, then [`Error::Closed`] or [`Error::PeerGone`].
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// tx.send(b"one", None)?;
    /// tx.send(b"two", None)?;
    /// let mut total = 0;
    /// while total < 2 {
    ///     total += rx.recv_many(8, None, |rec| assert_eq!(rec.len(), 3))?;
    /// }
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn recv_many(
        &mut self,
        max: usize,
        timeout: Option<Duration>,
        mut each: impl FnMut(&Record<'_>),
    ) -> Result<usize, Error> {
        if self.end.closed {
            return Err(Error::Closed);
        }
        if max == 0 {
            return Ok(0);
        }
        let deadline = park::deadline(timeout);
        loop {
            let n = self.batch(max, &mut each)?;
            if n > 0 {
                return Ok(n);
            }
            if self.end.peer_closed() || self.end.link.known_gone() {
                return Err(self.end.end_of_stream());
            }
            match self.end.wait(MsgData, deadline)? {
                // On PeerGone, loop once more: the ring is drained first.
                Outcome::Ready | Outcome::PeerGone => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: 0 }),
            }
        }
    }

    /// One batch through spsc-core, and its one wake-up.
    fn batch(&mut self, max: usize, each: &mut impl FnMut(&Record<'_>)) -> Result<usize, Error> {
        let batch = self.end.half.recv_many(max, each)?;
        if batch.messages > 0 {
            self.end.busy();
            self.end.wake_if(batch.wake)?;
        }
        Ok(batch.messages)
    }
}
