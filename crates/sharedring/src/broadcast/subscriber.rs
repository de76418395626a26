//! The subscribing end.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::thread::futex;
use shmem_seal::{ReadOnlyMemory, SharedMemory};
use spsc_core::broadcast::{
    control, BcastLayout, BcastRecvError, BcastSubscriber, BcastWait, StartAt, WaitHow, WakeOrder,
};
use spsc_core::RawRegion;

use super::error::BroadcastError;
use super::options::SubscribeOptions;
use super::publisher::CONTROL_LEN;
use super::wire;

/// After this many calls that found nothing new, a non-blocking receive
/// checks the publisher's socket once.
const IDLE_CHECK_EVERY: u32 = 1024;
/// A sleeping subscriber re-checks that the publisher lives this often
/// (a futex cannot be waited on together with a socket).
const LIVENESS_TICK: Duration = Duration::from_millis(50);
/// How long a blocking receive re-checks before it sleeps: a subscriber
/// that keeps up with a fast publisher then never announces sleep, so it
/// costs the publisher no wake-up.
const SPIN: Duration = super::BROADCAST_SPIN;

/// The subscribing end of a broadcast of byte messages.
///
/// It maps the publisher's data memfd read-only, after checking that the
/// memfd is sealed with `F_SEAL_FUTURE_WRITE` (so no other subscriber can
/// write it either; one without is refused with
/// [`shmem_seal::Error::NotWriteSealed`](crate::shmem_seal::Error::NotWriteSealed)).
/// It copies each message out and keeps it only if the slot's sequence
/// stamp did not change meanwhile: a torn message is never returned.
///
/// # Waiting
///
/// - Blocking: [`recv`](Self::recv) sleeps with `FUTEX_WAIT` on the wake
///   word in the read-only mapping (one `FUTEX_WAKE` from the publisher
///   wakes every sleeper), waking every 50 ms to check that the publisher
///   still lives.
/// - Event loops: register [`wait_fd`](Self::wait_fd) (an eventfd shared
///   by all subscribers) **edge-triggered** (`EPOLLET`; tokio's `AsyncFd`
///   is) and never read it; call [`arm`](Self::arm) before each wait and
///   only wait if it returns `true`; watch [`liveness_fd`](Self::liveness_fd)
///   for the publisher's death. Other subscribers can make that eventfd
///   fire (spurious wake-ups), never stop it firing.
/// - tokio (feature `tokio`): `into_async` does all of that on tokio's
///   reactor (`AsyncMsgSubscriber`; typed: `Subscriber::into_async`).
#[derive(Debug)]
pub struct MsgSubscriber {
    core: BcastSubscriber,
    /// Keep the mappings alive while `core` points into them.
    _data: ReadOnlyMemory,
    _control: SharedMemory,
    event: eventfd_notify::Waiter,
    sock: UnixStream,
    id: u64,
    reliable: bool,
    idle: u32,
}

impl MsgSubscriber {
    /// Connects to a publisher's listening socket and joins.
    pub fn connect(
        path: impl AsRef<Path>,
        opts: &SubscribeOptions,
    ) -> Result<Self, BroadcastError> {
        Self::join(UnixStream::connect(path)?, opts)
    }

    /// Joins over a connected socket: receives the offer within the
    /// handshake deadline, checks every field against what we accept,
    /// checks and maps the memfds, and attaches.
    pub fn join(stream: UnixStream, opts: &SubscribeOptions) -> Result<Self, BroadcastError> {
        Self::join_with_contract(stream, opts, (0, 0, 0))
    }

