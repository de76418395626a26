//! The publishing end.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use eventfd_notify::Notifier;
use rustix::thread::futex;
use shmem_seal::{MemfdBuilder, SharedMemory};
use spsc_core::broadcast::{
    control, BcastLayout, BcastPublishError, BcastPublisher, SubscriberWatch, WakeOrder,
};
use spsc_core::RawRegion;

use super::error::BroadcastError;
use super::options::{BroadcastOptions, Delivery};
use super::wire::{self, Offer};
use crate::listener::{peer_credentials, PeerCredentials};
use crate::Listener;

/// Size of a control memfd (one page; the protocol uses the first 128
/// bytes).
pub(crate) const CONTROL_LEN: usize = 4096;

/// Check for departed subscribers (one `poll` over all their sockets)
/// once per this many publications.
const REAP_EVERY: u32 = 1024;

/// One subscriber, as the publisher keeps it.
#[derive(Debug)]
struct Sub {
    id: u64,
    credentials: Option<PeerCredentials>,
    sock: UnixStream,
    joined_at: u64,
}

/// One subscriber, as [`MsgPublisher::subscribers`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberInfo {
    /// The id the publisher gave it (in the offer it received).
    pub id: u64,
    /// Who it is, as the kernel recorded it at `connect` (`None` if the
    /// socket could not tell).
    pub credentials: Option<PeerCredentials>,
    /// Its published cursor: the next message it will read. `None` if the
    /// value it wrote is impossible (beyond the head).
    pub cursor: Option<u64>,
    /// How many published messages it has not read (as far as its cursor
    /// says: a subscriber can lie about this, and only hurts itself).
    pub lag: u64,
    /// The head when it joined.
    pub joined_at: u64,
}

/// The publishing end of a broadcast of byte messages: one writer, any
/// number of [`MsgSubscriber`](super::MsgSubscriber)s in other processes,
/// none of which it trusts.
///
/// Each message is written once into a memfd that every subscriber maps
/// read-only; the kernel enforces that (`F_SEAL_FUTURE_WRITE`). Each
/// subscriber gets its own small control memfd for its cursor and wait
/// word, which the publisher only reads, validating every value.
///
/// ```
/// use sharedring::broadcast::{BroadcastOptions, MsgPublisher, MsgSubscriber, SubscribeOptions};
/// let mut publisher = MsgPublisher::new(&BroadcastOptions::new().max_msg(64))?;
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// publisher.add_subscriber(a)?;
/// let mut sub = MsgSubscriber::join(b, &SubscribeOptions::new())?;
/// publisher.publish(b"tick")?;
/// let mut buf = [0u8; 64];
/// let n = sub.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"tick");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MsgPublisher {
    core: BcastPublisher,
    /// Our writable mapping of the data memfd (sealed against every other
    /// writer).
    data: SharedMemory,
    layout: BcastLayout,
    /// The eventfd shared by event-loop subscribers, signalled through
    /// io_uring where available (never blocks, whatever a subscriber did to
    /// the shared eventfd: saturated it, cleared `O_NONBLOCK`).
    event: Notifier,
    /// Each subscriber's control words, at the index of its `Sub`: kept
    /// apart from the rest of `Sub` (16 bytes each) so that the wake-up
    /// scan after every publication walks one compact array. Declared
    /// before `mappings`, so dropped first.
    watches: Vec<SubscriberWatch>,
    /// The control regions `watches` point into, index for index.
    mappings: Vec<SharedMemory>,
    subs: Vec<Sub>,
    opts: BroadcastOptions,
    contract: (u32, u32, u64),
    next_id: u64,
    since_reap: u32,
    wake_syscalls: u64,
}

impl MsgPublisher {
    /// Creates the ring: a memfd of the layout's size, mapped writable
    /// here, then sealed `F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK |
    /// F_SEAL_GROW | F_SEAL_SEAL` before any descriptor leaves.
    pub fn new(opts: &BroadcastOptions) -> Result<Self, BroadcastError> {
        Self::with_contract(opts, (0, 0, 0))
    }

    pub(crate) fn with_contract(
        opts: &BroadcastOptions,
        contract: (u32, u32, u64),
    ) -> Result<Self, BroadcastError> {
        let layout = opts.layout()?;
        let data = MemfdBuilder::new("sharedring-broadcast")
            .read_only_for_peers()
            .create(layout.region_size())?;
        // SAFETY: the mapping lives as long as `data`, which `self` keeps
        // and drops after `core` (field order); nothing here makes a
        // reference into it; subscribers only read it (sealed).
        let region = unsafe { RawRegion::new(data.as_ptr(), layout.region_size()) };
        let fence = opts
            .publisher_fence
            .unwrap_or(matches!(opts.delivery, Delivery::Reliable { .. }));
        let order = if fence {
            WakeOrder::PublisherFence
        } else {
            super::register_sleeper_barrier()
        };
        let core = BcastPublisher::create_ordered(region, layout, order)?;
        let event = Notifier::new()?;
        Ok(Self {
            core,
            data,
            layout,
            event,
            watches: Vec::new(),
            mappings: Vec::new(),
            subs: Vec::new(),
            opts: opts.clone(),
            contract,
            next_id: 1,
            since_reap: 0,
            wake_syscalls: 0,
        })
    }

