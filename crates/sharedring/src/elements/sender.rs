//! The sending end of an element ring: its data path.

use std::time::{Duration, Instant};

use eventfd_notify::Notifier;
use spsc_core::{Corruption, Producer, WaitCheck, WriteChunk};

use super::{step_len, ElemSend, Element};
use crate::endpoint::park::{self, Outcome, Side};
use crate::endpoint::Endpoint;
use crate::error::Error;

/// The sending end of a ring of `T` shared with another process.
///
/// Sending copies elements into shared memory and publishes them with one
/// store; a wake-up syscall is made only when the receiver announced that
/// it sleeps, so a receiver that keeps up costs no syscall per message.
///
/// ```
/// let (mut tx, mut rx) = sharedring::channel::<u32>(1024)?;
/// tx.send(&[1, 2, 3], None)?;
/// let mut buf = [0u32; 8];
/// assert_eq!(rx.recv(&mut buf, None)?, 3);
/// # Ok::<(), sharedring::Error>(())
/// ```
pub struct Sender<T: Element> {
    pub(crate) end: Endpoint<ElemSend<T>>,
}

ring_end! {
    impl[T: Element] Sender<T> => ElemSend<T>,
    end: crate::End::Sender,
    cap: elements via capacity_elements,
    half: producer_without_wake -> Producer<T>,
    docs: {
        this: "Sender::<u64>",
        peer: "Receiver::<u64>",
        peer_link: "Receiver",
        cap: "1024",
        pair: "let (mut this_end, peer_end) = sharedring::channel::<u64>(64)?;",
    },
}

/// The producer as the blocking loop sees it: ready when `want` slots are
/// free.
pub(crate) struct Room {
    pub(crate) want: usize,
}

impl<T: Element> Side<Producer<T>> for Room {
    fn ready(&mut self, producer: &mut Producer<T>) -> Result<bool, Corruption> {
        Ok(producer.slots()? >= self.want)
    }
    fn prepare_wait(&mut self, producer: &mut Producer<T>) -> Result<WaitCheck, Corruption> {
        producer.prepare_wait(self.want)
    }
    fn finish_wait(&mut self, producer: &mut Producer<T>) {
        producer.finish_wait()
    }
}

impl<T: Element> Sender<T> {
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
    /// let (mut tx, mut rx) = sharedring::channel::<u32>(64)?;
    /// tx.send(&[1, 2, 3], None)?;
    /// tx.close()?;
    /// let mut buf = [0u32; 8];
    /// assert_eq!(rx.recv(&mut buf, None)?, 3);
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

