//! Async send and receive on tokio's reactor (feature `tokio`).
//!
//! The async ends wrap the blocking ones: the fast path is the same
//! lock-free copy, and when the ring is full (empty) they announce the
//! wait, re-check, and await the wake-up eventfd and the liveness socket
//! together instead of blocking the thread. Wrap calls in
//! `tokio::time::timeout` for a deadline; dropping a pending call is safe
//! (the announcement is withdrawn).

use std::os::fd::{AsFd, OwnedFd};

use eventfd_notify::{AsyncWaiter, Waiter};
use spsc_core::WaitCheck;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::endpoint::link::Link;
use crate::error::Error;
use crate::Element;
use crate::{MsgReceiver, MsgSender, Receiver, Sender};
use spsc_core::{Record, Reservation};

/// What the async ends await besides the ring: the wake-up eventfd (a
/// duplicate of the blocking end's) and the liveness socket.
#[derive(Debug)]
struct Reactor {
    wake: AsyncWaiter,
    live: Option<AsyncFd<OwnedFd>>,
}

impl Reactor {
    fn new(waiter: &Waiter, link: &Link) -> Result<Self, Error> {
        let wake = AsyncWaiter::new(Waiter::from_received(waiter.try_clone_fd()?)?)?;
        let live = match link.sock() {
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

    /// Waits for a wake-up or a hang-up. Returns `true` if the peer is gone.
    async fn wait(&self, link: &mut Link) -> Result<bool, Error> {
        let Some(live) = &self.live else {
            self.wake.wait().await?;
            return Ok(false);
        };
        loop {
            tokio::select! {
                r = self.wake.wait() => {
                    r?;
                    return Ok(false);
                }
                r = live.readable() => {
                    let mut guard = r.map_err(Error::from)?;
                    if link.check() {
                        return Ok(true);
                    }
                    // Spurious readiness: `Link::check` found the socket
                    // silent (anything readable means the peer is gone).
                    guard.clear_ready();
                }
            }
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

impl<T: Element> Sender<T> {
    /// Turns this end into an async one. Must be called inside a tokio
    /// runtime (with I/O enabled).
    pub fn into_async(self) -> Result<AsyncSender<T>, Error> {
        let reactor = Reactor::new(&self.end.parts.wait_own, &self.end.link)?;
        Ok(AsyncSender {
            inner: self,
            reactor,
        })
    }
}

impl<T: Element> Receiver<T> {
    /// Turns this end into an async one. Must be called inside a tokio
    /// runtime (with I/O enabled).
    pub fn into_async(self) -> Result<AsyncReceiver<T>, Error> {
        let reactor = Reactor::new(&self.end.parts.wait_own, &self.end.link)?;
        Ok(AsyncReceiver {
            inner: self,
            reactor,
        })
    }
}

impl<T: Element> AsyncSender<T> {
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
        while sent < src.len() {
            // A cooperative yield point: a ring that is always ready (or a
            // peer that floods wake-ups) must not starve the other tasks
            // of this runtime, nor a `tokio::time::timeout` around us.
            tokio::task::coop::consume_budget().await;
            sent += self.inner.try_send(&src[sent..])?;
            if sent == src.len() {
                break;
            }
            let producer = &mut self.inner.end.half;
            if producer.prepare_wait(1)? == WaitCheck::Ready {
                continue;
            }
            let mut finish = || producer.finish_wait();
            let _announced = Announced(&mut finish);
            if self.reactor.wait(&mut self.inner.end.link).await? {
                self.inner.end.link.set_gone();
                return Err(Error::PeerGone);
            }
        }
        Ok(())
    }

    /// The blocking end inside, for non-blocking calls and chunks.
    pub fn get_mut(&mut self) -> &mut Sender<T> {
        &mut self.inner
    }

    /// The blocking end back.
    pub fn into_inner(self) -> Sender<T> {
        self.inner
    }
}

impl<T: Element> AsyncReceiver<T> {
    /// Receives at least one element into `dst`, awaiting data while the
    /// ring is empty; `PeerGone` once the peer is gone and the ring drained.
    pub async fn recv(&mut self, dst: &mut [T]) -> Result<usize, Error> {
        if dst.is_empty() {
            return Ok(0);
        }
        loop {
            // A cooperative yield point: a ring that is always ready (or a
            // peer that floods wake-ups) must not starve the other tasks
            // of this runtime, nor a `tokio::time::timeout` around us.
            tokio::task::coop::consume_budget().await;
            let n = self.inner.try_recv(dst)?;
            if n > 0 {
                return Ok(n);
            }
            let consumer = &mut self.inner.end.half;
            if consumer.prepare_wait()? == WaitCheck::Ready {
                continue;
            }
            let mut finish = || consumer.finish_wait();
            let announced = Announced(&mut finish);
            let gone = self.reactor.wait(&mut self.inner.end.link).await?;
            drop(announced);
            if gone {
                self.inner.end.link.set_gone();
                // Drain what the peer committed before it went.
                let n = self.inner.end.half.pop_slice(dst)?;
                return if n > 0 { Ok(n) } else { Err(Error::PeerGone) };
            }
        }
    }

    /// The blocking end inside, for non-blocking calls and chunks.
    pub fn get_mut(&mut self) -> &mut Receiver<T> {
        &mut self.inner
    }

    /// The blocking end back.
    pub fn into_inner(self) -> Receiver<T> {
        self.inner
    }
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

impl MsgSender {
    /// Turns this end into an async one (inside a tokio runtime).
    pub fn into_async(self) -> Result<AsyncMsgSender, Error> {
        let reactor = Reactor::new(&self.end.parts.wait_own, &self.end.link)?;
        Ok(AsyncMsgSender {
            inner: self,
            reactor,
        })
    }
}

impl MsgReceiver {
    /// Turns this end into an async one (inside a tokio runtime).
    pub fn into_async(self) -> Result<AsyncMsgReceiver, Error> {
        let reactor = Reactor::new(&self.end.parts.wait_own, &self.end.link)?;
        Ok(AsyncMsgReceiver {
            inner: self,
            reactor,
        })
    }
}

impl AsyncMsgSender {
    /// Sends `msg`, awaiting room.
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.send_with(msg.len(), |r| r.copy_from_slice(msg)).await
    }

    /// Reserves `len` bytes (awaiting room), lets `fill` write the message
    /// in place, and sends it.
    pub async fn send_with<R>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut Reservation<'_>) -> R,
    ) -> Result<R, Error> {
        let mut fill = Some(fill);
        loop {
            // A cooperative yield point: a ring that is always ready (or a
            // peer that floods wake-ups) must not starve the other tasks
            // of this runtime, nor a `tokio::time::timeout` around us.
            tokio::task::coop::consume_budget().await;
            if let Some(out) = self
                .inner
                .try_send_with(len, |r| (fill.take().expect("filled once"))(r))?
            {
                return Ok(out);
            }
            let producer = &mut self.inner.end.half;
            if producer.prepare_wait(len)? == WaitCheck::Ready {
                continue;
            }
            let mut finish = || producer.finish_wait();
            let _announced = Announced(&mut finish);
            if self.reactor.wait(&mut self.inner.end.link).await? {
                self.inner.end.link.set_gone();
                return Err(Error::PeerGone);
            }
        }
    }

    /// The blocking end inside, for non-blocking calls.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (tx, _rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let mut tx = tx.into_async()?;
    /// assert!(tx.get_mut().try_send(b"now")?);
    /// # Ok(()) }
    /// ```
    pub fn get_mut(&mut self) -> &mut MsgSender {
        &mut self.inner
    }

    /// The blocking end back.
    pub fn into_inner(self) -> MsgSender {
        self.inner
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

    /// The one async receive: tries `attempt` (a non-blocking receive of
    /// the blocking end), and awaits a wake-up or the peer's end while the
    /// ring is empty.
    async fn take<R>(
        &mut self,
        mut attempt: impl FnMut(&mut MsgReceiver) -> Result<Option<R>, Error>,
    ) -> Result<R, Error> {
        loop {
            // A cooperative yield point: a ring that is always ready (or a
            // peer that floods wake-ups) must not starve the other tasks
            // of this runtime, nor a `tokio::time::timeout` around us.
            tokio::task::coop::consume_budget().await;
            if let Some(out) = attempt(&mut self.inner)? {
                return Ok(out);
            }
            let consumer = &mut self.inner.end.half;
            if consumer.prepare_wait()? == WaitCheck::Ready {
                continue;
            }
            let mut finish = || consumer.finish_wait();
            let announced = Announced(&mut finish);
            let gone = self.reactor.wait(&mut self.inner.end.link).await?;
            drop(announced);
            if gone {
                // The next try drains what the peer committed, then says
                // PeerGone.
                self.inner.end.link.set_gone();
            }
        }
    }

    /// The blocking end inside, for non-blocking calls.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sharedring::Error> {
    /// let (_tx, rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
    /// let mut rx = rx.into_async()?;
    /// assert_eq!(rx.get_mut().try_recv(&mut Vec::new())?, None);
    /// # Ok(()) }
    /// ```
    pub fn get_mut(&mut self) -> &mut MsgReceiver {
        &mut self.inner
    }

    /// The blocking end back.
    pub fn into_inner(self) -> MsgReceiver {
        self.inner
    }
}
