//! The waiting half.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::{Errno, ReadWriteFlags};

use crate::error::Error;
use crate::notify::new_eventfd;
use crate::validate::check_eventfd;

/// What a wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// At least one notification was pending; all pending ones were consumed.
    Woken,
    /// The timeout passed with no notification.
    TimedOut,
    /// The liveness descriptor hung up (`POLLHUP`, `POLLRDHUP` or
    /// `POLLERR`): the peer is gone. Only
    /// [`Waiter::wait_with_liveness`] returns this, and only when no
    /// notification is pending (pending ones are delivered first).
    PeerGone,
}

/// The waiting half: sleeps until notified, with a timeout that holds
/// whatever the peer does to the eventfd.
///
/// Reads use `preadv2(.., RWF_NOWAIT)`, which the kernel honours per call
/// even when the peer cleared `O_NONBLOCK` on the shared open file
/// description; sleeping is only ever done in `poll` with a deadline. So a
/// peer that clears `O_NONBLOCK`, or drains the counter between our `poll`
/// and our read, costs us a loop turn, never the timeout.
///
/// `Waiter` implements [`AsFd`] and [`AsRawFd`], to be registered with
/// epoll, mio (`SourceFd`) or tokio (`AsyncFd`, or use the `tokio` feature's
/// `AsyncWaiter`); after such a readiness event, call
/// [`try_wait`](Self::try_wait).
///
/// # Example
///
/// ```
/// use eventfd_notify::{Notifier, Waiter, Wake};
/// use std::time::Duration;
///
/// let waiter = Waiter::new()?;
/// let notifier = Notifier::from_received(waiter.try_clone_fd()?)?;
/// assert_eq!(waiter.wait(Some(Duration::from_millis(10)))?, Wake::TimedOut);
/// notifier.notify()?;
/// assert_eq!(waiter.wait(None)?, Wake::Woken);
/// # Ok::<(), eventfd_notify::Error>(())
/// ```
#[derive(Debug)]
pub struct Waiter {
    /// The eventfd. Invariant: checked to be a non-semaphore eventfd.
    fd: OwnedFd,
}

impl Waiter {
    /// Creates a fresh eventfd (close-on-exec, non-blocking, counter 0) to
    /// wait on. Send a duplicate ([`try_clone_fd`](Self::try_clone_fd)) to
    /// the peer that will notify.
    ///
    /// # Example
    ///
    /// ```
    /// let waiter = eventfd_notify::Waiter::new()?;
    /// assert!(!waiter.try_wait()?);
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    pub fn new() -> Result<Self, Error> {
        Ok(Self { fd: new_eventfd()? })
    }

    /// Adopts a descriptor received from the peer, after checking that it
    /// is an eventfd (not in semaphore mode). Anything else is an
    /// [`Error::NotAnEventfd`] saying what it was.
    ///
    /// # Example
    ///
    /// ```
    /// use eventfd_notify::{Error, NotEventfd, Waiter};
    ///
    /// let (sock, _other) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let err = Waiter::from_received(sock.into()).err().unwrap();
    /// assert!(matches!(err, Error::NotAnEventfd(NotEventfd::Socket)));
    /// ```
    pub fn from_received(fd: OwnedFd) -> Result<Self, Error> {
        check_eventfd(fd.as_fd())?;
        Ok(Self { fd })
    }

