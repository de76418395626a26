//! The receiving end of an element ring: its data path.

use std::time::{Duration, Instant};

use eventfd_notify::Notifier;
use spsc_core::{Consumer, Corruption, ReadChunk, WaitCheck};

use super::{step_len, ElemRecv, Element};
use crate::endpoint::park::{self, Outcome, Side};
use crate::endpoint::Endpoint;
use crate::error::Error;

/// The receiving end of a ring of `T` shared with another process.
///
/// When the sender closes its stream (or is dropped), the receiver still
/// delivers everything it sent, and only then reports [`Error::Closed`];
/// when the peer dies instead, everything it committed, then
/// [`Error::PeerGone`].
///
/// ```
/// let (mut tx, mut rx) = sharedring::channel::<u8>(4096)?;
/// tx.send(b"hello", None)?;
/// drop(tx); // the sender is done...
/// let mut buf = [0u8; 16];
/// assert_eq!(rx.recv(&mut buf, None)?, 5); // ...its data still arrives,
/// assert!(matches!(rx.recv(&mut buf, None), Err(sharedring::Error::Closed))); // then the end.
/// # Ok::<(), sharedring::Error>(())
/// ```
pub struct Receiver<T: Element> {
    pub(crate) end: Endpoint<ElemRecv<T>>,
}

ring_end! {
    impl[T: Element] Receiver<T> => ElemRecv<T>,
    end: crate::End::Receiver,
    cap: elements via capacity_elements,
    half: consumer_without_wake -> Consumer<T>,
    docs: {
        this: "Receiver::<u64>",
        peer: "Sender::<u64>",
        peer_link: "Sender",
        cap: "1024",
        pair: "let (peer_end, mut this_end) = sharedring::channel::<u64>(64)?;",
    },
}

/// The consumer as the blocking loop sees it: ready when data is there.
pub(crate) struct Data;

impl<T: Element> Side<Consumer<T>> for Data {
    fn ready(&mut self, consumer: &mut Consumer<T>) -> Result<bool, Corruption> {
        // The end of the stream is something to wake up for too.
        Ok(consumer.slots()? > 0 || consumer.end_of_stream()?)
    }
    fn prepare_wait(&mut self, consumer: &mut Consumer<T>) -> Result<WaitCheck, Corruption> {
        consumer.prepare_wait()
    }
    fn finish_wait(&mut self, consumer: &mut Consumer<T>) {
        consumer.finish_wait()
    }
}

