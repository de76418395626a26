//! Many rings, one wait: [`WaitSet`], an epoll set that holds ring ends,
//! listeners, pending handshakes and plain descriptors, each under a token
//! of the caller's choice, and reports which of them are ready.
//!
//! How a ring end is watched. An end is woken through its eventfd only
//! after it *announced* that it sleeps (its wait word in the ring header,
//! see `spsc_core`'s wake protocol); a peer that sees no announcement
//! never makes a syscall. So before every `epoll_wait` the set *arms* each
//! end that it must watch and that is not armed yet: it empties the
//! eventfd, announces the wait, and re-checks the ring (the announcement
//! and the re-check are separated by the same SeqCst fence as in
//! `endpoint::park`); if the ring turned ready in between, the end is
//! reported at once instead of being slept on. An end stays armed (costing
//! nothing) until its eventfd fires. Only ends that were reported, touched
//! ([`WaitSet::get_mut`]) or newly inserted are looked at again: the cost of
//! one [`WaitSet::wait`] is proportional to the number of ready tokens,
//! not to the number of idle ones.
//!
//! Peer death is the liveness descriptor (the handshake socket) hanging up
//! or turning readable, as for every wait of the crate (`endpoint::link`):
//! it is registered too, and reported once as [`Event::is_gone`] or, for
//! a receiving end whose sender closed its stream, [`Event::is_closed`].

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::Timespec;
use spsc_core::WaitCheck;

use crate::elements::receiver::Data;
use crate::elements::sender::Room;
use crate::endpoint::park::Side;
use crate::error::Error;
use crate::messages::receiver::MsgData;
use crate::messages::sender::MsgRoom;
use crate::setup::Interest;
use crate::{Element, Handshake, Listener, MsgReceiver, MsgSender, Progress, Receiver, Sender};

/// How many epoll events one `epoll_wait` collects at most. More ready
/// descriptors are picked up by the next wait (epoll hands them out
/// round-robin, so none starves).
const EVENTS_PER_WAIT: usize = 256;

/// The low bits of an epoll event's data: which descriptor of a slot.
const MAIN: u64 = 0;
const LIVENESS: u64 = 1;

