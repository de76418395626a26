//! The sending end of a message ring: its data path.

use std::time::Duration;

use spsc_core::{Corruption, MsgProducer, MsgPushError, Reservation, WaitCheck};

use super::MsgSend;
use crate::endpoint::park::{self, Outcome, Side};
use crate::endpoint::Endpoint;
use crate::error::Error;

/// The sending end of a message ring: variable-size byte messages, each
/// copied in ([`send`](Self::send)) or written in place
/// ([`send_with`](Self::send_with)).
///
/// ```
/// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
/// tx.send(b"hello", None)?;
/// tx.send_with(3, None, |r| r.copy_from_slice(b"abc"))?; // written in place
/// let mut buf = Vec::new();
/// assert_eq!(rx.recv(&mut buf, None)?, 5);
/// assert_eq!(buf, b"hello");
/// let len = rx.recv_with(None, |record| record.len())?; // read in place
/// assert_eq!(len, 3);
/// # Ok::<(), sharedring::Error>(())
/// ```
pub struct MsgSender {
    pub(crate) end: Endpoint<MsgSend>,
}

ring_end! {
    impl[] MsgSender => MsgSend,
    end: crate::End::Sender,
    cap: bytes via capacity_bytes,
    half: producer_without_wake -> MsgProducer,
    docs: {
        this: "MsgSender",
        peer: "MsgReceiver",
        peer_link: "MsgReceiver",
        cap: "4096",
        pair: "let (mut this_end, peer_end) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;",
    },
}

/// Ready when a record of `len` bytes can be reserved.
pub(crate) struct MsgRoom {
    pub(crate) len: usize,
}

impl Side<MsgProducer> for MsgRoom {
    fn ready(&mut self, producer: &mut MsgProducer) -> Result<bool, Corruption> {
        match producer.reserve(self.len) {
            // Dropping the reservation publishes nothing.
            Ok(_) => Ok(true),
            Err(MsgPushError::Corrupted(c)) => Err(c),
            Err(_) => Ok(false),
        }
    }
    fn prepare_wait(&mut self, producer: &mut MsgProducer) -> Result<WaitCheck, Corruption> {
        producer.prepare_wait(self.len)
    }
    fn finish_wait(&mut self, producer: &mut MsgProducer) {
        producer.finish_wait()
    }
}