    pub(crate) fn join_with_contract(
        stream: UnixStream,
        opts: &SubscribeOptions,
        contract: (u32, u32, u64),
    ) -> Result<Self, BroadcastError> {
        let (offer, [data_fd, control_fd, event_fd]) =
            wire::recv_offer(stream.as_fd(), opts.handshake_timeout)?;
        let refuse = |field, expected: u64, found: u64| BroadcastError::Refused {
            field,
            expected,
            found,
        };
        for (field, ours, theirs) in [
            ("element size", contract.0, offer.elem_size),
            ("element alignment", contract.1, offer.elem_align),
        ] {
            if ours != theirs {
                return Err(refuse(field, ours.into(), theirs.into()));
            }
        }
        if offer.type_tag != contract.2 {
            return Err(refuse("element type tag", contract.2, offer.type_tag));
        }
        if contract.0 != 0 && offer.max_msg != contract.0 {
            return Err(refuse(
                "max_msg (typed: the element size)",
                contract.0.into(),
                offer.max_msg.into(),
            ));
        }
        if offer.flags & !wire::FLAG_RELIABLE != 0 {
            return Err(refuse(
                "flags",
                wire::FLAG_RELIABLE.into(),
                offer.flags.into(),
            ));
        }
        // Our own geometry from the two numbers, never the peer's length.
        let layout = BcastLayout::new(offer.slots as usize, offer.max_msg as usize)
            .map_err(|_| refuse("slots or max_msg", 0, offer.slots.into()))?;
        let size = layout.region_size();
        if size > opts.max_region {
            return Err(refuse(
                "data region length (SubscribeOptions::max_region)",
                opts.max_region as u64,
                size as u64,
            ));
        }
        if offer.region_len != size as u64 {
            return Err(refuse("data region length", size as u64, offer.region_len));
        }
        let data = ReadOnlyMemory::open_write_sealed(data_fd, size)?;
        let ctl = SharedMemory::open(control_fd, CONTROL_LEN)?;
        // Checked to be an eventfd; we only ever poll it.
        let event = eventfd_notify::Waiter::from_received(event_fd)?;
        // SAFETY: the mappings live as long as `_data`/`_control` in
        // `self`. The data mapping is read-only: spsc-core only loads from
        // it (atomic loads of at most 8 bytes, which the Rust memory model
        // allows on read-only memory, and volatile copies).
        let data_region = unsafe {
            RawRegion::new(
                std::ptr::NonNull::new(data.as_ptr().cast_mut()).expect("mmap never returns null"),
                size,
            )
        };
        // SAFETY: as above, read-write.
        let ctl_region = unsafe { RawRegion::new(ctl.as_ptr(), control::SIZE) };
        // From the head at the time of the offer (the publisher wrote it
        // into our control region), so nothing published while we were
        // attaching is missed; reliable publishers wait for us from there.
        let start = StartAt::Offered {
            history: opts.history.min(offer.history.into()),
        };
        let core = BcastSubscriber::attach(data_region, layout, ctl_region, start)?;
        if core.wake_order() == WakeOrder::SleeperBarrier && !crate::barrier::available() {
            return Err(BroadcastError::SleeperBarrierUnavailable);
        }
        Ok(Self {
            core,
            _data: data,
            _control: ctl,
            event,
            sock: stream,
            id: offer.id,
            reliable: offer.flags & wire::FLAG_RELIABLE != 0,
            idle: 0,
        })
    }

    /// The largest message, in bytes.
    pub fn max_msg(&self) -> usize {
        self.core.layout().max_msg()
    }

    /// The id the publisher gave us.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the publisher runs in reliable mode.
    pub fn is_reliable(&self) -> bool {
        self.reliable
    }

    /// The sequence number of the next message we read.
    pub fn cursor(&self) -> u64 {
        self.core.cursor()
    }

    /// Messages published and not yet read, as of our last look.
    pub fn lag(&self) -> u64 {
        self.core.lag()
    }

    fn map(e: BcastRecvError) -> BroadcastError {
        match e {
            BcastRecvError::Empty => BroadcastError::Empty,
            BcastRecvError::Lagged { missed } => BroadcastError::Lagged { missed },
            BcastRecvError::Closed => BroadcastError::Closed,
            BcastRecvError::BufferTooSmall { needed } => BroadcastError::BufferTooSmall { needed },
            BcastRecvError::Corrupted(c) => BroadcastError::Corrupted(c),
            // `BcastRecvError` is non-exhaustive; every variant it has
            // today is mapped above.
            _ => BroadcastError::Empty,
        }
    }