/// An epoll set for servers with many clients: ring ends of every kind,
/// [`Listener`]s, pending [`Handshake`]s and plain descriptors (a
/// `signalfd`, a pipe), each registered under a token of the caller's
/// choice. [`wait`](Self::wait) blocks until some are ready and reports
/// only those, as [`Event`]s. No thread per ring, and no cost per idle ring
/// on a wait.
///
/// The set owns what it holds (it must arm the ends' wake-ups itself, see
/// below); reach an entry with [`get_mut`](Self::get_mut), take it out
/// with [`remove`](Self::remove).
///
/// What is reported, per token:
/// - a ring end: [`is_readable`](Event::is_readable) (a receiver: data may be
///   waiting) or [`is_writable`](Event::is_writable) (a sender: room for
///   [`want_room`](Self::want_room) elements or message bytes may be free),
///   reported again on every wait for as long as it is true (level-triggered:
///   receive until the ring is empty, or [`pause`](Self::pause) the token);
///   [`is_gone`](Event::is_gone) once when the peer hung up or died, or
///   [`is_closed`](Event::is_closed) if it closed its stream first (a
///   receiver then still drains what is left, and its receive calls end
///   with [`Error::Closed`] or [`Error::PeerGone`]);
/// - a [`Handshake`]: nothing until it ends, which the set drives itself
///   (advancing it when its socket is ready or its deadline passed):
///   then [`is_done`](Event::is_done), and the token now holds the finished
///   end (`get_mut::<Receiver<u64>>` for a `Handshake<Receiver<u64>>`), or
///   [`error`](Event::error) and the token is gone. A stalled handshake
///   costs a registration and a timer, never a thread;
/// - a [`Listener`] (made non-blocking) or an `OwnedFd`: readable, as long
///   as it is (accept until [`AcceptError::WouldBlock`](crate::AcceptError::WouldBlock)).
///
/// # Example
///
/// A server that accepts any number of clients on one thread, sets up a
/// ring with each without blocking, and receives from all of them:
///
/// ```
/// use std::time::{Duration, Instant};
/// use sharedring::{AcceptError, Error, Handshake, Listener, Options, Receiver, Sender, WaitSet};
///
/// # let dir = std::env::temp_dir().join(format!("sr-waitset-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("server.sock");
/// const LISTENER: u64 = 0;
/// let mut set = WaitSet::new()?;
/// set.insert(LISTENER, Listener::bind(&path)?)?;
///
/// // Three clients (threads here; processes in real life), 100 values each.
/// let clients: Vec<_> = (0..3u64)
///     .map(|c| {
///         let path = path.clone();
///         std::thread::spawn(move || -> Result<(), Error> {
///             let stream = std::os::unix::net::UnixStream::connect(&path)?;
///             let mut tx = Sender::<u64>::accept(stream)?;
///             tx.send(&vec![c; 100], None)?;
///             tx.close() // end of stream, not a crash
///         })
///     })
///     .collect();
///
/// let (mut next_token, mut received, mut finished) = (1, 0, 0);
/// let mut resume_accept: Option<Instant> = None;
/// let mut events = Vec::new();
/// let mut buf = [0u64; 64];
/// while finished < 3 {
///     // Sleep until something is ready, or until accepting resumes.
///     let timeout = resume_accept.map(|t| t.saturating_duration_since(Instant::now()));
///     set.wait(&mut events, timeout.or(Some(Duration::from_secs(10))))?;
///     if resume_accept.is_some_and(|t| Instant::now() >= t) {
///         resume_accept = None;
///         set.resume(LISTENER);
///     }
///     for event in events.drain(..) {
///         let token = event.token();
///         if token == LISTENER {
///             loop {
///                 let listener = set.get_mut::<Listener>(LISTENER).unwrap();
///                 let (stream, _creds) = match listener.accept() {
///                     Ok(client) => client,
///                     Err(AcceptError::WouldBlock) => break,
///                     Err(AcceptError::Aborted(_)) => continue,
///                     // Out of descriptors (EMFILE) or memory: back off.
///                     // The listener stays readable, so pause its token
///                     // for a few milliseconds; the clients already
///                     // served go on.
///                     Err(e @ AcceptError::RetryLater(_)) => {
///                         set.pause(LISTENER);
///                         resume_accept = Some(Instant::now() + e.retry_after().unwrap());
///                         break;
///                     }
///                     Err(e) => return Err(e.into()),
///                 };
///                 let opts = Options::new().capacity_elements(256);
///                 set.insert(next_token, Handshake::<Receiver<u64>>::create(stream, &opts)?)?;
///                 next_token += 1;
///             }
///         } else if let Some(e) = event.error() {
///             panic!("handshake {token} failed: {e}");
///         } else if let Some(rx) = set.get_mut::<Receiver<u64>>(token) {
///             loop {
///                 match rx.try_recv(&mut buf) {
///                     Ok(0) => break, // empty: the set re-arms it
///                     Ok(n) => received += n,
///                     Err(Error::Closed) => {
///                         finished += 1;
///                         set.discard(token);
///                         break;
///                     }
///                     Err(e) => return Err(e.into()),
///                 }
///             }
///         }
///     }
/// }
/// assert_eq!(received, 300);
/// for c in clients {
///     c.join().unwrap()?;
/// }
/// # drop(set); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WaitSet {
    epoll: OwnedFd,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    tokens: HashMap<u64, usize>,
    /// Handshake deadlines: (when, slot, generation); stale ones skipped.
    deadlines: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Slots whose ring end must be (re-)armed before the next sleep.
    rearm: Vec<usize>,
    buf: Vec<epoll::Event>,
    /// Handshakes that failed during this wait (their slots are gone).
    failures: Vec<Event>,
    next_gen: u64,
}

struct Slot {
    token: u64,
    gen: u64,
    entry: Entry,
    /// Whether the slot is in `rearm`.
    queued: bool,
    /// What this wait reports for it (bits below), and whether it is
    /// already in the output list.
    report: u8,
    listed: bool,
}

const READY: u8 = 1;
const GONE: u8 = 2;
const CLOSED: u8 = 4;
const DONE: u8 = 8;
const FAILED: u8 = 16;
/// The ready token is a receiver, listener or plain descriptor.
const INBOUND: u8 = 32;

/// A ring end in the set and how it is watched.
struct Ring {
    end: Box<dyn RingSource>,
    /// Announced and registered: the eventfd will fire.
    armed: bool,
    /// The caller does not want readiness reports now.
    paused: bool,
    /// Room a sender waits for (elements, or message bytes).
    want: usize,
    /// The liveness descriptor reported; no longer registered.
    gone: bool,
}

enum Entry {
    Ring(Ring),
    Pending(Box<dyn PendingSource>, Interest),
    /// A descriptor, and whether it is paused.
    Plain(Box<dyn PlainSource>, bool),
    /// Transient, while a handshake advances.
    Vacant,
}

