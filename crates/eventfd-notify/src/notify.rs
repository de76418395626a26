//! The notifying half.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock, PoisonError};

use rustix::event::{eventfd, EventfdFlags};
use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::error::Error;
use crate::uring::NopRing;
use crate::validate::check_eventfd;

/// How a [`Notifier`] puts a wake-up into the eventfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifyPath {
    /// An io_uring `NOP` with the eventfd registered (`IORING_REGISTER_EVENTFD`):
    /// the kernel signals the eventfd itself, which can never block, whatever
    /// the peer did. The default wherever io_uring is available.
    IoUring,
    /// `fcntl(F_SETFL, O_NONBLOCK)` then `write(1)`. The fallback where
    /// io_uring is not available. It has a residual race (see the crate
    /// docs): a peer that saturates the counter *and* clears `O_NONBLOCK`
    /// in the few hundred nanoseconds between our two calls can block it.
    Write,
}

/// The notifying half: wakes whoever waits on the eventfd.
///
/// [`notify`](Self::notify) never blocks (on the [`NotifyPath::IoUring`]
/// path, which is chosen wherever the kernel allows it; see
/// [`path`](Self::path)). A counter the peer saturated counts as a
/// successful wake-up: the waiter already has one pending.
///
/// `Notifier` implements [`AsFd`] so its eventfd can be sent to the peer
/// (over `SCM_RIGHTS`). A `Notifier` must not be used by both sides of a
/// `fork()`: the io_uring it owns would then be shared. Make one per process.
///
/// # Descriptors
///
/// One, the eventfd, until the first [`notify`](Self::notify); on the
/// [`NotifyPath::IoUring`] path that call creates the private io_uring (a
/// second descriptor, kept from then on). An end that never has to wake
/// its peer (a peer that keeps up never announces sleep) never pays for
/// it. If the io_uring cannot be created at that moment (`EMFILE`,
/// `ENOMEM`, a seccomp filter installed since), that one wake-up goes by
/// the [`NotifyPath::Write`] path instead and the next call tries again:
/// the wake-up is never dropped, and the data it announces was already
/// published, so an error there would leave the caller nothing better to
/// do than retry. ([`from_received_on`](Self::from_received_on) with
/// [`NotifyPath::IoUring`] creates the io_uring at once, and fails if it
/// cannot.)
///
/// # Example
///
/// ```
/// use eventfd_notify::{Notifier, Waiter, Wake};
/// use std::time::Duration;
///
/// let notifier = Notifier::new()?;
/// // In real use this descriptor goes to the other process (SCM_RIGHTS).
/// let waiter = Waiter::from_received(notifier.try_clone_fd()?)?;
/// notifier.notify()?;
/// assert_eq!(waiter.wait(Some(Duration::from_secs(1)))?, Wake::Woken);
/// # Ok::<(), eventfd_notify::Error>(())
/// ```
pub struct Notifier {
    /// The eventfd. Invariant: checked to be a non-semaphore eventfd.
    fd: OwnedFd,
    /// On the [`NotifyPath::IoUring`] path, the io_uring that signals `fd`
    /// once the first `notify` has created it (`None` inside until then);
    /// `None` on the [`NotifyPath::Write`] path. In a mutex because
    /// submitting is not reentrant; it is held only across one
    /// non-blocking `io_uring_enter` (and the creation, once).
    ring: Option<Mutex<Option<NopRing>>>,
}

impl Notifier {
    /// Creates a fresh eventfd (close-on-exec, non-blocking, counter 0) and
    /// a notifier over it, on the best path the kernel offers.
    ///
    /// # Example
    ///
    /// ```
    /// let notifier = eventfd_notify::Notifier::new()?;
    /// notifier.notify()?;
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    ///
    /// # References
    ///  - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
    pub fn new() -> Result<Self, Error> {
        Self::from_owned_eventfd(new_eventfd()?, None)
    }

    /// A notifier for our own [`Waiter`](crate::Waiter)'s eventfd (a
    /// duplicate of it), for example the one a peer will sleep on after we
    /// send it over. No check through `/proc`: the waiter's eventfd was
    /// made or checked when the waiter was.
    ///
    /// # Example
    ///
    /// ```
    /// use eventfd_notify::{Notifier, Waiter, Wake};
    /// let waiter = Waiter::new()?;
    /// let notifier = Notifier::for_waiter(&waiter)?;
    /// notifier.notify()?;
    /// assert_eq!(waiter.wait(Some(std::time::Duration::from_secs(1)))?, Wake::Woken);
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    pub fn for_waiter(waiter: &crate::Waiter) -> Result<Self, Error> {
        Self::from_owned_eventfd(waiter.try_clone_fd()?, None)
    }