    /// Copies the next message into `buf`; never blocks.
    ///
    /// [`BroadcastError::Empty`] when there is nothing new, `Lagged` when
    /// messages were lost (the next call reads on), `Closed` at the end,
    /// `PeerGone` when the publisher's socket hung up and nothing is left.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, BroadcastError> {
        match self.core.try_recv(buf) {
            Ok(n) => {
                self.idle = 0;
                Ok(n)
            }
            Err(BcastRecvError::Empty) => {
                self.idle += 1;
                if self.idle >= IDLE_CHECK_EVERY {
                    self.idle = 0;
                    if self.publisher_gone() {
                        return self.after_gone(buf);
                    }
                }
                Err(BroadcastError::Empty)
            }
            Err(e) => Err(Self::map(e)),
        }
    }

    /// The newest value (a latest-value cell, the blackboard pattern):
    /// copies the last message published into `buf`, even if it was read
    /// before, and returns its sequence number (to tell a new value from
    /// an old one) and length. Never blocks. [`BroadcastError::Empty`]
    /// before the first message; `PeerGone` only once the publisher's
    /// socket hung up and nothing was ever published.
    pub fn latest(&mut self, buf: &mut [u8]) -> Result<(u64, usize), BroadcastError> {
        match self.core.try_latest(buf) {
            Ok(v) => Ok(v),
            Err(BcastRecvError::Empty) if self.publisher_gone() => Err(BroadcastError::PeerGone),
            Err(e) => Err(Self::map(e)),
        }
    }

    /// Whether the publisher's socket says it is gone (hung up, or sent
    /// anything: it never does while alive).
    pub(super) fn publisher_gone(&self) -> bool {
        wire::gone(self.sock.as_fd())
    }

    /// The socket hung up: whatever is still readable comes first.
    pub(super) fn after_gone(&mut self, buf: &mut [u8]) -> Result<usize, BroadcastError> {
        match self.core.try_recv(buf) {
            Ok(n) => Ok(n),
            Err(BcastRecvError::Empty) => Err(BroadcastError::PeerGone),
            Err(e) => Err(Self::map(e)),
        }
    }

    /// Copies the next message into `buf`, waiting as long as it takes.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, BroadcastError> {
        self.recv_timeout(buf, None)
    }

    /// Like [`recv`](Self::recv), giving up with
    /// [`BroadcastError::TimedOut`] after `timeout`.
    pub fn recv_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<usize, BroadcastError> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut spin_until: Option<Instant> = None;
        let mut spins = 0u32;
        loop {
            match self.core.try_recv(buf) {
                Ok(n) => return Ok(n),
                Err(BcastRecvError::Empty) => {}
                Err(e) => return Err(Self::map(e)),
            }
            // Spin for `SPIN`, reading the clock every 64 rounds.
            spins = spins.wrapping_add(1);
            if spins % 64 != 0 {
                std::hint::spin_loop();
                continue;
            }
            let now = Instant::now();
            if now < *spin_until.get_or_insert(now + SPIN) {
                continue;
            }
            let left = match deadline {
                None => LIVENESS_TICK,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(l) if !l.is_zero() => l.min(LIVENESS_TICK),
                    _ => return Err(BroadcastError::TimedOut),
                },
            };
            if let BcastWait::Sleep { futex_value } =
                self.core.prepare_wait(WaitHow::Futex, crate::barrier::run)
            {
                let ts = rustix::time::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: left.subsec_nanos().into(),
                };
                // SAFETY: the wake word is a 4-aligned word of our
                // read-only mapping, alive as long as `self._data`;
                // FUTEX_WAIT only reads it.
                let word = unsafe { AtomicU32::from_ptr(self.core.wake_word().cast_mut()) };
                let _ = futex::wait(word, futex::Flags::empty(), futex_value, Some(&ts));
                self.core.finish_wait();
                if self.publisher_gone() {
                    return self.after_gone(buf);
                }
            }
        }
    }

    /// For event loops: the eventfd shared by all subscribers. Register it
    /// edge-triggered (`EPOLLET`) and never read it; see the type's docs.
    pub fn wait_fd(&self) -> BorrowedFd<'_> {
        self.event.as_fd()
    }

    /// For event loops: the publisher's socket; readable or hung up means
    /// the publisher is gone (or dropped us).
    pub fn liveness_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// For event loops, before waiting on [`wait_fd`](Self::wait_fd):
    /// announces the sleep to the publisher and re-checks. `false`:
    /// something arrived meanwhile, read instead of waiting. After the
    /// wake-up, read until `Empty` and arm again: the publisher wakes each
    /// announcement once, so an armed subscriber costs it nothing more.
    pub fn arm(&mut self) -> bool {
        match self
            .core
            .prepare_wait(WaitHow::Eventfd, crate::barrier::run)
        {
            BcastWait::Ready => false,
            BcastWait::Sleep { .. } => true,
        }
    }

    /// Withdraws an [`arm`](Self::arm) (reading does it too).
    pub fn disarm(&mut self) {
        self.core.finish_wait();
    }
}
