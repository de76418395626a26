//! The receiving end of a typed ring.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use eventfd_notify::{Notifier, Waiter};
use spsc_core::{Consumer, Corruption, ReadChunk, WaitCheck};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::Error;
use crate::link::Link;
use crate::options::Options;
use crate::park::{self, Outcome, Side};
use crate::sender::step_len;
use crate::setup::wire::Role;
use crate::setup::{self, Parts};

/// The receiving end of a ring of `T` shared with another process.
///
/// When the peer is gone, the receiver still delivers everything the peer
/// committed, and only then reports [`Error::PeerGone`].
///
/// ```
/// let (mut tx, mut rx) = sharedring::channel::<u8>(4096)?;
/// tx.send(b"hello", None)?;
/// drop(tx); // the peer goes away...
/// let mut buf = [0u8; 16];
/// assert_eq!(rx.recv(&mut buf, None)?, 5); // ...its data still arrives,
/// assert!(matches!(rx.recv(&mut buf, None), Err(sharedring::Error::PeerGone))); // then the news.
/// # Ok::<(), sharedring::Error>(())
/// ```
pub struct Receiver<T> {
    // Declared before `parts`: the consumer points into `parts.shm`.
    pub(crate) consumer: Consumer<T>,
    pub(crate) link: Link,
    spin: Duration,
    pub(crate) parts: Parts,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("consumer", &self.consumer)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// The consumer as the blocking loop sees it: ready when data is there.
struct Data<'a, T> {
    consumer: &'a mut Consumer<T>,
}

impl<T: FromBytes + IntoBytes + Immutable> Side for Data<'_, T> {
    fn ready(&mut self) -> Result<bool, Corruption> {
        Ok(self.consumer.slots()? > 0)
    }
    fn prepare_wait(&mut self) -> Result<WaitCheck, Corruption> {
        self.consumer.prepare_wait()
    }
    fn finish_wait(&mut self) {
        self.consumer.finish_wait()
    }
}

impl<T: FromBytes + IntoBytes + Immutable> Receiver<T> {
    /// Creates a ring of `capacity` elements (a power of two), offers it to
    /// the peer over `stream`, and waits until the peer's
    /// [`Sender::accept`](crate::Sender::accept) has validated it.
    pub fn create(stream: UnixStream, capacity: usize) -> Result<Self, Error> {
        Self::create_with(stream, &Options::new().capacity(capacity))
    }

    /// [`create`](Self::create) with options.
    pub fn create_with(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        let layout = spsc_core::RingLayout::new::<T>(opts.capacity_for::<T>())?;
        let (consumer, parts) =
            setup::create_over(&stream, Role::Receiver, layout.into(), opts, |r| {
                Consumer::create(r, layout.capacity())
            })?;
        Ok(Self::from_parts(consumer, parts, Some(stream.into()), opts))
    }

    /// Accepts a ring that the peer's
    /// [`Sender::create`](crate::Sender::create) offers over `stream`, after
    /// validating every descriptor and value against what we expect.
    pub fn accept(stream: UnixStream) -> Result<Self, Error> {
        Self::accept_with(stream, &Options::new())
    }

    /// [`accept`](Self::accept) with options (limits, spin budget).
    pub fn accept_with(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        let (consumer, parts) = setup::accept_over(
            &stream,
            Role::Receiver,
            opts,
            setup::check_setup::<T>,
            |r, g| Consumer::attach(r, g.capacity()),
        )?;
        Ok(Self::from_parts(consumer, parts, Some(stream.into()), opts))
    }

    pub(crate) fn from_parts(
        consumer: Consumer<T>,
        parts: Parts,
        liveness: Option<OwnedFd>,
        opts: &Options,
    ) -> Self {
        Self {
            consumer,
            link: Link::new(liveness),
            spin: opts.spin,
            parts,
        }
    }

    /// The capacity in elements.
    pub fn capacity(&self) -> usize {
        self.consumer.capacity()
    }