    /// The capacity in elements.
    ///
    /// ```
    /// let (tx, _rx) = sharedring::channel::<u64>(64)?;
    /// assert_eq!(tx.capacity_elements(), 64);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn capacity_elements(&self) -> usize {
        self.end.half.capacity()
    }

    /// Copies as much of `src` as fits, in steps (see [`step_len`]),
    /// publishing after each step. With one big copy per call, a big
    /// message would make the two sides take turns (we fill the ring, then
    /// the receiver empties it); in steps, the receiver copies one step out
    /// while we copy the next one in.
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    fn push_steps(&mut self, src: &[T]) -> Result<usize, Corruption> {
        let producer = &mut self.end.half;
        let step = step_len::<T>(producer.capacity());
        if src.len() <= step {
            // One step: the common small send, without the loop.
            return producer.push_slice(src);
        }
        let mut done = 0;
        while done < src.len() {
            let end = (done + step).min(src.len());
            let n = producer.push_slice(&src[done..end])?;
            done += n;
            if done < end {
                break; // full
            }
        }
        Ok(done)
    }

    /// Wakes the receiver if it announced sleep.
    #[inline]
    fn wake_if_needed(&mut self) -> Result<(), Error> {
        let needed = self.end.half.needs_wake();
        self.end.wake_if(needed)
    }

    /// Sends as many elements of `src` as fit now and returns how many;
    /// never blocks. Returns `Ok(0)` when the ring is full.
    ///
    /// ```
    /// let (mut tx, _rx) = sharedring::channel::<u8>(4)?;
    /// assert_eq!(tx.try_send(b"hello")?, 4); // the ring holds 4
    /// assert_eq!(tx.try_send(b"o")?, 0); // full
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::PeerGone`] once the peer is known to be gone (a full ring
    /// makes us look at the socket every so often), and
    /// [`Error::Corrupted`] if the peer broke the protocol.
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn try_send(&mut self, src: &[T]) -> Result<usize, Error> {
        self.end.usable()?;
        let n = self.push_steps(src)?;
        if n > 0 {
            self.end.busy();
            self.wake_if_needed()?;
        } else if !src.is_empty() && self.end.idle_gone() {
            return Err(Error::PeerGone);
        }
        Ok(n)
    }

    /// Sends all of `src`, blocking while the ring is full (spinning for
    /// the spin budget first), until everything is sent, `timeout` passes,
    /// or the peer is gone.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut tx, _rx) = sharedring::channel::<u64>(4)?;
    /// tx.send(&[1, 2], None)?;
    /// // Nobody reads: 2 more fit, then the timeout.
    /// let err = tx.send(&[3, 4, 5], Some(Duration::from_millis(10))).unwrap_err();
    /// assert!(matches!(err, sharedring::Error::TimedOut { done: 2 }));
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] says how many elements were sent before the
    /// timeout; [`Error::PeerGone`] and [`Error::Corrupted`] as for
    /// [`try_send`](Self::try_send).
    pub fn send(&mut self, src: &[T], timeout: Option<Duration>) -> Result<(), Error> {
        let deadline = park::deadline(timeout);
        let mut sent = 0;
        loop {
            self.end.usable()?;
            let n = self.push_steps(&src[sent..])?;
            if n > 0 {
                self.wake_if_needed()?;
                sent += n;
            }
            if sent == src.len() {
                return Ok(());
            }
            match self.wait_room(1, deadline)? {
                Outcome::Ready => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: sent }),
                Outcome::PeerGone => return Err(Error::PeerGone),
            }
        }
    }

    fn wait_room(&mut self, want: usize, deadline: Option<Instant>) -> Result<Outcome, Error> {
        self.end.wait(Room { want }, deadline)
    }

    /// Blocks until at least `want` slots are free (at most the capacity),
    /// the timeout passes, or the peer is gone. Use it before
    /// [`write_chunk`](Self::write_chunk) to wait without copying.
    ///
    /// ```
    /// let (mut tx, _rx) = sharedring::channel::<u64>(64)?;
    /// tx.wait_writable(16, None)?; // an empty ring has room at once
    /// assert!(tx.write_chunk(16)?.len() == 16);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn wait_writable(&mut self, want: usize, timeout: Option<Duration>) -> Result<(), Error> {
        let want = want.clamp(1, self.capacity_elements());
        let deadline = park::deadline(timeout);
        loop {
            self.end.usable()?;
            if self.end.half.slots()? >= want {
                return Ok(());
            }
            match self.wait_room(want, deadline)? {
                Outcome::Ready => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: 0 }),
                Outcome::PeerGone => return Err(Error::PeerGone),
            }
        }
    }

    /// Up to `max` free slots to write in place; never blocks. Commit the
    /// chunk to publish (and wake the receiver if it sleeps).
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::channel::<u64>(64)?;
    /// let mut chunk = tx.write_chunk(4)?;
    /// for i in 0..chunk.len() {
    ///     chunk.set(i, i as u64 * i as u64);
    /// }
    /// chunk.commit_all()?;
    /// let mut out = [0u64; 4];
    /// rx.recv(&mut out, None)?;
    /// assert_eq!(out, [0, 1, 4, 9]);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    #[inline]
    pub fn write_chunk(&mut self, max: usize) -> Result<SendChunk<'_, T>, Error> {
        self.end.usable()?;
        let chunk = self.end.half.write_chunk(max)?;
        Ok(SendChunk {
            chunk,
            wake: &self.end.parts.wake_peer,
        })
    }
}

/// Free slots to write in place; see [`Sender::write_chunk`]. It derefs to
/// [`spsc_core::WriteChunk`] for writing; dropping it without a commit
/// publishes nothing.
#[derive(Debug)]
pub struct SendChunk<'a, T> {
    chunk: WriteChunk<'a, T>,
    wake: &'a Notifier,
}

impl<'a, T> std::ops::Deref for SendChunk<'a, T> {
    type Target = WriteChunk<'a, T>;
    fn deref(&self) -> &Self::Target {
        &self.chunk
    }
}

impl<T> std::ops::DerefMut for SendChunk<'_, T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.chunk
    }
}

impl<T: Element> SendChunk<'_, T> {
    /// Publishes the first `n` slots, and wakes the receiver if it sleeps.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::channel::<u32>(64)?;
    /// let mut chunk = tx.write_chunk(8)?;
    /// chunk.set(0, 10);
    /// chunk.set(1, 20);
    /// chunk.commit(2)?; // only the two written slots
    /// assert_eq!(rx.try_recv(&mut [0; 8])?, 2);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` exceeds the chunk's length.
    #[inline]
    pub fn commit(self, n: usize) -> Result<(), Error> {
        if self.chunk.commit(n) {
            self.wake.notify()?;
        }
        Ok(())
    }

    /// Publishes every slot of the chunk; see [`commit`](Self::commit).
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::channel::<u8>(8)?;
    /// let mut chunk = tx.write_chunk(3)?;
    /// for i in 0..chunk.len() {
    ///     chunk.set(i, b'a' + i as u8);
    /// }
    /// chunk.commit_all()?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(rx.try_recv(&mut buf)?, 3);
    /// assert_eq!(&buf[..3], b"abc");
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    #[inline]
    pub fn commit_all(self) -> Result<(), Error> {
        if self.chunk.commit_all() {
            self.wake.notify()?;
        }
        Ok(())
    }
}

/// A ring is a drop-in replacement for a pipe: `write` blocks until at
/// least one byte is sent; a gone peer is `BrokenPipe`.
impl std::io::Write for Sender<u8> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.try_send(buf)?;
            if n > 0 {
                return Ok(n);
            }
            match self.wait_room(1, None).map_err(std::io::Error::from)? {
                Outcome::Ready | Outcome::TimedOut => {}
                Outcome::PeerGone => return Err(Error::PeerGone.into()),
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Every write publishes at once; there is nothing buffered.
        Ok(())
    }
}