/// What the set can hold: the four ring ends, [`Handshake`]s of them,
/// [`Listener`] and `OwnedFd`. Sealed.
pub trait Waitable: private::Sealed {}

pub(crate) mod private {
    /// Turns a source into the set's entry.
    pub trait Sealed {
        #[doc(hidden)]
        fn into_entry(self) -> super::EntryBox;
    }
}

/// The opaque form of an entry for [`private::Sealed`].
#[doc(hidden)]
pub struct EntryBox(Entry);

impl fmt::Debug for EntryBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EntryBox")
    }
}

/// A ring end as the set drives it.
trait RingSource: Send {
    fn waiter(&self) -> BorrowedFd<'_>;
    fn liveness(&self) -> Option<BorrowedFd<'_>>;
    fn inbound(&self) -> bool;
    /// Announce the wait, fence, re-check (`park`'s protocol).
    fn arm(&mut self, want: usize) -> Result<WaitCheck, Error>;
    /// Withdraw the announcement.
    fn disarm(&mut self);
    /// Empty the eventfd (a stale count would make epoll fire at once).
    fn drain(&self);
    fn peer_gone(&mut self) -> bool;
    fn peer_closed(&mut self) -> bool;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// A pending handshake as the set drives it.
trait PendingSource: Send {
    fn fd(&self) -> BorrowedFd<'_>;
    fn interest(&self) -> Interest;
    fn deadline(&self) -> Option<Instant>;
    fn advance(self: Box<Self>) -> Result<Step, Error>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

enum Step {
    Pending(Box<dyn PendingSource>),
    Done(Box<dyn RingSource>),
}

/// A descriptor reported when readable.
trait PlainSource: Send {
    fn fd(&self) -> BorrowedFd<'_>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

macro_rules! ring_source {
    ($([$($gen:tt)*] $ty:ty, $side:expr, inbound: $inbound:expr;)*) => {$(
        impl<$($gen)*> RingSource for $ty {
            fn waiter(&self) -> BorrowedFd<'_> {
                self.end.as_fd()
            }
            fn liveness(&self) -> Option<BorrowedFd<'_>> {
                self.end.liveness()
            }
            fn inbound(&self) -> bool {
                $inbound
            }
            fn arm(&mut self, want: usize) -> Result<WaitCheck, Error> {
                let _ = want;
                let mut side = $side(want);
                // After this wait, the next empty attempt looks at the
                // closed word at once.
                self.end.busy();
                Ok(side.prepare_wait(&mut self.end.half)?)
            }
            fn disarm(&mut self) {
                let mut side = $side(0);
                side.finish_wait(&mut self.end.half)
            }
            fn drain(&self) {
                // Nothing to do if it fails: epoll then reports it again,
                // and the next arm drains again.
                let _ = self.end.waiter().try_wait();
            }
            fn peer_gone(&mut self) -> bool {
                self.end.is_peer_gone()
            }
            fn peer_closed(&mut self) -> bool {
                $inbound && self.end.peer_marked_closed()
            }
            fn as_any_mut(&mut self) -> &mut dyn Any {
                self
            }
            fn into_any(self: Box<Self>) -> Box<dyn Any> {
                self
            }
        }

        impl<$($gen)*> private::Sealed for $ty {
            fn into_entry(mut self) -> EntryBox {
                self.end.for_event_loop();
                EntryBox(Entry::Ring(Ring {
                    end: Box::new(self),
                    armed: false,
                    paused: false,
                    want: 1,
                    gone: false,
                }))
            }
        }
        impl<$($gen)*> Waitable for $ty {}

        impl<$($gen)*> PendingSource for Handshake<$ty> {
            fn fd(&self) -> BorrowedFd<'_> {
                self.as_fd()
            }
            fn interest(&self) -> Interest {
                Handshake::interest(self)
            }
            fn deadline(&self) -> Option<Instant> {
                Handshake::deadline(self)
            }
            fn advance(self: Box<Self>) -> Result<Step, Error> {
                Ok(match (*self).advance()? {
                    Progress::Pending(p) => Step::Pending(Box::new(p)),
                    Progress::Done(mut end) => {
                        end.end.for_event_loop();
                        Step::Done(Box::new(end))
                    }
                })
            }
            fn as_any_mut(&mut self) -> &mut dyn Any {
                self
            }
            fn into_any(self: Box<Self>) -> Box<dyn Any> {
                self
            }
        }

        impl<$($gen)*> private::Sealed for Handshake<$ty> {
            fn into_entry(self) -> EntryBox {
                let interest = Handshake::interest(&self);
                EntryBox(Entry::Pending(Box::new(self), interest))
            }
        }
        impl<$($gen)*> Waitable for Handshake<$ty> {}
    )*};
}

