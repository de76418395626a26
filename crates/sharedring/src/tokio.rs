//! Async send and receive on tokio's reactor (feature `tokio`).
//!
//! The async ends wrap the blocking ones: the fast path is the same
//! lock-free copy (each async call is a loop over the blocking end's
//! non-blocking call), and when the ring is full (empty) they announce the
//! wait, re-check, and await the wake-up eventfd and the liveness
//! descriptor together instead of blocking the thread: the protocol of
//! `endpoint::park`, awaited. Wrap calls in `tokio::time::timeout` for a
//! deadline; dropping a pending call is safe (the announcement is
//! withdrawn).

use std::os::fd::{AsFd, OwnedFd};

use eventfd_notify::AsyncWaiter;
use spsc_core::{Record, Reservation, WaitCheck};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::elements::receiver::Data;
use crate::elements::sender::Room;
use crate::endpoint::link::Link;
use crate::endpoint::park::Side;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::messages::receiver::MsgData;
use crate::messages::sender::MsgRoom;
use crate::setup::Kind;
use crate::{Element, MsgReceiver, MsgSender, Receiver, Sender};

/// What the async ends await besides the ring: the wake-up eventfd (a
/// duplicate of the blocking end's) and the liveness descriptor.
#[derive(Debug)]
struct Reactor {
    wake: AsyncWaiter,
    live: Option<AsyncFd<OwnedFd>>,
}

impl Reactor {
    fn new<K: Kind>(end: &Endpoint<K>) -> Result<Self, Error> {
        let wake = AsyncWaiter::new(end.parts.wait_own.try_clone()?)?;
        let live = match end.link.sock() {
            Some(sock) => {
                let dup = sock.as_fd().try_clone_to_owned().map_err(Error::from)?;
                // SAFETY: the `AsyncFd` owns `dup` for its whole life and
                // `OwnedFd::as_raw_fd` always returns that same descriptor.
                let fd = unsafe { AsyncFd::register_with_interest(dup, Interest::READABLE) }
                    .map_err(|e| Error::from(e.into_parts().1))?;
                Some(fd)
            }
            None => None,
        };
        Ok(Self { wake, live })
    }

    /// Waits for a wake-up or for the liveness descriptor to signal (which
    /// `Link::check` then decides, and records, as the peer being gone).
    async fn wait(&self, link: &mut Link) -> Result<(), Error> {
        let Some(live) = &self.live else {
            self.wake.wait().await?;
            return Ok(());
        };
        loop {
            tokio::select! {
                r = self.wake.wait() => {
                    r?;
                    return Ok(());
                }
                r = live.readable() => {
                    let mut guard = r.map_err(Error::from)?;
                    if link.check() {
                        return Ok(());
                    }
                    // Spurious readiness: `Link::check` found the socket
                    // silent (anything readable means the peer is gone).
                    guard.clear_ready();
                }
            }
        }
    }

    /// The one async loop of every end: `attempt` is the blocking end's
    /// non-blocking call (`Some` when done); while it finds nothing to do,
    /// announce the wait on `side`, re-check, and await. A gone peer is
    /// reported by the next attempt (after what it committed).
    async fn drive<K: Kind, W, R>(
        &self,
        inner: &mut W,
        end: fn(&mut W) -> &mut Endpoint<K>,
        mut attempt: impl FnMut(&mut W) -> Result<Option<R>, Error>,
        mut side: impl Side<K::Half>,
    ) -> Result<R, Error> {
        loop {
            // A cooperative yield point: a ring that is always ready (or a
            // peer that floods wake-ups) must not starve the other tasks
            // of this runtime, nor a `tokio::time::timeout` around us.
            tokio::task::coop::consume_budget().await;
            if let Some(out) = attempt(inner)? {
                return Ok(out);
            }
            let Endpoint { half, link, .. } = end(inner);
            // After a wait, the next empty attempt looks at the closed
            // word at once.
            link.busy();
            if side.prepare_wait(half)? == WaitCheck::Ready {
                continue;
            }
            // Withdraw the announcement when done, or when this future is
            // dropped mid-wait.
            let mut finish = || side.finish_wait(half);
            let _announced = Announced(&mut finish);
            self.wait(link).await?;
        }
    }
}

