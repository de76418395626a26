//! Wake-ups between two processes that do not trust each other, over one
//! eventfd, that the peer cannot use to block us.
//!
//! A [`Notifier`] wakes; a [`Waiter`] sleeps. Either side can create the
//! eventfd ([`Notifier::new`], [`Waiter::new`]) and send a duplicate to the
//! peer, or adopt one it received ([`Notifier::from_received`],
//! [`Waiter::from_received`]) after this crate has checked that it really
//! is an eventfd: a pipe, a socket, a memfd, a regular file or any other
//! descriptor gets its own [`NotEventfd`] variant, and an `EFD_SEMAPHORE`
//! eventfd is refused ([`Error::SemaphoreEventfd`]).
//!
//! What is promised, whatever the peer does to the eventfd (drain it,
//! saturate it at `0xfffffffffffffffe`, clear or set `O_NONBLOCK` on the
//! open file description both sides share):
//!
//! - [`Notifier::notify`] never blocks (see "Why notify never blocks" for
//!   the argument, and its one caveat), and a saturated counter counts as a
//!   successful wake-up, because the waiter already has one pending.
//! - [`Waiter::wait`] returns [`Wake::Woken`] or [`Wake::TimedOut`] by its
//!   deadline, and `Woken` only while time remains, so a peer that refills
//!   the eventfd as fast as it can cannot keep a caller's wait-and-recheck
//!   loop going past the caller's deadline; [`Waiter::try_wait`] never
//!   blocks. Both consume every pending notification they report.
//! - [`Waiter::wait_with_liveness`] also watches a liveness descriptor (the
//!   handshake socket) and returns [`Wake::PeerGone`] when it hangs up or turns readable.
//! - [`Waiter`] is [`AsFd`](std::os::fd::AsFd) / [`AsRawFd`](std::os::fd::AsRawFd)
//!   for epoll, mio and tokio; with the `tokio` feature, `AsyncWaiter` has an
//!   async `wait()`.
//!
//! ```
//! use eventfd_notify::{Notifier, Waiter, Wake};
//! use std::time::Duration;
//!
//! // The side that will sleep creates the eventfd...
//! let waiter = Waiter::new()?;
//! // ...and sends a duplicate to the peer (SCM_RIGHTS), which adopts it.
//! let notifier = Notifier::from_received(waiter.try_clone_fd()?)?;
//!
//! let t = std::thread::spawn(move || notifier.notify());
//! assert_eq!(waiter.wait(Some(Duration::from_secs(5)))?, Wake::Woken);
//! t.join().unwrap()?;
//! # Ok::<(), eventfd_notify::Error>(())
//! ```
//!
//! # Why notify never blocks
//!
//! Both processes hold the *same* open file description of the eventfd (an
//! eventfd cannot be reopened through `/proc/self/fd`: `ENXIO`), so the peer
//! can clear `O_NONBLOCK` on it at any instant, and can saturate the counter
//! at any instant. A `write(2)` of 1 blocks exactly when both hold at the
//! moment the kernel looks: the counter is at `0xfffffffffffffffe` and
//! `O_NONBLOCK` is clear. It then sleeps until somebody reads, and a hostile
//! peer never will. No sequence of calls that ends in such a write is safe:
//!
//! - `poll(POLLOUT)` then `write`: the peer saturates in between.
//! - `fcntl(F_SETFL, O_NONBLOCK)` then `write` on every call: the peer
//!   clears the flag in between. (Much harder to hit, but a peer spinning
//!   on `fcntl` will hit it once, and once is forever.)
//! - `pwritev2(.., RWF_NOWAIT)`: eventfd has no `write_iter`, so the kernel
//!   answers `EOPNOTSUPP` (seen on Linux 6.18).
//!
//! So [`Notifier`] does not write to the eventfd at all. It owns a private
//! one-entry io_uring with the eventfd registered on it
//! (`IORING_REGISTER_EVENTFD`), made by its first `notify()` (so a notifier
//! that never has to wake anyone holds one descriptor, not two), and
//! `notify()` submits one `IORING_OP_NOP`.
//! The NOP completes inline, inside `io_uring_enter`, and posting its
//! completion makes the kernel call `eventfd_signal()`, which adds 1 to the
//! counter under the eventfd's spinlock (stopping at `u64::MAX`) and wakes
//! the waiters. That function has no sleeping branch at all, and does not
//! look at the file's flags, so neither `O_NONBLOCK` nor the counter's value
//! matters. The io_uring is ours alone (never sent to the peer), we ask
//! `io_uring_enter` to wait for nothing (`min_complete == 0`), and we reap
//! the completion queue on every call, so it never fills up. The waiter
//! sees exactly what a `write(1)` would have produced: the counter goes up,
//! `poll` reports readable, the read returns and resets it. (If the peer had
//! saturated the counter at `u64::MAX - 1`, our signal takes it to
//! `u64::MAX`, which `poll` reports as `POLLERR | POLLIN`; the waiter still
//! reads it and wakes. Saturation is "already woken" either way.)
//!
//! The caveat: io_uring may be unavailable (`kernel.io_uring_disabled`, a
//! seccomp filter in a sandbox, a kernel before 5.4). Then [`Notifier`]
//! falls back to [`NotifyPath::Write`]: re-assert `O_NONBLOCK`, then write 1
//! (`EAGAIN` = saturated = success). That defeats a peer that clears the
//! flag once and sits still, but not one that wins the race between our
//! two calls. [`Notifier::path`] says which path is in use; a caller that
//! must not run with the residual race can refuse [`NotifyPath::Write`].
//! Alternatives we weighed: a helper thread that rescues a blocked write by
//! reading the counter costs a thread per notifier and a wake-up of that
//! thread in the race; a timer signal to interrupt the write needs a
//! process-wide signal handler, which a library must not install; a futex
//! on a shared word or a socket with `MSG_DONTWAIT` never block, but are
//! not an eventfd, which event loops need.
//!
//! # Why waits keep their deadline
//!
//! Reads use `preadv2(.., RWF_NOWAIT)`, which the kernel honours per call
//! on an eventfd even when the shared description is blocking; the only
//! sleep is `poll` with the time left until the deadline. A peer that
//! drains the counter between our `poll` and our read makes the read say
//! `EAGAIN`, and we poll again for the time left. The clock is read before
//! and after every `poll`: once the deadline has passed the answer is
//! [`Wake::TimedOut`], even if the eventfd is readable, and the
//! notification stays pending. Without that, a peer writing as fast as it
//! can would make every call with no time left answer `Woken` at once, and
//! a caller that waits again after each `Woken` with the time left (as a
//! ring does, re-checking its memory in between) would never see its
//! deadline.
//!
//! # Performance, and why there is no futex path
//!
//! A cross-process round trip (wake the peer, get woken back, blocking on
//! both sides; `benches/roundtrip.rs`, numbers in `BENCH-NOTES.md`) costs
//! the same as a pipe and within 2–9 % of a raw futex ping-pong on this
//! project's VMs, where a cross-CPU wake-up costs tens of microseconds.
//! `notify()` itself costs about 430 ns (a plain `write` about 410 ns).
//! When both ends share one busy CPU the extra `poll` syscall of a
//! deadline-keeping wait shows (about 2.7 µs against the futex's 1.8 µs per
//! round trip). A futex on a word in the ring's shared mapping would close
//! that gap for the blocking path, but this crate has no shared mapping,
//! a futex cannot be registered with an event loop, and the measured gain
//! in the realistic cross-CPU case is under 10 %; so it is not built here.
//!
//! # Features
//!
//! - `tokio`: `AsyncWaiter`, an async `wait()` on `tokio::io::unix::AsyncFd`.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs, missing_debug_implementations)]
// docs.rs (nightly, `--cfg docsrs`): label items that need a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod notify;
#[cfg(feature = "tokio")]
mod tokio_wait;
mod uring;
mod validate;
mod wait;

pub use error::{Error, NotEventfd};
pub use notify::{Notifier, NotifyPath};
#[cfg(feature = "tokio")]
pub use tokio_wait::AsyncWaiter;
pub use wait::{Waiter, Wake};

/// Creates a fresh eventfd and both halves over it, in this process.
///
/// Useful between threads, and as the starting point of the side that
/// creates the eventfd: keep one half, send the other half's descriptor to
/// the peer.
///
/// # Example
///
/// ```
/// use eventfd_notify::Wake;
/// use std::time::Duration;
///
/// let (notifier, waiter) = eventfd_notify::pair()?;
/// notifier.notify()?;
/// assert_eq!(waiter.wait(Some(Duration::from_secs(1)))?, Wake::Woken);
/// # Ok::<(), eventfd_notify::Error>(())
/// ```
pub fn pair() -> Result<(Notifier, Waiter), Error> {
    let waiter = Waiter::new()?;
    let notifier = Notifier::from_received(waiter.try_clone_fd()?)?;
    Ok((notifier, waiter))
}