ring_source! {
    [T: Element + Send + 'static] Receiver<T>, |_| Data, inbound: true;
    [T: Element + Send + 'static] Sender<T>, |want| Room { want }, inbound: false;
    [] MsgReceiver, |_| MsgData, inbound: true;
    [] MsgSender, |len| MsgRoom { len }, inbound: false;
}

macro_rules! plain_source {
    ($($ty:ty, $prepare:expr;)*) => {$(
        impl PlainSource for $ty {
            fn fd(&self) -> BorrowedFd<'_> {
                self.as_fd()
            }
            fn as_any_mut(&mut self) -> &mut dyn Any {
                self
            }
            fn into_any(self: Box<Self>) -> Box<dyn Any> {
                self
            }
        }
        impl private::Sealed for $ty {
            fn into_entry(self) -> EntryBox {
                let prepare: fn(&$ty) = $prepare;
                prepare(&self);
                EntryBox(Entry::Plain(Box::new(self), false))
            }
        }
        impl Waitable for $ty {}
    )*};
}

plain_source! {
    // A listener in an event loop must never block in `accept`.
    Listener, |l| {
        let _ = l.set_nonblocking(true);
    };
    OwnedFd, |_| {};
}

/// What [`WaitSet::wait`] reports for one token.
#[derive(Debug)]
pub struct Event {
    token: u64,
    flags: u8,
    error: Option<Error>,
}

impl Event {
    /// The token the source was inserted with.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// A receiving end may have data, or a listener a connection, or a
    /// plain descriptor is readable.
    pub fn is_readable(&self) -> bool {
        self.flags & READY != 0 && self.flags & INBOUND != 0
    }

    /// A sending end may have room for what [`WaitSet::want_room`] set.
    pub fn is_writable(&self) -> bool {
        self.flags & READY != 0 && self.flags & INBOUND == 0
    }

    /// The peer of a ring end hung up without closing its stream (it
    /// died, was killed, or dropped its end). Reported once. A receiver
    /// may still hold data: receive until the call fails.
    pub fn is_gone(&self) -> bool {
        self.flags & GONE != 0
    }

    /// The sender of a receiving end closed its stream and hung up:
    /// receive what is left, then the call reports [`Error::Closed`].
    /// Reported once, instead of [`is_gone`](Self::is_gone).
    pub fn is_closed(&self) -> bool {
        self.flags & CLOSED != 0
    }

    /// A handshake finished: the token now holds the ring end.
    pub fn is_done(&self) -> bool {
        self.flags & DONE != 0
    }

    /// Why a handshake failed (a peer's mistake, its deadline, ...); the
    /// token was removed from the set, and every descriptor closed.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// A handshake failed: see [`error`](Self::error).
    pub fn is_failed(&self) -> bool {
        self.flags & FAILED != 0
    }

    /// Takes the handshake's error out of the event.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

fn data(slot: usize, which: u64) -> EventData {
    EventData::new_u64(((slot as u64) << 1) | which)
}

fn interest_flags(i: Interest) -> EventFlags {
    match i {
        Interest::Readable => EventFlags::IN | EventFlags::RDHUP,
        Interest::Writable => EventFlags::OUT,
    }
}

const LIVENESS_FLAGS: EventFlags = EventFlags::IN.union(EventFlags::RDHUP);

impl WaitSet {
    /// An empty set (one epoll descriptor).
    ///
    /// ```
    /// let set = sharedring::WaitSet::new()?;
    /// assert!(set.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            slots: Vec::new(),
            free: Vec::new(),
            tokens: HashMap::new(),
            deadlines: BinaryHeap::new(),
            rearm: Vec::new(),
            buf: Vec::with_capacity(EVENTS_PER_WAIT),
            failures: Vec::new(),
            next_gen: 0,
        })
    }

    /// How many tokens the set holds.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `token` is in the set.
    pub fn contains(&self, token: u64) -> bool {
        self.tokens.contains_key(&token)
    }

    /// Adds `source` under `token`. A ring end is watched from the next
    /// [`wait`](Self::wait) on (and reported at once if it is ready); a
    /// handshake is driven by the set; a [`Listener`] is made
    /// non-blocking.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AlreadyExists`] if `token` is taken (`source` is
    /// dropped); `epoll_ctl` failing (out of memory, or the user's epoll
    /// watch limit).
    pub fn insert(&mut self, token: u64, source: impl Waitable) -> io::Result<()> {
        if self.tokens.contains_key(&token) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("token {token} is already in the WaitSet: remove it first"),
            ));
        }
        let entry = source.into_entry().0;
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.next_gen += 1;
        let gen = self.next_gen;
        if let Err(e) = self.register(slot, gen, &entry) {
            self.free.push(slot);
            return Err(e);
        }
        self.slots[slot] = Some(Slot {
            token,
            gen,
            entry,
            queued: false,
            report: 0,
            listed: false,
        });
        self.tokens.insert(token, slot);
        self.queue_rearm(slot);
        Ok(())
    }

    /// Registers the descriptors of a new entry.
    fn register(&mut self, slot: usize, gen: u64, entry: &Entry) -> io::Result<()> {
        match entry {
            Entry::Ring(ring) => self.register_ring(slot, ring, false),
            Entry::Pending(p, interest) => {
                epoll::add(
                    &self.epoll,
                    p.fd(),
                    data(slot, MAIN),
                    interest_flags(*interest),
                )?;
                if let Some(d) = p.deadline() {
                    self.deadlines.push(Reverse((d, slot, gen)));
                }
                Ok(())
            }
            Entry::Plain(p, _) => {
                epoll::add(&self.epoll, p.fd(), data(slot, MAIN), EventFlags::IN)?;
                Ok(())
            }
            Entry::Vacant => Ok(()),
        }
    }

    /// Registers a ring end's eventfd and liveness descriptor; the latter
    /// may already be registered (the handshake's socket).
    fn register_ring(&self, slot: usize, ring: &Ring, socket_known: bool) -> io::Result<()> {
        epoll::add(
            &self.epoll,
            ring.end.waiter(),
            data(slot, MAIN),
            EventFlags::IN,
        )?;
        if let Some(live) = ring.end.liveness() {
            let added = if socket_known {
                match epoll::modify(&self.epoll, live, data(slot, LIVENESS), LIVENESS_FLAGS) {
                    Err(rustix::io::Errno::NOENT) => {
                        epoll::add(&self.epoll, live, data(slot, LIVENESS), LIVENESS_FLAGS)
                    }
                    other => other,
                }
            } else {
                epoll::add(&self.epoll, live, data(slot, LIVENESS), LIVENESS_FLAGS)
            };
            if let Err(e) = added {
                let _ = epoll::delete(&self.epoll, ring.end.waiter());
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn queue_rearm(&mut self, slot: usize) {
        if let Some(s) = self.slots[slot].as_mut() {
            if !s.queued && matches!(s.entry, Entry::Ring(_)) {
                s.queued = true;
                self.rearm.push(slot);
            }
        }
    }

    /// The source under `token`, if it is an `S` (a finished handshake of
    /// `Handshake<E>` is an `E`). The set looks at a ring end reached this
    /// way again on its next wait, so whatever the caller does with it
    /// (even a blocking call, which announces and withdraws waits of its
    /// own) loses no wake-up.
    ///
    /// ```
    /// # let (tx, _peer) = sharedring::channel::<u8>(64)?;
    /// let mut set = sharedring::WaitSet::new()?;
    /// set.insert(7, tx)?;
    /// assert!(set.get_mut::<sharedring::Sender<u8>>(7).is_some());
    /// assert!(set.get_mut::<sharedring::Receiver<u8>>(7).is_none()); // not that type
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_mut<S: 'static>(&mut self, token: u64) -> Option<&mut S> {
        let slot = *self.tokens.get(&token)?;
        self.queue_rearm(slot);
        match &mut self.slots[slot].as_mut()?.entry {
            Entry::Ring(r) => r.end.as_any_mut().downcast_mut(),
            Entry::Pending(p, _) => p.as_any_mut().downcast_mut(),
            Entry::Plain(p, _) => p.as_any_mut().downcast_mut(),
            Entry::Vacant => None,
        }
    }

    /// Takes the source under `token` out of the set, if it is an `S`
    /// (otherwise it stays, and `None`). Its descriptors are deregistered.
    ///
    /// ```
    /// # let (tx, _peer) = sharedring::channel::<u8>(64)?;
    /// let mut set = sharedring::WaitSet::new()?;
    /// set.insert(7, tx)?;
    /// let tx: sharedring::Sender<u8> = set.remove(7).unwrap();
    /// assert!(set.is_empty());
    /// # drop(tx);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove<S: 'static>(&mut self, token: u64) -> Option<S> {
        let slot = *self.tokens.get(&token)?;
        if !self.holds::<S>(slot) {
            return None;
        }
        self.take(slot)
            .and_then(|any| any.downcast::<S>().ok())
            .map(|b| *b)
    }

    /// Removes and drops whatever is under `token` (closing its
    /// descriptors); whether there was something.
    pub fn discard(&mut self, token: u64) -> bool {
        match self.tokens.get(&token) {
            Some(&slot) => self.take(slot).is_some(),
            None => false,
        }
    }

    fn holds<S: 'static>(&mut self, slot: usize) -> bool {
        match self.slots[slot].as_mut().map(|s| &mut s.entry) {
            Some(Entry::Ring(r)) => r.end.as_any_mut().is::<S>(),
            Some(Entry::Pending(p, _)) => p.as_any_mut().is::<S>(),
            Some(Entry::Plain(p, _)) => p.as_any_mut().is::<S>(),
            _ => false,
        }
    }

    /// Empties `slot`, deregistering its descriptors.
    fn take(&mut self, slot: usize) -> Option<Box<dyn Any>> {
        let s = self.slots[slot].take()?;
        self.tokens.remove(&s.token);
        self.free.push(slot);
        // `rearm` may still name the slot: skipped by generation there.
        match s.entry {
            Entry::Ring(mut r) => {
                let _ = epoll::delete(&self.epoll, r.end.waiter());
                if let Some(live) = r.end.liveness() {
                    let _ = epoll::delete(&self.epoll, live);
                }
                if r.armed {
                    r.end.disarm();
                }
                Some(r.end.into_any())
            }
            Entry::Pending(p, _) => {
                let _ = epoll::delete(&self.epoll, p.fd());
                Some(p.into_any())
            }
            Entry::Plain(p, _) => {
                let _ = epoll::delete(&self.epoll, p.fd());
                Some(p.into_any())
            }
            Entry::Vacant => None,
        }
    }

    /// Stops readiness reports for the ring end under `token` (a sender
    /// with nothing to send, a receiver the server will not read from
    /// now; peer death is still reported), or for a listener or plain
    /// descriptor (a server out of descriptors stops accepting for a
    /// moment: the listener stays readable, and would be reported on
    /// every wait).
    ///
    /// ```
    /// # let (tx, _peer) = sharedring::channel::<u8>(64)?;
    /// let mut set = sharedring::WaitSet::new()?;
    /// set.insert(1, tx)?;
    /// set.pause(1); // room is free, but we have nothing to send
    /// let mut events = Vec::new();
    /// set.wait(&mut events, Some(std::time::Duration::ZERO))?;
    /// assert!(events.is_empty());
    /// set.resume(1);
    /// set.wait(&mut events, Some(std::time::Duration::ZERO))?;
    /// assert!(events[0].is_writable());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(&mut self, token: u64) {
        self.set_paused(token, true);
    }

    /// Resumes readiness reports for the token (see
    /// [`pause`](Self::pause)).
    pub fn resume(&mut self, token: u64) {
        self.set_paused(token, false);
    }

    fn set_paused(&mut self, token: u64, paused: bool) {
        let Some(&slot) = self.tokens.get(&token) else {
            return;
        };
        match self.slots[slot].as_mut().map(|s| &mut s.entry) {
            Some(Entry::Ring(r)) => r.paused = paused,
            Some(Entry::Plain(p, was)) if *was != paused => {
                *was = paused;
                let flags = if paused {
                    EventFlags::empty()
                } else {
                    EventFlags::IN
                };
                // Cannot fail for a registered descriptor but on ENOMEM;
                // then it stays as it was.
                let _ = epoll::modify(&self.epoll, p.fd(), data(slot, MAIN), flags);
            }
            _ => {}
        }
        self.queue_rearm(slot);
    }

    /// For a sending end: report it writable only once there is room for
    /// `n` elements (a [`Sender`]) or a message of `n` bytes (a
    /// [`MsgSender`]). The default is 1.
    pub fn want_room(&mut self, token: u64, n: usize) {
        let Some(&slot) = self.tokens.get(&token) else {
            return;
        };
        if let Some(Slot {
            entry: Entry::Ring(r),
            ..
        }) = self.slots[slot].as_mut()
        {
            r.want = n.max(1);
        }
        self.queue_rearm(slot);
    }

    /// Waits until something in the set is ready, or `timeout` passes
    /// (`None`: no timeout), and fills `events` (cleared first) with one
    /// [`Event`] per ready token. A signal does not end the wait (an
    /// interrupted `epoll_wait` is resumed with the time left): to react to
    /// signals, put a signalfd in the set, as `examples/server.rs` does.
    /// `events` may still come back empty when the timeout passed, or when
    /// a wake-up turned out to be for nothing (the peer woke us without
    /// making room or data).
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut tx, rx) = sharedring::channel::<u32>(64)?;
    /// let mut set = sharedring::WaitSet::new()?;
    /// set.insert(1, rx)?;
    /// let mut events = Vec::new();
    /// set.wait(&mut events, Some(Duration::ZERO))?;
    /// assert!(events.is_empty()); // nothing sent yet
    /// tx.send(&[5], None)?; // wakes the armed receiver
    /// set.wait(&mut events, Some(Duration::from_secs(5)))?;
    /// assert!(events[0].is_readable() && events[0].token() == 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Only `epoll_wait` failing (not a peer's doing); a ring end or
    /// handshake that fails is reported in its event.
    pub fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let mut out: Vec<usize> = Vec::new();
        self.arm_queued(&mut out);
        let mut until = timeout.and_then(|t| Instant::now().checked_add(t));
        if let Some(d) = self.next_deadline() {
            until = Some(until.map_or(d, |u| u.min(d)));
        }
        // EINTR is retried with the time left: the kernel also interrupts
        // sleeps for io_uring task work (dropping a ring this thread used
        // sends it), which is no signal of the user's. Signals belong in
        // the set as a signalfd (see the server example).
        loop {
            let now = Instant::now();
            let sleep = if out.is_empty() {
                until.map(|u| u.saturating_duration_since(now))
            } else {
                Some(Duration::ZERO)
            };
            let ts = sleep.map(|d| {
                // Whole milliseconds, rounded up: a kernel without
                // `epoll_pwait2` would round a sub-millisecond remainder
                // down to zero, and the loop would spin until a deadline.
                let d = match d.subsec_nanos() % 1_000_000 {
                    0 => d,
                    rest => d.saturating_add(Duration::from_nanos(u64::from(1_000_000 - rest))),
                };
                Timespec {
                    tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: i64::from(d.subsec_nanos()),
                }
            });
            self.buf.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut self.buf),
                ts.as_ref(),
            ) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) if sleep != Some(Duration::ZERO) => {}
                Err(rustix::io::Errno::INTR) => break,
                Err(e) => return Err(e.into()),
            }
        }
        let ready = std::mem::take(&mut self.buf);
        for ev in &ready {
            let d = ev.data.u64();
            let slot = (d >> 1) as usize;
            self.on_event(slot, d & 1, ev.flags, &mut out);
        }
        self.buf = ready;
        self.expire_deadlines(&mut out);
        for slot in out {
            if let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) {
                s.listed = false;
                let flags = std::mem::take(&mut s.report);
                if flags != 0 {
                    events.push(Event {
                        token: s.token,
                        flags,
                        error: None,
                    });
                }
            }
            // An empty slot: a handshake that failed; its event is in
            // `failures`.
        }
        events.append(&mut self.failed_events());
        Ok(())
    }

    /// Marks `slot` to be reported with `flags`.
    fn report(&mut self, slot: usize, flags: u8, out: &mut Vec<usize>) {
        if let Some(s) = self.slots[slot].as_mut() {
            s.report |= flags;
            if !s.listed {
                s.listed = true;
                out.push(slot);
            }
        }
    }

    /// Arms every queued ring end: drain its eventfd, announce, re-check.
    fn arm_queued(&mut self, out: &mut Vec<usize>) {
        let queued = std::mem::take(&mut self.rearm);
        let mut again = Vec::new();
        for &slot in &queued {
            let Some(s) = self.slots[slot].as_mut() else {
                continue;
            };
            if !s.queued {
                continue; // a slot reused after removal: queued anew
            }
            s.queued = false;
            let Entry::Ring(r) = &mut s.entry else {
                continue;
            };
            if r.paused || (r.gone && !r.end.inbound()) {
                if r.armed {
                    r.end.disarm();
                    r.armed = false;
                }
                continue;
            }
            // Drain before announcing: a wake-up for the new announcement
            // comes after it, and must stay in the eventfd.
            r.end.drain();
            let inbound = if r.end.inbound() { INBOUND } else { 0 };
            match r.end.arm(r.want) {
                Ok(WaitCheck::Sleep) => r.armed = true,
                Ok(WaitCheck::Ready) => {
                    r.armed = false;
                    // Level-triggered: look again next time.
                    again.push(slot);
                    self.report(slot, READY | inbound, out);
                }
                Err(_) => {
                    // The peer broke the protocol: every call of the end
                    // now says so. Report it as gone, once.
                    r.armed = false;
                    if !r.gone {
                        r.gone = true;
                        if let Some(live) = r.end.liveness() {
                            let _ = epoll::delete(&self.epoll, live);
                        }
                        self.report(slot, GONE | inbound, out);
                    }
                }
            }
        }
        for slot in again {
            self.queue_rearm(slot);
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((d, slot, gen))) = self.deadlines.peek().copied() {
            let live = matches!(
                self.slots.get(slot).and_then(Option::as_ref),
                Some(Slot { gen: g, entry: Entry::Pending(..), .. }) if *g == gen
            );
            if live {
                return Some(d);
            }
            self.deadlines.pop();
        }
        None
    }

    fn expire_deadlines(&mut self, out: &mut Vec<usize>) {
        let now = Instant::now();
        while let Some(d) = self.next_deadline() {
            if d > now {
                break;
            }
            let Some(Reverse((_, slot, _))) = self.deadlines.pop() else {
                break;
            };
            self.advance(slot, out);
        }
    }

    fn on_event(&mut self, slot: usize, which: u64, flags: EventFlags, out: &mut Vec<usize>) {
        let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match &mut s.entry {
            Entry::Ring(r) if which == MAIN => {
                r.end.drain();
                if r.armed {
                    r.end.disarm();
                    r.armed = false;
                }
                let inbound = if r.end.inbound() { INBOUND } else { 0 };
                let report = !(r.paused || (r.gone && inbound == 0));
                if report {
                    self.report(slot, READY | inbound, out);
                }
                self.queue_rearm(slot);
            }
            Entry::Ring(r) => {
                let _ = flags;
                if r.gone || !r.end.peer_gone() {
                    return; // spurious: the socket is silent
                }
                r.gone = true;
                if let Some(live) = r.end.liveness() {
                    let _ = epoll::delete(&self.epoll, live);
                }
                let inbound = if r.end.inbound() { INBOUND } else { 0 };
                let how = if r.end.peer_closed() { CLOSED } else { GONE };
                self.report(slot, how | inbound, out);
                // A receiver may hold data the peer committed: look.
                self.queue_rearm(slot);
            }
            Entry::Pending(..) => self.advance(slot, out),
            Entry::Plain(..) => self.report(slot, READY | INBOUND, out),
            Entry::Vacant => {}
        }
    }

    /// Advances the handshake in `slot`: re-registered, finished (now a
    /// ring end, reported done) or failed (removed, reported with its
    /// error).
    fn advance(&mut self, slot: usize, out: &mut Vec<usize>) {
        let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let Entry::Pending(p, old) = std::mem::replace(&mut s.entry, Entry::Vacant) else {
            return;
        };
        let gen = s.gen;
        // The socket may change hands (to the end as its liveness
        // descriptor): deregister it from a handshake that ends, below.
        match p.advance() {
            Ok(Step::Pending(p)) => {
                let interest = p.interest();
                let mut result = Ok(());
                if interest != old {
                    result = epoll::modify(
                        &self.epoll,
                        p.fd(),
                        data(slot, MAIN),
                        interest_flags(interest),
                    );
                }
                if let Some(s) = self.slots[slot].as_mut() {
                    s.entry = Entry::Pending(p, interest);
                }
                if let Err(e) = result {
                    self.fail(slot, Error::from(io::Error::from(e)), out);
                }
                let _ = gen;
            }
            Ok(Step::Done(end)) => {
                let ring = Ring {
                    end,
                    armed: false,
                    paused: false,
                    want: 1,
                    gone: false,
                };
                let registered = self.register_ring(slot, &ring, true);
                if let Some(s) = self.slots[slot].as_mut() {
                    s.entry = Entry::Ring(ring);
                }
                match registered {
                    Ok(()) => {
                        self.report(slot, DONE, out);
                        self.queue_rearm(slot);
                    }
                    Err(e) => self.fail(slot, Error::from(e), out),
                }
            }
            Err(e) => {
                // The machine closed its socket (epoll dropped it).
                self.fail(slot, e, out);
            }
        }
    }

    /// Removes `slot` and parks its error for this wait's events.
    fn fail(&mut self, slot: usize, e: Error, out: &mut Vec<usize>) {
        let _ = out;
        let token = self.slots[slot].as_ref().map(|s| s.token);
        self.take(slot);
        if let Some(token) = token {
            self.failures.push(Event {
                token,
                flags: FAILED,
                error: Some(e),
            });
        }
    }

    fn failed_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.failures)
    }
}

impl fmt::Debug for WaitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitSet")
            .field("tokens", &self.tokens.len())
            .field("queued", &self.rearm.len())
            .finish_non_exhaustive()
    }
}
