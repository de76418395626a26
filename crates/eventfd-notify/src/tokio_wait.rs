//! An async wait on tokio's reactor (feature `tokio`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::Error;
use crate::wait::Waiter;

/// A [`Waiter`] registered with tokio's reactor (feature `tokio`).
///
/// [`wait`](Self::wait) sleeps in the reactor until the eventfd is readable,
/// then consumes the pending notifications with a non-blocking read
/// (`RWF_NOWAIT`, immune to the peer clearing `O_NONBLOCK`). If the peer
/// drained the counter in between, the readiness is cleared and it waits
/// again. For a timeout, wrap it in `tokio::time::timeout`; for peer death,
/// `tokio::select!` it against the handshake socket.
///
/// A peer that refills the eventfd as fast as it can makes every `wait`
/// ready at once. A loop of waits inside one `tokio::time::timeout` still
/// ends at its deadline: waiting for readiness spends tokio's cooperative
/// budget, so the loop yields and the timer is polled. But `timeout` polls
/// the wrapped future *before* its timer, so a caller that wraps each
/// single `wait` in a fresh `timeout` with the time left, and waits again
/// after each wake-up, must compare the clock with its deadline itself:
/// with no time left, a ready `wait` still completes.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use eventfd_notify::{AsyncWaiter, Notifier, Waiter};
///
/// let waiter = Waiter::new()?;
/// let notifier = Notifier::from_received(waiter.try_clone_fd()?)?;
/// let waiter = AsyncWaiter::new(waiter)?;
/// notifier.notify()?;
/// waiter.wait().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncWaiter {
    inner: AsyncFd<Waiter>,
}

impl AsyncWaiter {
    /// Registers `waiter` with the current tokio runtime's reactor.
    ///
    /// # Errors
    ///
    /// [`Error::Syscall`] if registration with the reactor fails, with
    /// the errno from `epoll_ctl`; or `ENXIO` if there is no current
    /// tokio runtime (instead of tokio's panic).
    pub fn new(waiter: Waiter) -> Result<Self, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Syscall {
                op: "AsyncWaiter::new outside a tokio runtime",
                source: rustix::io::Errno::NXIO.into(),
            });
        }
        // SAFETY: `Waiter` owns its eventfd (an `OwnedFd`), never replaces
        // or closes it while alive, and `as_raw_fd` always returns that same
        // descriptor; the `AsyncFd` owns the `Waiter` for its whole life.
        unsafe { AsyncFd::register_with_interest(waiter, Interest::READABLE) }
            .map(|inner| Self { inner })
            .map_err(|e| io_to_error("epoll_ctl(AsyncFd::register)", e.into_parts().1))
    }

    /// Waits until notified and consumes the pending notifications.
    ///
    /// Cancel-safe: dropping the future consumes nothing.
    pub async fn wait(&self) -> Result<(), Error> {
        loop {
            let mut guard = self
                .inner
                .readable()
                .await
                .map_err(|e| io_to_error("AsyncFd::readable", e))?;
            if guard.get_inner().try_wait()? {
                return Ok(());
            }
            // Readable no more (the peer drained it, or the edge was ours
            // already): forget this readiness and sleep until the next edge.
            guard.clear_ready();
        }
    }

    /// Consumes pending notifications without waiting; see
    /// [`Waiter::try_wait`].
    pub fn try_wait(&self) -> Result<bool, Error> {
        self.inner.get_ref().try_wait()
    }

    /// The synchronous waiter inside.
    pub fn get_ref(&self) -> &Waiter {
        self.inner.get_ref()
    }

    /// Deregisters from the reactor and gives back the synchronous waiter.
    pub fn into_inner(self) -> Waiter {
        self.inner.into_inner()
    }
}

impl AsFd for AsyncWaiter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

impl AsRawFd for AsyncWaiter {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.get_ref().as_raw_fd()
    }
}

fn io_to_error(op: &'static str, source: io::Error) -> Error {
    Error::Syscall { op, source }
}