/// Withdraws a wait announcement when dropped, so that a cancelled future
/// leaves no stale "asleep" flag behind.
struct Announced<'a, F: FnMut()>(&'a mut F);

impl<F: FnMut()> Drop for Announced<'_, F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// The async sending end; see [`Sender::into_async`].
#[derive(Debug)]
pub struct AsyncSender<T: Element> {
    inner: Sender<T>,
    reactor: Reactor,
}

/// The async receiving end; see [`Receiver::into_async`].
#[derive(Debug)]
pub struct AsyncReceiver<T: Element> {
    inner: Receiver<T>,
    reactor: Reactor,
}

/// The async sending end of a message ring; see [`MsgSender::into_async`].
#[derive(Debug)]
pub struct AsyncMsgSender {
    inner: MsgSender,
    reactor: Reactor,
}

/// The async receiving end of a message ring; see
/// [`MsgReceiver::into_async`].
#[derive(Debug)]
pub struct AsyncMsgReceiver {
    inner: MsgReceiver,
    reactor: Reactor,
}

/// `into_async`, `get_mut` and `into_inner`, written once for the four
/// async ends.
macro_rules! async_end {
    (impl[$($gen:tt)*] $blocking:ty => $async:ident $(<$t:ident>)?, example: $example:literal) => {
        impl<$($gen)*> $blocking {
            #[doc = concat!(
                "Turns this end into an async one. Must be called inside a tokio runtime ",
                "(with I/O enabled).\n\n",
                "```\n",
                "# #[tokio::main(flavor = \"current_thread\")]\n",
                "# async fn main() -> Result<(), sharedring::Error> {\n",
                $example, "\n",
                "let this_end = this_end.into_async()?;\n",
                "# drop((this_end, peer_end));\n",
                "# Ok(()) }\n",
                "```",
            )]
            pub fn into_async(mut self) -> Result<$async $(<$t>)?, Error> {
                let reactor = Reactor::new(&self.end)?;
                self.end.for_event_loop();
                Ok($async { inner: self, reactor })
            }
        }

        impl<$($gen)*> $async $(<$t>)? {
            #[doc = concat!(
                "The blocking end inside, for its non-blocking calls (and chunks).\n\n",
                "```\n",
                "# #[tokio::main(flavor = \"current_thread\")]\n",
                "# async fn main() -> Result<(), sharedring::Error> {\n",
                $example, "\n",
                "let mut this_end = this_end.into_async()?;\n",
                "assert!(!this_end.get_mut().is_peer_gone());\n",
                "# drop((this_end, peer_end));\n",
                "# Ok(()) }\n",
                "```",
            )]
            pub fn get_mut(&mut self) -> &mut $blocking {
                &mut self.inner
            }

            #[doc = concat!(
                "The blocking end back.\n\n",
                "```\n",
                "# #[tokio::main(flavor = \"current_thread\")]\n",
                "# async fn main() -> Result<(), sharedring::Error> {\n",
                $example, "\n",
                "let this_end = this_end.into_async()?.into_inner();\n",
                "# drop((this_end, peer_end));\n",
                "# Ok(()) }\n",
                "```",
            )]
            pub fn into_inner(self) -> $blocking {
                self.inner
            }
        }
    };
}

async_end!(impl[T: Element] Sender<T> => AsyncSender<T>,
    example: "let (this_end, peer_end) = sharedring::channel::<u64>(64)?;");
async_end!(impl[T: Element] Receiver<T> => AsyncReceiver<T>,
    example: "let (peer_end, this_end) = sharedring::channel::<u64>(64)?;");
async_end!(impl[] MsgSender => AsyncMsgSender,
    example: "let (this_end, peer_end) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;");
async_end!(impl[] MsgReceiver => AsyncMsgReceiver,
    example: "let (peer_end, this_end) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;");