    /// Who pays for ordering wake-ups: this publisher (a fence after every
    /// publication) or its sleeping subscribers (`membarrier`); see
    /// [`BroadcastOptions::publisher_fence`].
    pub fn wake_order(&self) -> WakeOrder {
        self.core.wake_order()
    }

    /// The largest message, in bytes.
    pub fn max_msg(&self) -> usize {
        self.layout.max_msg()
    }

    /// How many messages have been published.
    pub fn head(&self) -> u64 {
        self.core.head()
    }

    /// How many subscribers are attached (including any that left since
    /// the last check; see [`subscribers`](Self::subscribers)).
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether no subscriber is attached.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The wake-up system calls made so far (`FUTEX_WAKE` and eventfd
    /// writes): for measuring that they do not grow with the number of
    /// subscribers.
    pub fn wake_syscalls(&self) -> u64 {
        self.wake_syscalls
    }

    /// Offers the ring to the subscriber at the other end of `stream` and
    /// returns its id. Never waits for the subscriber: the offer is one
    /// non-blocking `sendmsg`; a subscriber that refuses it (or never
    /// reads it) is removed when its socket closes, or in reliable mode
    /// when it does not keep up. Check its credentials first (see
    /// [`accept_from`](Self::accept_from)).
    pub fn add_subscriber(&mut self, stream: UnixStream) -> Result<u64, BroadcastError> {
        let credentials = peer_credentials(&stream).ok();
        let control = SharedMemory::create("sharedring-broadcast-control", CONTROL_LEN)?;
        // SAFETY: the mapping lives as long as `control`, kept in
        // `mappings` at the watch's index and removed only with it (in
        // `remove_at`); access is atomic only.
        let region = unsafe { RawRegion::new(control.as_ptr(), control::SIZE) };
        let head = self.core.head();
        let watch = SubscriberWatch::create(region, head)?;
        let id = self.next_id;
        let offer = Offer {
            slots: self.layout.slots() as u32,
            max_msg: self.layout.max_msg() as u32,
            region_len: self.layout.region_size() as u64,
            elem_size: self.contract.0,
            elem_align: self.contract.1,
            type_tag: self.contract.2,
            flags: match self.opts.delivery {
                Delivery::Lossy => 0,
                Delivery::Reliable { .. } => wire::FLAG_RELIABLE,
            },
            history: self.opts.history.min(self.layout.slots() as u32 - 1),
            id,
        };
        wire::send_offer(
            stream.as_fd(),
            &offer,
            [self.data.as_fd(), control.as_fd(), self.event.as_fd()],
        )?;
        self.next_id += 1;
        self.watches.push(watch);
        self.mappings.push(control);
        self.subs.push(Sub {
            id,
            credentials,
            sock: stream,
            joined_at: head,
        });
        Ok(id)
    }

    /// Accepts one connection on `listener` and, if `admit` approves the
    /// peer's credentials, offers it the ring. Returns the new
    /// subscriber's id, or `None` if refused (the connection is closed).
    pub fn accept_from(
        &mut self,
        listener: &Listener,
        admit: impl FnOnce(&PeerCredentials) -> bool,
    ) -> Result<Option<u64>, BroadcastError> {
        // An accept failure comes back as `BroadcastError::Io` with the
        // errno kept: `EMFILE` and friends mean back off (see
        // `AcceptError::RetryLater`), never exit.
        let (stream, creds) = listener.accept().map_err(std::io::Error::from)?;
        if !admit(&creds) {
            return Ok(None);
        }
        self.add_subscriber(stream).map(Some)
    }

    /// Publishes one message (at most [`max_msg`](Self::max_msg) bytes)
    /// and returns its sequence number. Lossy: never waits. Reliable:
    /// waits for room as [`Delivery::Reliable`] says.
    pub fn publish(&mut self, msg: &[u8]) -> Result<u64, BroadcastError> {
        if let Delivery::Reliable { max_lag, timeout } = self.opts.delivery {
            self.wait_for_room(max_lag, timeout);
        }
        let seq = self.core.publish(msg).map_err(|e| match e {
            BcastPublishError::TooLarge { len, max } => {
                BroadcastError::MessageTooLarge { len, max }
            }
            _ => BroadcastError::Closed,
        })?;
        self.wake();
        self.since_reap += 1;
        if self.since_reap >= REAP_EVERY {
            self.reap();
        }
        Ok(seq)
    }

    /// After publishing: at most one `FUTEX_WAKE` (all sleepers) and one
    /// eventfd write, whatever the number of subscribers.
    fn wake(&mut self) {
        let need = self.core.wake_scan(self.watches.iter_mut());
        if need.futex {
            // SAFETY: the wake word is a 4-aligned word of our mapping,
            // which lives as long as `self.data`.
            let word = unsafe { AtomicU32::from_ptr(self.core.wake_word().cast_mut()) };
            // A shared futex (no FUTEX_PRIVATE_FLAG): keyed by the memfd
            // and offset, so it reaches every process's mapping.
            let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
            self.wake_syscalls += 1;
        }
        if need.eventfd {
            self.signal_eventfd();
        }
    }

    /// Signals the shared eventfd once. On the io_uring path the kernel
    /// signals it, which never blocks and wakes its waiters even when a
    /// subscriber saturated the counter (so edge-triggered waiters get
    /// their edge); see [`eventfd_notify::NotifyPath`] for the fallback.
    fn signal_eventfd(&mut self) {
        self.wake_syscalls += 1;
        let _ = self.event.notify();
    }

    /// Reliable mode: waits until no subscriber is `max_lag` or more
    /// behind, for at most `timeout`; then drops those still behind.
    /// Subscribers whose cursor is impossible are dropped at once.
    fn wait_for_room(&mut self, max_lag: u64, timeout: Duration) {
        // When we started waiting (set once we must wait).
        let mut started: Option<Instant> = None;
        let mut spins = 0u32;
        loop {
            let head = self.core.head();
            let mut blocking = false;
            self.drop_where(|_, w| match w.cursor(head) {
                Ok(c) => {
                    blocking |= head - c >= max_lag;
                    false
                }
                // A liar is dropped; it can only have hurt itself.
                Err(_) => true,
            });
            if !blocking {
                return;
            }
            let now = Instant::now();
            let waited = now.duration_since(*started.get_or_insert(now));
            if waited >= timeout {
                self.drop_where(|_, w| w.cursor(head).map_or(true, |c| head - c >= max_lag));
                return;
            }
            spins += 1;
            if spins % 1024 == 0 {
                // The departed never catch up: don't wait for them.
                self.reap();
            }
            // Spin for the broadcast spin budget, then yield for ten
            // times that, then sleep in short steps: subscribers do not
            // wake the publisher (they cannot write anything it sleeps on),
            // so it polls their cursors.
            if waited < super::BROADCAST_SPIN {
                std::hint::spin_loop();
            } else if waited < 10 * super::BROADCAST_SPIN {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Removes subscribers whose socket hung up (they left, died, or
    /// refused the offer), in one `poll`. Returns how many.
    pub fn reap(&mut self) -> usize {
        self.since_reap = 0;
        if self.subs.is_empty() {
            return 0;
        }
        let gone = {
            let socks: Vec<BorrowedFd<'_>> = self.subs.iter().map(|s| s.sock.as_fd()).collect();
            wire::gone_many(&socks)
        };
        for &i in gone.iter().rev() {
            self.remove_at(i);
        }
        gone.len()
    }

    /// Forgets subscriber `i` (its record, its watch, then the mapping the
    /// watch pointed into), keeping the three vectors index for index.
    fn remove_at(&mut self, i: usize) -> Sub {
        self.watches.swap_remove(i);
        self.mappings.swap_remove(i);
        self.subs.swap_remove(i)
    }

    /// Drops every subscriber for which `gone` is true (its socket is shut
    /// down, so it sees [`BroadcastError::PeerGone`]). Returns how many.
    fn drop_where(&mut self, mut gone: impl FnMut(&Sub, &SubscriberWatch) -> bool) -> usize {
        let mut dropped = 0;
        // Backwards: `swap_remove` moves the last element, already seen,
        // into the hole.
        for i in (0..self.subs.len()).rev() {
            if gone(&self.subs[i], &self.watches[i]) {
                let s = self.remove_at(i);
                let _ = s.sock.shutdown(std::net::Shutdown::Both);
                dropped += 1;
            }
        }
        dropped
    }

    /// Drops subscriber `id` (its socket is shut down; it sees
    /// [`BroadcastError::PeerGone`]). Returns whether it was attached.
    pub fn remove(&mut self, id: u64) -> bool {
        self.drop_where(|s, _| s.id == id) > 0
    }

    /// The attached subscribers, with their credentials and lag (after
    /// removing those that left).
    pub fn subscribers(&mut self) -> Vec<SubscriberInfo> {
        self.reap();
        let head = self.core.head();
        self.subs
            .iter()
            .zip(&self.watches)
            .map(|(s, w)| {
                let cursor = w.cursor(head).ok();
                SubscriberInfo {
                    id: s.id,
                    credentials: s.credentials,
                    cursor,
                    lag: cursor.map_or(0, |c| head - c),
                    joined_at: s.joined_at,
                }
            })
            .collect()
    }

    /// Closes the stream: subscribers read what is left, then get
    /// [`BroadcastError::Closed`]. Dropping the publisher does the same.
    pub fn close(self) {}
}

impl Drop for MsgPublisher {
    fn drop(&mut self) {
        self.core.close();
        // Wake every sleeper, whatever its wait word says: they must see
        // the close.
        // SAFETY: as in `wake`.
        let word = unsafe { AtomicU32::from_ptr(self.core.wake_word().cast_mut()) };
        let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
        self.signal_eventfd();
    }
}