    /// Copies out as much as is available into `dst`, in steps (see
    /// `step_len`), releasing after each step so that the sender can refill
    /// one step while we copy out the next.
    fn pop_steps(&mut self, dst: &mut [T]) -> Result<usize, Corruption> {
        let step = step_len::<T>(self.capacity());
        let mut done = 0;
        while done < dst.len() {
            let end = (done + step).min(dst.len());
            let n = self.consumer.pop_slice(&mut dst[done..end])?;
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
        if self.consumer.needs_wake() {
            self.parts.wake_peer.notify()?;
        }
        Ok(())
    }

    /// Receives as many elements as are available into `dst` and returns
    /// how many; never blocks. `Ok(0)` means the ring is empty.
    ///
    /// # Errors
    ///
    /// [`Error::PeerGone`] once the ring is drained and the peer is known to
    /// be gone (an empty ring makes us look at the socket every so often);
    /// [`Error::Corrupted`] if the peer broke the protocol.
    pub fn try_recv(&mut self, dst: &mut [T]) -> Result<usize, Error> {
        let n = self.pop_steps(dst)?;
        if n > 0 {
            self.link.busy();
            self.wake_if_needed()?;
            return Ok(n);
        }
        if dst.is_empty() {
            return Ok(0);
        }
        if self.link.known_gone() || self.link.idle() {
            // Anything published before the hang-up is visible now.
            let n = self.pop_steps(dst)?;
            return if n > 0 { Ok(n) } else { Err(Error::PeerGone) };
        }
        Ok(0)
    }

    /// Receives at least one element into `dst` (as many as are available,
    /// up to its length), blocking while the ring is empty (spinning for
    /// the spin budget first), until the timeout passes or the peer is gone
    /// and everything it sent has been received.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] (with `done: 0`), [`Error::PeerGone`],
    /// [`Error::Corrupted`].
    pub fn recv(&mut self, dst: &mut [T], timeout: Option<Duration>) -> Result<usize, Error> {
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
            match self.wait_data(deadline)? {
                Outcome::Ready => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: 0 }),
                Outcome::PeerGone => {
                    let n = self.pop_steps(dst)?;
                    return if n > 0 { Ok(n) } else { Err(Error::PeerGone) };
                }
            }
        }
    }

    fn wait_data(&mut self, deadline: Option<std::time::Instant>) -> Result<Outcome, Error> {
        let mut side = Data {
            consumer: &mut self.consumer,
        };
        park::wait(
            &mut side,
            &self.parts.wait_own,
            &mut self.link,
            self.spin,
            deadline,
        )
    }

    /// Blocks until data is available, the timeout passes, or the peer is
    /// gone (and the ring drained). Use it before
    /// [`read_chunk`](Self::read_chunk) to wait without copying.
    pub fn wait_readable(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let deadline = park::deadline(timeout);
        loop {
            if self.consumer.slots()? > 0 {
                return Ok(());
            }
            match self.wait_data(deadline)? {
                Outcome::Ready => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: 0 }),
                Outcome::PeerGone => {
                    return if self.consumer.slots()? > 0 {
                        Ok(())
                    } else {
                        Err(Error::PeerGone)
                    };
                }
            }
        }
    }

    /// Up to `max` filled slots to read in place; never blocks. Release
    /// the chunk to free the slots (and wake the sender if it waits).
    ///
    /// ```
    /// let (mut tx, mut rx) = sharedring::channel::<u16>(64)?;
    /// tx.send(&[7, 8, 9], None)?;
    /// let chunk = rx.read_chunk(16)?;
    /// let sum: u16 = (0..chunk.len()).map(|i| chunk.get(i)).sum();
    /// assert_eq!(sum, 24);
    /// chunk.release_all()?;
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn read_chunk(&mut self, max: usize) -> Result<RecvChunk<'_, T>, Error> {
        let chunk = self.consumer.read_chunk(max)?;
        Ok(RecvChunk {
            chunk,
            wake: &self.parts.wake_peer,
        })
    }

    /// Whether the peer is gone: it hung up or died (one `poll` of the
    /// liveness socket), or it broke the protocol, which treats it as gone
    /// from then on (every call then returns [`Error::Corrupted`]).
    /// Data it committed before it hung up may still be waiting in the
    /// ring.
    pub fn is_peer_gone(&mut self) -> bool {
        self.consumer.corruption().is_some() || self.link.check()
    }

    /// The wake-up descriptor this end sleeps on (readable when data
    /// arrived after we announced a wait), for event loops.
    pub fn waiter(&self) -> &Waiter {
        &self.parts.wait_own
    }

    /// The liveness socket, if any (it hangs up when the peer is gone).
    pub fn liveness(&self) -> Option<BorrowedFd<'_>> {
        self.link.sock()
    }

    /// The notifier that wakes the sender.
    pub fn notifier(&self) -> &Notifier {
        &self.parts.wake_peer
    }

    /// The spsc-core consumer inside, for callers that drive the wake-up
    /// protocol themselves.
    pub fn consumer(&mut self) -> &mut Consumer<T> {
        &mut self.consumer
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

impl<T: FromBytes + IntoBytes + Immutable> RecvChunk<'_, T> {
    /// Frees the first `n` slots, and wakes the sender if it waits.
    ///
    /// # Panics
    ///
    /// If `n` exceeds the chunk's length.
    pub fn release(self, n: usize) -> Result<(), Error> {
        if self.chunk.release(n) {
            self.wake.notify()?;
        }
        Ok(())
    }

    /// Frees every slot of the chunk; see [`release`](Self::release).
    pub fn release_all(self) -> Result<(), Error> {
        if self.chunk.release_all() {
            self.wake.notify()?;
        }
        Ok(())
    }
}

/// A ring is a drop-in replacement for a pipe: `read` blocks until at least
/// one byte arrives, and returns 0 (end of file) once the peer is gone and
/// everything it sent has been read.
impl std::io::Read for Receiver<u8> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.recv(buf, None) {
            Ok(n) => Ok(n),
            Err(Error::PeerGone) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}