impl<T: Element> Receiver<T> {
    /// The capacity in elements.
    ///
    /// ```
    /// let (_tx, rx) = sharedring::channel::<u64>(64)?;
    /// assert_eq!(rx.capacity_elements(), 64);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn capacity_elements(&self) -> usize {
        self.end.half.capacity()
    }

    /// Copies out as much as is available into `dst`, in steps (see
    /// `step_len`), releasing after each step so that the sender can refill
    /// one step while we copy out the next.
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    fn pop_steps(&mut self, dst: &mut [T]) -> Result<usize, Corruption> {
        let consumer = &mut self.end.half;
        let step = step_len::<T>(consumer.capacity());
        if dst.len() <= step {
            // One step: the common small receive, without the loop.
            return consumer.pop_slice(dst);
        }
        let mut done = 0;
        while done < dst.len() {
            let end = (done + step).min(dst.len());
            let n = consumer.pop_slice(&mut dst[done..end])?;
            done += n;
            if done < end {
                break; // empty
            }
        }
        Ok(done)
    }

    /// Wakes the sender if it announced a wait for room.
    #[inline]
    fn wake_if_needed(&mut self) -> Result<(), Error> {
        let needed = self.end.half.needs_wake();
        self.end.wake_if(needed)
    }

    /// Receives as many elements as are available into `dst` and returns
    /// how many; never blocks. `Ok(0)` means the ring is empty.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::channel::<u16>(16)?;
    /// let mut buf = [0u16; 4];
    /// assert_eq!(rx.try_recv(&mut buf)?, 0); // empty
    /// tx.send(&[1, 2, 3, 4, 5], None)?;
    /// assert_eq!(rx.try_recv(&mut buf)?, 4); // as many as fit
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the ring is drained and the sender closed
    /// its stream (an empty ring looks at the ring's closed word on the
    /// first empty call after data or a wait, then on every 16th), and
    /// from then on; [`Error::PeerGone`] once the ring is
    /// drained and the peer is known to be gone (an empty ring makes us
    /// look at the socket every so often); [`Error::Corrupted`] if the
    /// peer broke the protocol.
    // Always inlined, or the caller's crate may keep it out of line:
    // see docs/ARCHITECTURE.md, "Hot paths inlined across crates".
    #[inline(always)]
    pub fn try_recv(&mut self, dst: &mut [T]) -> Result<usize, Error> {
        if self.end.closed {
            return Err(Error::Closed);
        }
        let n = self.pop_steps(dst)?;
        if n > 0 {
            self.end.busy();
            self.wake_if_needed()?;
            return Ok(n);
        }
        if dst.is_empty() {
            return Ok(0);
        }
        if self.end.idle_gone() {
            // Anything published before the hang-up is visible now.
            let n = self.pop_steps(dst)?;
            return if n > 0 {
                Ok(n)
            } else {
                Err(self.end.end_of_stream())
            };
        }
        Ok(0)
    }

    /// Receives at least one element into `dst` (as many as are available,
    /// up to its length), blocking while the ring is empty (spinning for
    /// the spin budget first), until the timeout passes, or the sender
    /// closed its stream or is gone and everything it sent has been
    /// received.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut tx, mut rx) = sharedring::channel::<u64>(64)?;
    /// let mut buf = [0u64; 8];
    /// let err = rx.recv(&mut buf, Some(Duration::from_millis(5))).unwrap_err();
    /// assert!(matches!(err, sharedring::Error::TimedOut { done: 0 }));
    /// tx.send(&[7], None)?;
    /// assert_eq!(rx.recv(&mut buf, None)?, 1);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] (with `done: 0`), [`Error::Closed`] (the end
    /// of the stream), [`Error::PeerGone`], [`Error::Corrupted`].
    pub fn recv(&mut self, dst: &mut [T], timeout: Option<Duration>) -> Result<usize, Error> {
        if self.end.closed {
            return Err(Error::Closed);
        }
        if dst.is_empty() {
            return Ok(0);
        }
        let deadline = park::deadline(timeout);
        loop {
            let n = self.pop_steps(dst)?;
            if n > 0 {
                self.wake_if_needed()?;
                return Ok(n);
            }
            if self.end.peer_closed() {
                return Err(Error::Closed);
            }
            match self.wait_data(deadline)? {
                Outcome::Ready => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: 0 }),
                Outcome::PeerGone => {
                    let n = self.pop_steps(dst)?;
                    return if n > 0 {
                        Ok(n)
                    } else {
                        Err(self.end.end_of_stream())
                    };
                }
            }
        }
    }

    fn wait_data(&mut self, deadline: Option<Instant>) -> Result<Outcome, Error> {
        self.end.wait(Data, deadline)
    }

    /// Blocks until data is available, the timeout passes, or the stream
    /// ended ([`Error::Closed`]) or the peer is gone (and the ring
    /// drained). Use it before [`read_chunk`](Self::read_chunk) to wait
    /// without copying.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::channel::<u64>(64)?;
    /// tx.send(&[1, 2], None)?;
    /// rx.wait_readable(None)?;
    /// assert_eq!(rx.read_chunk(8)?.len(), 2);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn wait_readable(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let deadline = park::deadline(timeout);
        loop {
            if self.end.half.slots()? > 0 {
                return Ok(());
            }
            if self.end.peer_closed() {
                return Err(Error::Closed);
            }
            match self.wait_data(deadline)? {
                Outcome::Ready => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: 0 }),
                Outcome::PeerGone => {
                    return if self.end.half.slots()? > 0 {
                        Ok(())
                    } else {
                        Err(self.end.end_of_stream())
                    };
                }
            }
        }
    }

    /// Up to `max` filled slots to read in place; never blocks. Release
    /// the chunk to free the slots (and wake the sender if it waits). An
    /// empty chunk means nothing is there yet; once the ring is drained and
    /// the sender closed its stream (or is gone), this returns
    /// [`Error::Closed`] (or [`Error::PeerGone`]), as
    /// [`try_recv`](Self::try_recv) does.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::channel::<u16>(64)?;
    /// tx.send(&[7, 8, 9], None)?;
    /// tx.close()?;
    /// let chunk = rx.read_chunk(16)?;
    /// let sum: u16 = (0..chunk.len()).map(|i| chunk.get(i)).sum();
    /// assert_eq!(sum, 24);
    /// chunk.release_all()?;
    /// assert!(matches!(rx.read_chunk(16), Err(sharedring::Error::Closed)));
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    #[inline]
    pub fn read_chunk(&mut self, max: usize) -> Result<RecvChunk<'_, T>, Error> {
        if self.end.closed {
            return Err(Error::Closed);
        }
        // At most one load of the producer's position, as `read_chunk`
        // alone makes: `ready` refreshes only if the cache shows fewer
        // than `max`, and the chunk of `n` is then served from the cache.
        // Only an empty ring asks whether the stream ended.
        let mut n = if max == 0 {
            0
        } else {
            self.end.half.ready(max)?.min(max)
        };
        if n == 0 && max > 0 && self.end.idle_gone() {
            // Anything published before the close or hang-up is visible now.
            n = self.end.half.ready(max)?.min(max);
            if n == 0 {
                return Err(self.end.end_of_stream());
            }
        }
        if n > 0 {
            self.end.busy();
        }
        let chunk = self.end.half.read_chunk(n)?;
        Ok(RecvChunk {
            chunk,
            wake: &self.end.parts.wake_peer,
        })
    }
}