impl<T: Element> AsyncSender<T> {
    /// Closes the stream; see the blocking end's `close`: the receiver
    /// gets everything sent, then [`Error::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (tx, rx) = sharedring::channel::<u8>(64)?;
    /// let (mut tx, mut rx) = (tx.into_async()?, rx.into_async()?);
    /// tx.send(b"end").await?;
    /// tx.close()?;
    /// assert_eq!(rx.recv(&mut [0; 8]).await?, 3);
    /// assert!(matches!(rx.recv(&mut [0; 8]).await, Err(sharedring::Error::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn close(self) -> Result<(), Error> {
        self.inner.close()
    }

    /// Sends all of `src`, awaiting room while the ring is full.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (tx, rx) = sharedring::channel::<u32>(4)?;
    /// let (mut tx, mut rx) = (tx.into_async()?, rx.into_async()?);
    /// let reader = tokio::spawn(async move {
    ///     let mut buf = [0u32; 4];
    ///     let mut total = 0;
    ///     while total < 10 {
    ///         total += rx.recv(&mut buf).await?;
    ///     }
    ///     Ok::<_, sharedring::Error>(total)
    /// });
    /// tx.send(&[1; 10]).await?; // more than fits: awaits the reader
    /// assert_eq!(reader.await.unwrap()?, 10);
    /// # Ok(()) }
    /// ```
    pub async fn send(&mut self, src: &[T]) -> Result<(), Error> {
        let mut sent = 0;
        let attempt = |tx: &mut Sender<T>| {
            sent += tx.try_send(&src[sent..])?;
            Ok((sent == src.len()).then_some(()))
        };
        self.reactor
            .drive(&mut self.inner, |tx| &mut tx.end, attempt, Room { want: 1 })
            .await
    }
}

impl<T: Element> AsyncReceiver<T> {
    /// Receives at least one element into `dst`, awaiting data while the
    /// ring is empty; `PeerGone` once the peer is gone and the ring drained.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (tx, rx) = sharedring::channel::<u8>(64)?;
    /// let (mut tx, mut rx) = (tx.into_async()?, rx.into_async()?);
    /// tx.send(b"abc").await?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(rx.recv(&mut buf).await?, 3);
    /// # Ok(()) }
    /// ```
    pub async fn recv(&mut self, dst: &mut [T]) -> Result<usize, Error> {
        if dst.is_empty() {
            return Ok(0);
        }
        let attempt = |rx: &mut Receiver<T>| Ok(Some(rx.try_recv(dst)?).filter(|&n| n > 0));
        self.reactor
            .drive(&mut self.inner, |rx| &mut rx.end, attempt, Data)
            .await
    }
}

impl AsyncMsgSender {
    /// Closes the stream; see the blocking end's `close`: the receiver
    /// gets everything sent, then [`Error::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (tx, rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let (mut tx, mut rx) = (tx.into_async()?, rx.into_async()?);
    /// tx.send(b"end").await?;
    /// tx.close()?;
    /// assert_eq!(rx.recv(&mut Vec::new()).await?, 3);
    /// assert!(matches!(rx.recv(&mut Vec::new()).await, Err(sharedring::Error::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn close(self) -> Result<(), Error> {
        self.inner.close()
    }

    /// Sends `msg`, awaiting room.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (tx, rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let (mut tx, mut rx) = (tx.into_async()?, rx.into_async()?);
    /// tx.send(b"hi").await?;
    /// assert_eq!(rx.recv(&mut Vec::new()).await?, 2);
    /// # Ok(()) }
    /// ```
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.send_with(msg.len(), |r| r.copy_from_slice(msg)).await
    }

    /// Reserves `len` bytes (awaiting room), lets `fill` write the message
    /// in place, and sends it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (tx, rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let (mut tx, mut rx) = (tx.into_async()?, rx.into_async()?);
    /// tx.send_with(3, |r| r.copy_from_slice(b"xyz")).await?;
    /// assert_eq!(rx.recv(&mut Vec::new()).await?, 3);
    /// # Ok(()) }
    /// ```
    pub async fn send_with<R>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut Reservation<'_>) -> R,
    ) -> Result<R, Error> {
        let mut fill = Some(fill);
        let attempt =
            |tx: &mut MsgSender| tx.try_send_with(len, |r| (fill.take().expect("filled once"))(r));
        self.reactor
            .drive(&mut self.inner, |tx| &mut tx.end, attempt, MsgRoom { len })
            .await
    }
}