    /// Adopts a descriptor received from the peer, after checking that it
    /// is an eventfd (not in semaphore mode). Anything else is an
    /// [`Error::NotAnEventfd`] saying what it was.
    ///
    /// # Example
    ///
    /// ```
    /// use eventfd_notify::{Error, NotEventfd, Notifier};
    /// use std::os::fd::OwnedFd;
    ///
    /// let (read_end, _write_end) = std::io::pipe().unwrap();
    /// let err = Notifier::from_received(OwnedFd::from(read_end)).err().unwrap();
    /// assert!(matches!(err, Error::NotAnEventfd(NotEventfd::Pipe)));
    /// ```
    pub fn from_received(fd: OwnedFd) -> Result<Self, Error> {
        check_eventfd(fd.as_fd())?;
        Self::from_owned_eventfd(fd, None)
    }

    /// Like [`from_received`](Self::from_received), but on the path the
    /// caller chooses. [`NotifyPath::IoUring`] fails if io_uring is not
    /// available; [`NotifyPath::Write`] is there to compare and to run where
    /// io_uring is forbidden, and keeps its residual race.
    ///
    /// # Example
    ///
    /// ```
    /// use eventfd_notify::{Notifier, NotifyPath};
    ///
    /// let n = Notifier::new()?;
    /// let plain = Notifier::from_received_on(n.try_clone_fd()?, NotifyPath::Write)?;
    /// assert_eq!(plain.path(), NotifyPath::Write);
    /// plain.notify()?;
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    pub fn from_received_on(fd: OwnedFd, path: NotifyPath) -> Result<Self, Error> {
        check_eventfd(fd.as_fd())?;
        Self::from_owned_eventfd(fd, Some(path))
    }

    fn from_owned_eventfd(fd: OwnedFd, path: Option<NotifyPath>) -> Result<Self, Error> {
        let ring = match path {
            Some(NotifyPath::Write) => None,
            Some(NotifyPath::IoUring) => Some(Some(
                NopRing::new(fd.as_fd()).map_err(|(op, errno)| Error::syscall(op)(errno))?,
            )),
            // Prefer io_uring, created by the first notify; fall back
            // quietly where this process cannot have one.
            None => io_uring_available().then_some(None),
        };
        Ok(Self {
            fd,
            ring: ring.map(Mutex::new),
        })
    }

    /// Which path [`notify`](Self::notify) takes. On
    /// [`NotifyPath::IoUring`], the io_uring is created by the first
    /// notify, and a wake-up at a moment it cannot be created goes by
    /// write (see "Descriptors" in the type's docs).
    ///
    /// # Example
    ///
    /// ```
    /// let n = eventfd_notify::Notifier::new()?;
    /// println!("notify path: {:?}", n.path());
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    pub fn path(&self) -> NotifyPath {
        if self.ring.is_some() {
            NotifyPath::IoUring
        } else {
            NotifyPath::Write
        }
    }

    /// Wakes the waiter. Never blocks on the [`NotifyPath::IoUring`] path,
    /// whatever the peer did to the eventfd: drained it, saturated it, or
    /// cleared `O_NONBLOCK` on the open file description we share.
    ///
    /// A saturated counter (the peer wrote `0xfffffffffffffffe`) is success:
    /// the waiter already has a wake-up pending.
    ///
    /// # Example
    ///
    /// ```
    /// let n = eventfd_notify::Notifier::new()?;
    /// for _ in 0..3 {
    ///     n.notify()?; // wake-ups coalesce in the counter
    /// }
    /// # Ok::<(), eventfd_notify::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Syscall`] if the kernel refuses the submission (for example
    /// `ENOMEM`); never because of the peer.
    ///
    /// # References
    ///  - [io_uring_register(2), IORING_REGISTER_EVENTFD](https://man7.org/linux/man-pages/man2/io_uring_register.2.html)
    ///  - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
    pub fn notify(&self) -> Result<(), Error> {
        match &self.ring {
            Some(ring) => {
                // A poisoned lock only means another thread panicked while
                // holding it; the ring's state is two counters that stay
                // consistent, so carry on.
                let mut ring = ring.lock().unwrap_or_else(PoisonError::into_inner);
                let ring = match &mut *ring {
                    Some(ring) => ring,
                    slot => match NopRing::new(self.fd.as_fd()) {
                        Ok(new) => slot.insert(new),
                        // Out of descriptors or memory now: this wake-up
                        // goes by write, the next call tries again (see
                        // "Descriptors" above).
                        Err(_) => return self.notify_by_write(),
                    },
                };
                ring.signal().map_err(Error::syscall("io_uring_enter"))
            }
            None => self.notify_by_write(),
        }
    }

    /// The fallback path. Re-asserts `O_NONBLOCK` on every call (the peer
    /// may have cleared it), then writes 1. `EAGAIN` means the counter is
    /// saturated, which already means "wake up": success.
    fn notify_by_write(&self) -> Result<(), Error> {
        rustix::fs::fcntl_setfl(&self.fd, OFlags::NONBLOCK).map_err(Error::syscall("fcntl"))?;
        loop {
            match rustix::io::write(&self.fd, &1u64.to_ne_bytes()) {
                Ok(_) | Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::syscall("write(eventfd)")(e)),
            }
        }
    }

    /// Duplicates the eventfd (`F_DUPFD_CLOEXEC`), for example to send it to
    /// the peer or to build a [`Waiter`](crate::Waiter) in this process.
    ///
    /// # Example
    ///
    /// ```
    /// let n = eventfd_notify::Notifier::new()?;
    /// let for_the_peer = n.try_clone_fd()?;
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

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("fd", &self.fd)
            .field("path", &self.path())
            .finish()
    }
}