    /// Consumes pending notifications without ever blocking. Returns `true`
    /// if there were any.
    ///
    /// # Example
    ///
    /// ```
    /// use eventfd_notify::{Notifier, Waiter};
    ///
    /// let waiter = Waiter::new()?;
    /// let notifier = Notifier::from_received(waiter.try_clone_fd()?)?;
    /// notifier.notify()?;
    /// notifier.notify()?;
    /// assert!(waiter.try_wait()?); // both consumed at once
    /// assert!(!waiter.try_wait()?);
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    ///
    /// # References
    ///  - [preadv2(2), RWF_NOWAIT](https://man7.org/linux/man-pages/man2/preadv2.2.html)
    pub fn try_wait(&self) -> Result<bool, Error> {
        let mut buf = [0u8; 8];
        loop {
            // Offset -1 (u64::MAX): use the file position, as read(2) does;
            // an eventfd has none and refuses a real offset. RWF_NOWAIT makes
            // this one read non-blocking whatever O_NONBLOCK says.
            match rustix::io::preadv2(
                &self.fd,
                &mut [IoSliceMut::new(&mut buf)],
                u64::MAX,
                ReadWriteFlags::NOWAIT,
            ) {
                Ok(_) => return Ok(true),
                Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::syscall("preadv2(eventfd, RWF_NOWAIT)")(e)),
            }
        }
    }

    /// Sleeps until notified or until `timeout` has passed (`None`: no
    /// timeout), and consumes pending notifications.
    ///
    /// The timeout holds even if the peer clears `O_NONBLOCK`, or drains the
    /// counter between our readiness check and our read.
    ///
    /// # Example
    ///
    /// ```
    /// use eventfd_notify::{Waiter, Wake};
    /// use std::time::Duration;
    ///
    /// let waiter = Waiter::new()?;
    /// assert_eq!(waiter.wait(Some(Duration::from_millis(5)))?, Wake::TimedOut);
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    ///
    /// # References
    ///  - [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Wake, Error> {
        self.wait_inner(None, timeout)
    }

    /// Like [`wait`](Self::wait), but also watches `liveness` (typically the
    /// handshake Unix socket, or a pidfd): when it hangs up or becomes
    /// readable, the wait returns [`Wake::PeerGone`]. Pending notifications
    /// are delivered before that.
    ///
    /// Readable counts as gone because a liveness channel carries nothing
    /// after set-up: a pidfd is readable once the process exited, and a
    /// peer that queues data or descriptors on a liveness socket is
    /// breaking the protocol (and may be hiding its death: a socket end
    /// in flight inside its own queue keeps the socket from ever hanging
    /// up). The caller drains the socket; this call never reads it.
    ///
    /// # Example
    ///
    /// ```
    /// use eventfd_notify::{Waiter, Wake};
    /// use std::os::unix::net::UnixStream;
    ///
    /// let waiter = Waiter::new()?;
    /// let (ours, theirs) = UnixStream::pair().unwrap();
    /// drop(theirs); // the peer dies
    /// assert_eq!(waiter.wait_with_liveness(&ours, None)?, Wake::PeerGone);
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLiveness`] if `liveness` is not an open descriptor.
    pub fn wait_with_liveness(
        &self,
        liveness: impl AsFd,
        timeout: Option<Duration>,
    ) -> Result<Wake, Error> {
        self.wait_inner(Some(liveness.as_fd()), timeout)
    }

    fn wait_inner(
        &self,
        liveness: Option<BorrowedFd<'_>>,
        timeout: Option<Duration>,
    ) -> Result<Wake, Error> {
        // A timeout too far to represent is no timeout.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let gone = PollFlags::IN | PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR;
        loop {
            let ts = deadline.map(|d| to_timespec(d.saturating_duration_since(Instant::now())));
            let own = self.fd.as_fd();
            let mut fds = [
                PollFd::new(&own, PollFlags::IN),
                // Placeholder when there is no liveness descriptor: poll
                // only looks at the first `n` entries.
                PollFd::new(
                    liveness.as_ref().unwrap_or(&own),
                    PollFlags::IN | PollFlags::RDHUP,
                ),
            ];
            let n = if liveness.is_some() { 2 } else { 1 };
            // Poll first, read second: in the common case (nothing pending
            // yet) this is one poll that sleeps and one read, not a wasted
            // read before the poll. A pending notification makes poll return
            // at once.
            match poll(&mut fds[..n], ts.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::syscall("poll")(e)),
            }
            let ready = fds[0].revents();
            let live = fds[1].revents();
            // Readable, or POLLERR (the counter is at u64::MAX, which a read
            // clears): try to consume. The peer may have drained it since
            // poll returned; then the read says EAGAIN and we go round.
            if !ready.is_empty() && self.try_wait()? {
                return Ok(Wake::Woken);
            }
            if n == 2 {
                if live.contains(PollFlags::NVAL) {
                    return Err(Error::InvalidLiveness);
                }
                if live.intersects(gone) {
                    // Deliver a notification that raced with the hang-up.
                    if ready.is_empty() && self.try_wait()? {
                        return Ok(Wake::Woken);
                    }
                    return Ok(Wake::PeerGone);
                }
            }
            if matches!(deadline, Some(d) if Instant::now() >= d) {
                return Ok(Wake::TimedOut);
            }
        }
    }

    /// Duplicates the eventfd (`F_DUPFD_CLOEXEC`), for example to send it to
    /// the peer that will notify.
    ///
    /// # Example
    ///
    /// ```
    /// let w = eventfd_notify::Waiter::new()?;
    /// let for_the_peer = w.try_clone_fd()?;
    /// # drop(for_the_peer);
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    pub fn try_clone_fd(&self) -> Result<OwnedFd, Error> {
        self.fd.try_clone().map_err(|e| Error::Syscall {
            op: "fcntl(F_DUPFD_CLOEXEC)",
            errno: Errno::from_io_error(&e).unwrap_or(Errno::IO),
        })
    }
}

/// For epoll, mio (`SourceFd`), tokio (`AsyncFd`): readable means "a
/// notification may be pending"; then call [`Waiter::try_wait`].
impl AsFd for Waiter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Waiter {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn to_timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}