impl AsyncMsgReceiver {
    /// Receives the next message into `buf` (resized to fit), awaiting it;
    /// `PeerGone` once the peer is gone and the ring drained.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (tx, rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let (mut tx, mut rx) = (tx.into_async()?, rx.into_async()?);
    /// tx.send(b"async").await?;
    /// let mut buf = Vec::new();
    /// assert_eq!(rx.recv(&mut buf).await?, 5);
    /// # Ok(()) }
    /// ```
    pub async fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize, Error> {
        self.take(|rx| rx.try_recv(buf)).await
    }

    /// Receives the next message into `buf` if it fits, awaiting it; a
    /// longer message stays in the ring (`BufferTooSmall`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (tx, rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let (mut tx, mut rx) = (tx.into_async()?, rx.into_async()?);
    /// tx.send(b"into").await?;
    /// let mut buf = [0u8; 16];
    /// assert_eq!(rx.recv_into(&mut buf).await?, 4);
    /// # Ok(()) }
    /// ```
    pub async fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.take(|rx| rx.try_recv_into(buf)).await
    }

    /// Awaits the next message, reads it in place with `read`, releases it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (tx, rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let (mut tx, mut rx) = (tx.into_async()?, rx.into_async()?);
    /// tx.send(b"in place").await?;
    /// assert_eq!(rx.recv_with(|rec| rec.len()).await?, 8);
    /// # Ok(()) }
    /// ```
    pub async fn recv_with<R>(&mut self, read: impl FnOnce(&Record<'_>) -> R) -> Result<R, Error> {
        let mut read = Some(read);
        self.take(|rx| rx.try_recv_with(|r| (read.take().expect("read once"))(r)))
            .await
    }

    async fn take<R>(
        &mut self,
        attempt: impl FnMut(&mut MsgReceiver) -> Result<Option<R>, Error>,
    ) -> Result<R, Error> {
        self.reactor
            .drive(&mut self.inner, |rx| &mut rx.end, attempt, MsgData)
            .await
    }
}

impl<E: crate::RingEnd> crate::Handshake<E> {
    /// Drives the handshake to its end on tokio's reactor: awaits the
    /// socket's readiness for what it [wants](Self::interest), never past
    /// its [deadline](Self::deadline), and advances. Needs a runtime with
    /// I/O and time enabled. Returns the blocking end; turn it into an
    /// async one with `into_async`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sharedring::{Handshake, Options, Receiver, Sender};
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let peer = std::thread::spawn(move || Sender::<u64>::create(b, 64));
    /// let rx = Handshake::<Receiver<u64>>::accept(a, &Options::new())?
    ///     .finish_async()
    ///     .await?;
    /// let mut rx = rx.into_async()?;
    /// peer.join().unwrap()?.send(&[7], None)?;
    /// assert_eq!(rx.recv(&mut [0; 4]).await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn finish_async(self) -> Result<E, Error> {
        use crate::{Interest as Want, Progress};
        // A duplicate of the socket, registered for both directions; the
        // handshake keeps its own for the ring.
        let dup = self.as_fd().try_clone_to_owned().map_err(Error::from)?;
        // SAFETY: the `AsyncFd` owns `dup` for its whole life and
        // `OwnedFd::as_raw_fd` always returns that same descriptor.
        let fd = unsafe {
            AsyncFd::register_with_interest(dup, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(|e| Error::from(e.into_parts().1))?;
        let mut pending = self;
        loop {
            pending = match pending.advance()? {
                Progress::Done(end) => return Ok(end),
                Progress::Pending(p) => p,
            };
            // Read before the await: the future borrows only `fd` (a
            // pending handshake is `Send`, not `Sync`).
            let (want, deadline) = (pending.interest(), pending.deadline());
            let ready = async {
                match want {
                    Want::Readable => fd.readable().await.map(|mut g| g.clear_ready()),
                    Want::Writable => fd.writable().await.map(|mut g| g.clear_ready()),
                }
            };
            match deadline {
                // Past the deadline the next advance fails with `TimedOut`.
                Some(at) => match tokio::time::timeout_at(at.into(), ready).await {
                    Ok(r) => r.map_err(Error::from)?,
                    Err(_elapsed) => {}
                },
                None => ready.await.map_err(Error::from)?,
            }
        }
    }
}