/// Filled slots to read in place; see [`Receiver::read_chunk`]. It derefs
/// to [`spsc_core::ReadChunk`]; dropping it without a release frees nothing.
#[derive(Debug)]
pub struct RecvChunk<'a, T> {
    chunk: ReadChunk<'a, T>,
    wake: &'a Notifier,
}

impl<'a, T> std::ops::Deref for RecvChunk<'a, T> {
    type Target = ReadChunk<'a, T>;
    fn deref(&self) -> &Self::Target {
        &self.chunk
    }
}

impl<T: Element> RecvChunk<'_, T> {
    /// Frees the first `n` slots, and wakes the sender if it waits.
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::channel::<u32>(64)?;
    /// tx.send(&[1, 2, 3], None)?;
    /// let chunk = rx.read_chunk(8)?;
    /// assert_eq!(chunk.get(0), 1);
    /// chunk.release(1)?; // 2 and 3 stay
    /// assert_eq!(rx.try_recv(&mut [0; 8])?, 2);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` exceeds the chunk's length.
    #[inline]
    pub fn release(self, n: usize) -> Result<(), Error> {
        if self.chunk.release(n) {
            self.wake.notify()?;
        }
        Ok(())
    }

    /// Frees every slot of the chunk; see [`release`](Self::release).
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::channel::<u32>(64)?;
    /// tx.send(&[1, 2, 3], None)?;
    /// rx.read_chunk(8)?.release_all()?;
    /// assert_eq!(rx.try_recv(&mut [0; 8])?, 0);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    #[inline]
    pub fn release_all(self) -> Result<(), Error> {
        if self.chunk.release_all() {
            self.wake.notify()?;
        }
        Ok(())
    }
}

/// A ring is a drop-in replacement for a pipe: `read` blocks until at least
/// one byte arrives, and returns 0 (end of file) once the sender closed
/// its stream (or is gone) and everything it sent has been read.
impl std::io::Read for Receiver<u8> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.recv(buf, None) {
            Ok(n) => Ok(n),
            Err(Error::PeerGone | Error::Closed) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}
