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
///
/// With a timeout, [`Woken`](Wake::Woken) and [`PeerGone`](Wake::PeerGone)
/// are only ever returned while time remains: the clock is read after
/// every `poll`, and once the deadline has passed the wait returns
/// [`TimedOut`](Wake::TimedOut), consuming nothing. So a caller that waits
/// again after each `Woken` with the time left until its own deadline
/// always ends with `TimedOut` at that deadline, however fast the peer
/// refills the eventfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// At least one notification was pending; all pending ones were
    /// consumed. With a timeout: the deadline had not passed when the
    /// notification was found (the call then returns after one more
    /// non-blocking read).
    Woken,
    /// The deadline passed. Notifications that arrived meanwhile, if any,
    /// were left pending for the next call: a notification is consumed
    /// only by a call that reports it as `Woken`.
    TimedOut,
    /// The liveness descriptor hung up (`POLLHUP`, `POLLRDHUP` or
    /// `POLLERR`): the peer is gone. Only
    /// [`Waiter::wait_with_liveness`] returns this, and only when no
    /// notification is pending (pending ones are delivered first) and,
    /// with a timeout, before the deadline (after it, the next call with
    /// time left reports it).
    PeerGone,
}

/// The waiting half: sleeps until notified, with a timeout that holds
/// whatever the peer does to the eventfd.
///
/// Reads use `preadv2(.., RWF_NOWAIT)`, which the kernel honours per call
/// even when the peer cleared `O_NONBLOCK` on the shared open file
/// description; sleeping is only ever done in `poll` with the time left,
/// and the clock is read after every `poll`. So a peer that clears
/// `O_NONBLOCK`, drains the counter between our `poll` and our read, or
/// refills it faster than we can poll, costs us loop turns, never the
/// deadline (see [`Wake`] for what each answer means with respect to it).
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
    /// The deadline is `timeout` from the call. It holds even if the peer
    /// clears `O_NONBLOCK`, drains the counter between our readiness check
    /// and our read, or refills it as fast as it can: [`Wake::Woken`] is
    /// returned only while time remains, and once the deadline has passed
    /// the call returns [`Wake::TimedOut`] without consuming anything. In
    /// particular a zero timeout always returns `TimedOut`; use
    /// [`try_wait`](Self::try_wait) to consume without sleeping.
    ///
    /// To wait until a deadline of your own across several calls (for
    /// example, re-checking shared memory after each wake-up), pass the time
    /// left each time; the loop ends with `TimedOut` at your deadline, since
    /// a call with no time left never returns `Woken`:
    ///
    /// ```
    /// use eventfd_notify::{Waiter, Wake};
    /// use std::time::{Duration, Instant};
    ///
    /// let waiter = Waiter::new()?;
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// let ready = || false; // e.g. "is there data in the ring?"
    /// loop {
    ///     if ready() {
    ///         break;
    ///     }
    ///     let left = deadline.saturating_duration_since(Instant::now());
    ///     match waiter.wait(Some(left))? {
    ///         Wake::Woken => continue,
    ///         Wake::TimedOut | Wake::PeerGone => break,
    ///     }
    /// }
    /// assert!(Instant::now() >= deadline);
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
            // The clock is read at the top of every turn, so no turn (after
            // a spurious readiness, a stolen notification, an EINTR) starts
            // once the deadline has passed.
            let ts = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(to_timespec(left)),
                    _ => return Ok(Wake::TimedOut),
                },
            };
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
            if n == 2 && live.contains(PollFlags::NVAL) {
                return Err(Error::InvalidLiveness);
            }
            // Whatever poll saw, the deadline comes first: a notification
            // found after it stays pending (the next call reports it), so
            // `Woken` always means "in time", and a peer that keeps the
            // eventfd readable cannot keep a caller's loop going past its
            // deadline.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Wake::TimedOut);
            }
            // Readable, or POLLERR (the counter is at u64::MAX, which a read
            // clears): try to consume. The peer may have drained it since
            // poll returned; then the read says EAGAIN and we go round.
            if !ready.is_empty() && self.try_wait()? {
                return Ok(Wake::Woken);
            }
            if n == 2 && live.intersects(gone) {
                // Deliver a notification that raced with the hang-up.
                if ready.is_empty() && self.try_wait()? {
                    return Ok(Wake::Woken);
                }
                return Ok(Wake::PeerGone);
            }
        }
    }

    /// A second waiter on the same eventfd (a duplicate descriptor), for
    /// example to register with an event loop. No check through `/proc`:
    /// this waiter's eventfd was made or checked when it was.
    ///
    /// # Example
    ///
    /// ```
    /// let w = eventfd_notify::Waiter::new()?;
    /// let twin = w.try_clone()?;
    /// eventfd_notify::Notifier::for_waiter(&w)?.notify()?;
    /// assert!(twin.try_wait()?); // the same counter
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    pub fn try_clone(&self) -> Result<Self, Error> {
        Ok(Self {
            fd: self.try_clone_fd()?,
        })
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
        self.fd.try_clone().map_err(|source| Error::Syscall {
            op: "fcntl(F_DUPFD_CLOEXEC)",
            source,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Notifier;

    #[test]
    fn no_time_left_is_timed_out_and_leaves_the_notification_pending() {
        let waiter = Waiter::new().unwrap();
        let n = Notifier::from_received(waiter.try_clone_fd().unwrap()).unwrap();
        n.notify().unwrap();
        assert_eq!(waiter.wait(Some(Duration::ZERO)).unwrap(), Wake::TimedOut);
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(
            waiter
                .wait_with_liveness(&ours, Some(Duration::ZERO))
                .unwrap(),
            Wake::TimedOut
        );
        // Not consumed: the next call with time left reports it.
        assert_eq!(
            waiter.wait(Some(Duration::from_secs(5))).unwrap(),
            Wake::Woken
        );
        assert!(!waiter.try_wait().unwrap());
    }

    #[test]
    fn a_hang_up_after_the_deadline_is_reported_by_the_next_call() {
        let waiter = Waiter::new().unwrap();
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(theirs);
        assert_eq!(
            waiter
                .wait_with_liveness(&ours, Some(Duration::ZERO))
                .unwrap(),
            Wake::TimedOut
        );
        assert_eq!(
            waiter
                .wait_with_liveness(&ours, Some(Duration::from_secs(5)))
                .unwrap(),
            Wake::PeerGone
        );
    }
}
