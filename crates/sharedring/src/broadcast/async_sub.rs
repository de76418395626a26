//! Subscribers on tokio's reactor (feature `tokio`).
//!
//! The same non-blocking read as the blocking subscriber; when it finds
//! nothing, the subscriber announces its sleep ([`MsgSubscriber::arm`],
//! which re-checks the ring), then awaits the shared wake-up eventfd and the
//! publisher's socket together instead of blocking the thread. The eventfd
//! is watched edge-triggered and never read: it is shared by every
//! subscriber, and each signal wakes them all.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{contract_size, BroadcastError, MsgSubscriber, Subscriber};
use crate::Element;

/// A [`MsgSubscriber`] whose receive is awaited on tokio's reactor; made by
/// [`MsgSubscriber::into_async`].
///
/// [`recv`](Self::recv) is cancel-safe: a message is consumed only when
/// the call returns it, and a call dropped mid-wait leaves at most one
/// spurious wake-up behind (the announcement it made). Wrap it in
/// `tokio::time::timeout` for a deadline.
///
/// ```
/// use sharedring::broadcast::{BroadcastOptions, MsgPublisher, MsgSubscriber, SubscribeOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let mut publisher = MsgPublisher::new(&BroadcastOptions::new().max_msg(64))?;
///     let (a, b) = std::os::unix::net::UnixStream::pair()?;
///     publisher.add_subscriber(a)?;
///     let mut sub = MsgSubscriber::join(b, &SubscribeOptions::new())?.into_async()?;
///     let feeder = std::thread::spawn(move || {
///         publisher.publish(b"hello").unwrap();
///         publisher
///     });
///     let mut buf = [0u8; 64];
///     let n = sub.recv(&mut buf).await?;
///     assert_eq!(&buf[..n], b"hello");
///     drop(feeder.join().unwrap()); // dropping the publisher closes the stream
///     assert!(matches!(
///         sub.recv(&mut buf).await,
///         Err(sharedring::broadcast::BroadcastError::Closed)
///     ));
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncMsgSubscriber {
    inner: MsgSubscriber,
    /// A duplicate of the shared wake-up eventfd.
    wake: AsyncFd<OwnedFd>,
    /// A duplicate of the publisher's socket (readable or hung up: gone).
    live: AsyncFd<OwnedFd>,
}

/// Registers a duplicate of `fd` for readability with the current
/// runtime's reactor (edge-triggered, as tokio does).
fn register(fd: BorrowedFd<'_>) -> Result<AsyncFd<OwnedFd>, BroadcastError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(BroadcastError::Io(io::Error::other(
            "into_async called outside a tokio runtime: call it from a task or inside \
             Runtime::block_on (or Runtime::enter)",
        )));
    }
    let dup = fd.try_clone_to_owned()?;
    // SAFETY: the `AsyncFd` owns `dup` for its whole life and
    // `OwnedFd::as_raw_fd` always returns that same descriptor.
    unsafe { AsyncFd::register_with_interest(dup, Interest::READABLE) }
        .map_err(|e| BroadcastError::Io(e.into_parts().1))
}

impl MsgSubscriber {
    /// This subscriber on the current tokio runtime (feature `tokio`).
    /// Fails outside a runtime, naming the fix.
    pub fn into_async(self) -> Result<AsyncMsgSubscriber, BroadcastError> {
        let wake = register(self.wait_fd())?;
        let live = register(self.liveness_fd())?;
        Ok(AsyncMsgSubscriber {
            inner: self,
            wake,
            live,
        })
    }
}

impl AsyncMsgSubscriber {
    /// Copies the next message into `buf`, awaiting it as long as it takes.
    /// The errors are [`MsgSubscriber::try_recv`]'s, except `Empty`:
    /// `Lagged` when messages were lost (the next call reads on), `Closed`
    /// at the end, `PeerGone` once the publisher is gone and nothing is
    /// left.
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, BroadcastError> {
        loop {
            // A cooperative yield point: a publisher that never lets the
            // ring run empty must not starve this runtime's other tasks.
            tokio::task::coop::consume_budget().await;
            match self.inner.try_recv(buf) {
                Err(BroadcastError::Empty) => {}
                other => return other,
            }
            if !self.inner.arm() {
                continue;
            }
            let gone = tokio::select! {
                r = self.wake.readable() => {
                    // Never read the shared eventfd: forget the edge.
                    r?.clear_ready();
                    false
                }
                r = self.live.readable() => {
                    let mut guard = r?;
                    let gone = self.inner.publisher_gone();
                    if !gone {
                        // Spurious readiness (the socket stays silent
                        // while the publisher lives).
                        guard.clear_ready();
                    }
                    gone
                }
            };
            self.inner.disarm();
            if gone {
                return self.inner.after_gone(buf);
            }
        }
    }

    /// The blocking subscriber (cursor, lag, `latest`, `try_recv`).
    pub fn get_mut(&mut self) -> &mut MsgSubscriber {
        &mut self.inner
    }

    /// The blocking subscriber, read-only.
    pub fn get_ref(&self) -> &MsgSubscriber {
        &self.inner
    }

    /// Back to the blocking subscriber (the reactor's registrations are
    /// dropped).
    pub fn into_inner(self) -> MsgSubscriber {
        self.inner
    }
}

/// A [`Subscriber<T>`] whose receive is awaited on tokio's reactor; made by
/// [`Subscriber::into_async`]. Cancel-safe as [`AsyncMsgSubscriber`].
#[derive(Debug)]
pub struct AsyncSubscriber<T: Element> {
    inner: AsyncMsgSubscriber,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element> Subscriber<T> {
    /// This subscriber on the current tokio runtime (feature `tokio`).
    /// Fails outside a runtime, naming the fix.
    pub fn into_async(self) -> Result<AsyncSubscriber<T>, BroadcastError> {
        Ok(AsyncSubscriber {
            inner: self.into_inner().into_async()?,
            _t: std::marker::PhantomData,
        })
    }
}

impl<T: Element> AsyncSubscriber<T> {
    /// The next value, awaiting it as long as it takes; errors as
    /// [`AsyncMsgSubscriber::recv`], plus `WrongSize` for a message of
    /// another size than `T`'s.
    pub async fn recv(&mut self) -> Result<T, BroadcastError> {
        let mut value = T::new_zeroed();
        let n = self.inner.recv(value.as_mut_bytes()).await?;
        contract_size::<T>(n)?;
        Ok(value)
    }

    /// The byte-level async subscriber.
    pub fn inner(&mut self) -> &mut AsyncMsgSubscriber {
        &mut self.inner
    }
}