impl AsFd for Notifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Notifier {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Whether this process can have an io_uring: one probe (an eventfd and a
/// registered one-entry ring, closed at once), remembered.
fn io_uring_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| new_eventfd().is_ok_and(|fd| NopRing::new(fd.as_fd()).is_ok()))
}

/// A fresh eventfd: counter 0, close-on-exec, non-blocking.
pub(crate) fn new_eventfd() -> Result<OwnedFd, Error> {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(Error::syscall("eventfd"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Waiter, Wake};
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `f` on a thread and fails the test if it has not returned
    /// within `limit` (instead of hanging the suite).
    fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit)
            .expect("the call blocked: it did not return within the limit")
    }

    fn saturate_and_make_blocking(fd: BorrowedFd<'_>) {
        rustix::io::write(fd, &0xffff_ffff_ffff_fffe_u64.to_ne_bytes()).unwrap();
        rustix::fs::fcntl_setfl(fd, OFlags::empty()).unwrap();
    }

    /// Whether the kernel lets unprivileged code (and root) use io_uring.
    fn io_uring_allowed() -> bool {
        std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .map(|s| s.trim() == "0")
            .unwrap_or(true)
    }

    #[test]
    fn new_notifier_uses_io_uring_where_allowed_and_falls_back_otherwise() {
        let n = Notifier::new().unwrap();
        let expected = if io_uring_allowed() {
            NotifyPath::IoUring
        } else {
            NotifyPath::Write
        };
        assert_eq!(n.path(), expected);
    }

    #[test]
    fn io_uring_notify_on_saturated_blocking_eventfd_returns_and_still_wakes() {
        if !io_uring_allowed() {
            eprintln!("io_uring disabled by sysctl: nothing to test here");
            return;
        }
        let waiter = Waiter::new().unwrap();
        let n = Notifier::from_received_on(waiter.try_clone_fd().unwrap(), NotifyPath::IoUring)
            .unwrap();
        saturate_and_make_blocking(n.as_fd());
        let n = within(Duration::from_secs(1), move || {
            n.notify().unwrap();
            n.notify().unwrap();
            n
        });
        assert_eq!(
            waiter.wait(Some(Duration::from_secs(1))).unwrap(),
            Wake::Woken
        );
        assert!(!waiter.try_wait().unwrap(), "the read consumed everything");
        // And after the drain, a notify is a plain wake-up again.
        n.notify().unwrap();
        assert_eq!(
            waiter.wait(Some(Duration::from_secs(1))).unwrap(),
            Wake::Woken
        );
    }

    #[test]
    fn write_path_treats_saturated_counter_as_success_even_after_o_nonblock_was_cleared() {
        let waiter = Waiter::new().unwrap();
        let n =
            Notifier::from_received_on(waiter.try_clone_fd().unwrap(), NotifyPath::Write).unwrap();
        saturate_and_make_blocking(n.as_fd());
        within(Duration::from_secs(1), move || n.notify().unwrap());
        assert!(waiter.try_wait().unwrap());
    }

    /// Whether the io_uring exists yet.
    fn has_ring(n: &Notifier) -> bool {
        n.ring.as_ref().is_some_and(|r| r.lock().unwrap().is_some())
    }

    #[test]
    fn the_io_uring_is_created_by_the_first_notify_and_kept() {
        if !io_uring_allowed() {
            eprintln!("io_uring disabled by sysctl: nothing to test here");
            return;
        }
        let waiter = Waiter::new().unwrap();
        let n = Notifier::for_waiter(&waiter).unwrap();
        assert_eq!(n.path(), NotifyPath::IoUring);
        assert!(!has_ring(&n), "an idle notifier holds no io_uring");
        n.notify().unwrap();
        assert!(has_ring(&n));
        assert!(waiter.try_wait().unwrap());
        n.notify().unwrap();
        assert!(has_ring(&n));
        assert!(waiter.try_wait().unwrap());
        // Asked for explicitly, it is there at once.
        let eager = Notifier::from_received_on(waiter.try_clone_fd().unwrap(), NotifyPath::IoUring)
            .unwrap();
        assert!(has_ring(&eager));
    }

    #[test]
    fn notifications_coalesce_into_one_wake() {
        let waiter = Waiter::new().unwrap();
        let n = Notifier::from_received(waiter.try_clone_fd().unwrap()).unwrap();
        for _ in 0..10 {
            n.notify().unwrap();
        }
        assert_eq!(
            waiter.wait(Some(Duration::from_secs(1))).unwrap(),
            Wake::Woken
        );
        assert!(!waiter.try_wait().unwrap(), "one read consumed all ten");
    }
}