impl MsgSender {
    /// Closes the stream: the receiver gets everything sent so far, then
    /// [`Error::Closed`] (the end of the stream) rather than
    /// [`Error::PeerGone`] (a crash). It stores the ring's closed word and
    /// wakes the receiver if it sleeps, so a blocked receiver sees the end
    /// at once, even while the peer's socket stays open; a receiver
    /// polling an empty ring sees it within 16 polls (at once on its first
    /// empty poll after data).
    ///
    /// Dropping the sender closes the stream the same way, unless its
    /// thread is panicking (an abandoned stream, which the receiver sees
    /// as `PeerGone` once the process is gone). A process that is killed,
    /// aborts or exits without running destructors is `PeerGone` too.
    /// `close` is the drop that reports whether the receiver was still
    /// there.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// tx.send(b"last", None)?;
    /// tx.close()?;
    /// let mut buf = Vec::new();
    /// assert_eq!(rx.recv(&mut buf, None)?, 4);
    /// assert!(matches!(rx.recv(&mut buf, None), Err(sharedring::Error::Closed)));
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::PeerGone`] or [`Error::Corrupted`] if the receiver is
    /// already gone (what was sent may not have been received).
    pub fn close(mut self) -> Result<(), Error> {
        self.end.close()
    }

    /// The capacity in bytes.
    ///
    /// ```
    /// let (tx, _rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// assert_eq!(tx.capacity_bytes(), 4096);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn capacity_bytes(&self) -> usize {
        self.end.half.capacity()
    }

    /// The largest message this ring carries, in bytes.
    ///
    /// ```
    /// let opts = sharedring::Options::new().capacity_bytes(4096).max_msg(100);
    /// let (tx, _rx) = sharedring::msg_channel(&opts)?;
    /// assert_eq!(tx.max_msg(), 100);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn max_msg(&self) -> usize {
        self.end.half.max_msg()
    }

    /// The one reservation every send goes through: reserves `len` bytes
    /// if there is room now, lets `fill` write them, publishes, and wakes
    /// the receiver if it sleeps. `Ok(None)`: full.
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    fn try_reserve<R>(
        &mut self,
        len: usize,
        fill: &mut Option<impl FnOnce(&mut Reservation<'_>) -> R>,
    ) -> Result<Option<R>, Error> {
        self.end.usable()?;
        match self.end.half.reserve(len) {
            Ok(mut reservation) => {
                let f = fill.take().expect("filled once");
                let out = f(&mut reservation);
                let wake = reservation.commit();
                self.end.busy();
                self.end.wake_if(wake)?;
                Ok(Some(out))
            }
            Err(MsgPushError::Full) => Ok(None),
            Err(MsgPushError::TooLarge { len, max }) => Err(Error::MessageTooLarge { len, max }),
            Err(MsgPushError::Corrupted(c)) => Err(Error::Corrupted(c)),
        }
    }

    /// Sends `msg` if there is room now; returns whether it was sent.
    ///
    /// ```
    /// let opts = sharedring::Options::new().capacity_bytes(64).max_msg(16);
    /// let (mut tx, _rx) = sharedring::msg_channel(&opts)?;
    /// let mut sent = 0;
    /// while tx.try_send(b"0123456789abcdef")? {
    ///     sent += 1;
    /// }
    /// assert!(sent > 0); // then full
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<bool, Error> {
        Ok(self
            .try_send_with(msg.len(), |r| r.copy_from_slice(msg))?
            .is_some())
    }

    /// Reserves `len` bytes if there is room now, lets `fill` write the
    /// message in place, and sends it. Returns `None` when full.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let sent = tx.try_send_with(4, |r| r.copy_from_slice(&7u32.to_ne_bytes()))?;
    /// assert!(sent.is_some());
    /// let mut buf = [0u8; 4];
    /// assert_eq!(rx.try_recv_into(&mut buf)?, Some(4));
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn try_send_with<R>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut Reservation<'_>) -> R,
    ) -> Result<Option<R>, Error> {
        let out = self.try_reserve(len, &mut Some(fill))?;
        if out.is_none() && self.end.idle_gone() {
            return Err(Error::PeerGone);
        }
        Ok(out)
    }

    /// Sends `msg`, blocking (spin, then park) until there is room, the
    /// timeout passes, or the peer is gone.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut tx, _rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(64).max_msg(24))?;
    /// tx.send(b"fits", None)?;
    /// let err = tx.send(&[0; 25], None).unwrap_err(); // longer than max_msg
    /// assert!(matches!(err, sharedring::Error::MessageTooLarge { len: 25, max: 24 }));
    /// # let _ = Duration::ZERO;
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn send(&mut self, msg: &[u8], timeout: Option<Duration>) -> Result<(), Error> {
        self.send_with(msg.len(), timeout, |r| r.copy_from_slice(msg))
    }

    /// Reserves `len` bytes (blocking as [`send`](Self::send) does), lets
    /// `fill` write the message in place, and sends it.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// tx.send_with(8, None, |r| r.copy_from_slice(&42u64.to_ne_bytes()))?;
    /// let v = rx.recv_with(None, |rec| {
    ///     let mut b = [0u8; 8];
    ///     rec.copy_to_slice(&mut b);
    ///     u64::from_ne_bytes(b)
    /// })?;
    /// assert_eq!(v, 42);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn send_with<R>(
        &mut self,
        len: usize,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut Reservation<'_>) -> R,
    ) -> Result<R, Error> {
        if len > self.max_msg() {
            return Err(Error::MessageTooLarge {
                len,
                max: self.max_msg(),
            });
        }
        let deadline = park::deadline(timeout);
        let mut fill = Some(fill);
        loop {
            if let Some(out) = self.try_reserve(len, &mut fill)? {
                return Ok(out);
            }
            match self.end.wait(MsgRoom { len }, deadline)? {
                Outcome::Ready => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: 0 }),
                Outcome::PeerGone => return Err(Error::PeerGone),
            }
        }
    }
}
