//! Message rings between processes: variable-size byte records written and
//! read in place, with the same handshake, validation and peer-death
//! handling as the typed rings; and a duplex pair for request/response.

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use spsc_core::{
    Corruption, MsgConsumer, MsgLayout, MsgPopError, MsgProducer, MsgPushError, PopError, Record,
    Reservation, WaitCheck,
};

use crate::error::Error;
use crate::link::Link;
use crate::options::{Options, DEFAULT_MAX_MSG, DEFAULT_RING_BYTES};
use crate::park::{self, Outcome, Side};
use crate::setup::wire::Role;
use crate::setup::{self, Geometry, Parts};

/// The geometry a creating side asks for: capacity in bytes (default
/// [`DEFAULT_RING_BYTES`]) and the maximum message size (default: the most
/// the capacity allows).
fn msg_layout(opts: &Options) -> Result<MsgLayout, Error> {
    let capacity = opts.capacity.unwrap_or(DEFAULT_RING_BYTES);
    let max_msg = opts
        .max_msg
        .unwrap_or_else(|| MsgLayout::max_msg_limit(capacity).min(DEFAULT_MAX_MSG));
    Ok(MsgLayout::new(capacity, max_msg)?)
}

/// The sending end of a message ring.
///
/// ```
/// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity(4096))?;
/// tx.send(b"hello", None)?;
/// tx.send_with(3, None, |r| r.copy_from_slice(b"abc"))?; // written in place
/// let mut buf = Vec::new();
/// assert_eq!(rx.recv(&mut buf, None)?, 5);
/// assert_eq!(buf, b"hello");
/// let len = rx.recv_with(None, |record| record.len())?; // read in place
/// assert_eq!(len, 3);
/// # Ok::<(), sharedring::Error>(())
/// ```
pub struct MsgSender {
    // Before `parts`: it points into `parts.shm`.
    pub(crate) producer: MsgProducer,
    pub(crate) link: Link,
    spin: Duration,
    pub(crate) parts: Parts,
}

/// The receiving end of a message ring; see [`MsgSender`].
pub struct MsgReceiver {
    // Before `parts`: it points into `parts.shm`.
    pub(crate) consumer: MsgConsumer,
    pub(crate) link: Link,
    spin: Duration,
    pub(crate) parts: Parts,
}

impl std::fmt::Debug for MsgSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgSender")
            .field("producer", &self.producer)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MsgReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgReceiver")
            .field("consumer", &self.consumer)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// Ready when a record of `len` bytes can be reserved.
struct MsgRoom<'a> {
    producer: &'a mut MsgProducer,
    len: usize,
}

impl Side for MsgRoom<'_> {
    fn ready(&mut self) -> Result<bool, Corruption> {
        match self.producer.reserve(self.len) {
            // Dropping the reservation publishes nothing.
            Ok(_) => Ok(true),
            Err(MsgPushError::Corrupted(c)) => Err(c),
            Err(_) => Ok(false),
        }
    }
    fn prepare_wait(&mut self) -> Result<WaitCheck, Corruption> {
        self.producer.prepare_wait(self.len)
    }
    fn finish_wait(&mut self) {
        self.producer.finish_wait()
    }
}

/// Ready when a record is published.
struct MsgData<'a> {
    consumer: &'a mut MsgConsumer,
}

impl Side for MsgData<'_> {
    fn ready(&mut self) -> Result<bool, Corruption> {
        Ok(self.consumer.pending_bytes()? > 0)
    }
    fn prepare_wait(&mut self) -> Result<WaitCheck, Corruption> {
        self.consumer.prepare_wait()
    }
    fn finish_wait(&mut self) {
        self.consumer.finish_wait()
    }
}

impl MsgSender {
    /// Creates a message ring of `capacity` bytes (a power of two) whose
    /// messages may be up to half of it, offers it over `stream`, and waits
    /// for the peer's [`MsgReceiver::accept`].
    pub fn create(stream: UnixStream, capacity: usize) -> Result<Self, Error> {
        Self::create_with(stream, &Options::new().capacity(capacity))
    }

    /// [`create`](Self::create) with options ([`Options::capacity`] in
    /// bytes, [`Options::max_msg`], spin budget, ...).
    pub fn create_with(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        let layout = msg_layout(opts)?;
        let (producer, parts) =
            setup::create_over(&stream, Role::Sender, layout.into(), opts, |r| {
                MsgProducer::create(r, layout.capacity(), layout.max_msg())
            })?;
        Ok(Self::from_parts(producer, parts, Some(stream), opts))
    }

    /// Accepts a message ring that the peer's [`MsgReceiver::create`]
    /// offers, after validating everything against what we expect.
    pub fn accept(stream: UnixStream) -> Result<Self, Error> {
        Self::accept_with(stream, &Options::new())
    }

    /// [`accept`](Self::accept) with options (limits, spin budget).
    pub fn accept_with(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        let (producer, parts) = setup::accept_over(
            &stream,
            Role::Sender,
            opts,
            setup::check_msg_setup,
            |r, g| MsgProducer::attach(r, g.capacity(), g.max_msg()),
        )?;
        Ok(Self::from_parts(producer, parts, Some(stream), opts))
    }

    fn from_parts(
        producer: MsgProducer,
        parts: Parts,
        stream: Option<UnixStream>,
        opts: &Options,
    ) -> Self {
        Self {
            producer,
            link: Link::new(stream.map(Into::into)),
            spin: opts.spin,
            parts,
        }
    }

    /// The largest message this ring carries, in bytes.
    pub fn max_msg(&self) -> usize {
        self.producer.max_msg()
    }

    fn check_usable(&self) -> Result<(), Error> {
        self.link.usable(self.producer.corruption())
    }

    fn wake_if_needed(&mut self) -> Result<(), Error> {
        if self.producer.needs_wake() {
            self.parts.wake_peer.notify()?;
        }
        Ok(())
    }

    /// Sends `msg` if there is room now; returns whether it was sent.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<bool, Error> {
        Ok(self
            .try_send_with(msg.len(), |r| r.copy_from_slice(msg))?
            .is_some())
    }

    /// Reserves `len` bytes if there is room now, lets `fill` write the
    /// message in place, and sends it. Returns `None` when full.
    pub fn try_send_with<R>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut Reservation<'_>) -> R,
    ) -> Result<Option<R>, Error> {
        self.check_usable()?;
        match self.producer.reserve(len) {
            Ok(mut reservation) => {
                let out = fill(&mut reservation);
                if reservation.commit() {
                    self.parts.wake_peer.notify()?;
                }
                self.link.busy();
                Ok(Some(out))
            }
            Err(MsgPushError::Full) => {
                if self.link.idle() {
                    return Err(Error::PeerGone);
                }
                Ok(None)
            }
            Err(MsgPushError::TooLarge { len, max }) => Err(Error::MessageTooLarge { len, max }),
            Err(MsgPushError::Corrupted(c)) => Err(Error::Corrupted(c)),
        }
    }

    /// Sends `msg`, blocking (spin, then park) until there is room, the
    /// timeout passes, or the peer is gone.
    pub fn send(&mut self, msg: &[u8], timeout: Option<Duration>) -> Result<(), Error> {
        self.send_with(msg.len(), timeout, |r| r.copy_from_slice(msg))
    }

    /// Reserves `len` bytes (blocking as [`send`](Self::send) does), lets
    /// `fill` write the message in place, and sends it.
    pub fn send_with<R>(
        &mut self,
        len: usize,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut Reservation<'_>) -> R,
    ) -> Result<R, Error> {
        if len > self.max_msg() {
            return Err(Error::MessageTooLarge {
                len,
                max: self.max_msg(),
            });
        }
        let deadline = park::deadline(timeout);
        let mut fill = Some(fill);
        loop {
            self.check_usable()?;
            match self.producer.reserve(len) {
                Ok(mut reservation) => {
                    let f = fill.take().expect("filled once");
                    let out = f(&mut reservation);
                    if reservation.commit() {
                        self.parts.wake_peer.notify()?;
                    }
                    return Ok(out);
                }
                Err(MsgPushError::Full) => {}
                Err(MsgPushError::TooLarge { len, max }) => {
                    return Err(Error::MessageTooLarge { len, max })
                }
                Err(MsgPushError::Corrupted(c)) => return Err(Error::Corrupted(c)),
            }
            let mut side = MsgRoom {
                producer: &mut self.producer,
                len,
            };
            match park::wait(
                &mut side,
                &self.parts.wait_own,
                &mut self.link,
                self.spin,
                deadline,
            )? {
                Outcome::Ready => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: 0 }),
                Outcome::PeerGone => return Err(Error::PeerGone),
            }
        }
    }

    /// Whether the peer is gone: it hung up or died (one `poll` of the
    /// liveness socket), or it broke the protocol, which treats it as gone
    /// from then on (every call then returns [`Error::Corrupted`]).
    pub fn is_peer_gone(&mut self) -> bool {
        self.producer.corruption().is_some() || self.link.check()
    }

    /// The spsc-core half inside, for callers that drive the wake-up
    /// protocol themselves.
    pub fn producer(&mut self) -> &mut MsgProducer {
        &mut self.producer
    }

    /// Wakes the receiver if it sleeps (after pushing through
    /// [`producer`](Self::producer) directly).
    pub fn wake(&mut self) -> Result<(), Error> {
        self.wake_if_needed()
    }
}

impl MsgReceiver {
    /// Creates a message ring of `capacity` bytes, offers it over `stream`,
    /// and waits for the peer's [`MsgSender::accept`].
    pub fn create(stream: UnixStream, capacity: usize) -> Result<Self, Error> {
        Self::create_with(stream, &Options::new().capacity(capacity))
    }

    /// [`create`](Self::create) with options.
    pub fn create_with(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        let layout = msg_layout(opts)?;
        let (consumer, parts) =
            setup::create_over(&stream, Role::Receiver, layout.into(), opts, |r| {
                MsgConsumer::create(r, layout.capacity(), layout.max_msg())
            })?;
        Ok(Self::from_parts(consumer, parts, Some(stream), opts))
    }

    /// Accepts a message ring that the peer's [`MsgSender::create`] offers.
    pub fn accept(stream: UnixStream) -> Result<Self, Error> {
        Self::accept_with(stream, &Options::new())
    }

    /// [`accept`](Self::accept) with options (limits such as
    /// [`Options::max_msg`], spin budget).
    pub fn accept_with(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        let (consumer, parts) = setup::accept_over(
            &stream,
            Role::Receiver,
            opts,
            setup::check_msg_setup,
            |r, g| MsgConsumer::attach(r, g.capacity(), g.max_msg()),
        )?;
        Ok(Self::from_parts(consumer, parts, Some(stream), opts))
    }

    fn from_parts(
        consumer: MsgConsumer,
        parts: Parts,
        stream: Option<UnixStream>,
        opts: &Options,
    ) -> Self {
        Self {
            consumer,
            link: Link::new(stream.map(Into::into)),
            spin: opts.spin,
            parts,
        }
    }

    /// The largest message this ring carries, in bytes.
    pub fn max_msg(&self) -> usize {
        self.consumer.max_msg()
    }

    /// Reads the next message in place with `read` and releases it, if one
    /// is there now. Returns `None` when the ring is empty.
    pub fn try_recv_with<R>(
        &mut self,
        read: impl FnOnce(&Record<'_>) -> R,
    ) -> Result<Option<R>, Error> {
        match self.consumer.read() {
            Ok(record) => {
                let out = read(&record);
                if record.release() {
                    self.parts.wake_peer.notify()?;
                }
                self.link.busy();
                Ok(Some(out))
            }
            Err(PopError::Corrupted(c)) => Err(Error::Corrupted(c)),
            Err(PopError::Empty) => {
                if self.link.known_gone() || self.link.idle() {
                    // Whatever was published before the hang-up is visible.
                    return match self.consumer.read() {
                        Ok(record) => {
                            let out = read(&record);
                            let _ = record.release();
                            Ok(Some(out))
                        }
                        Err(PopError::Corrupted(c)) => Err(Error::Corrupted(c)),
                        Err(PopError::Empty) => Err(Error::PeerGone),
                    };
                }
                Ok(None)
            }
        }
    }

    /// Receives the next message into `buf` (resized to fit; at most
    /// [`max_msg`](Self::max_msg) bytes) if one is there now.
    pub fn try_recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>, Error> {
        self.try_recv_with(|record| copy_out(record, buf))
    }

    /// Blocks (spin, then park) until a message arrives, reads it in place
    /// with `read`, and releases it. After the peer is gone, delivers what
    /// it committed, then [`Error::PeerGone`].
    pub fn recv_with<R>(
        &mut self,
        timeout: Option<Duration>,
        read: impl FnOnce(&Record<'_>) -> R,
    ) -> Result<R, Error> {
        let deadline = park::deadline(timeout);
        let mut read = Some(read);
        loop {
            match self.consumer.read() {
                Ok(record) => {
                    let f = read.take().expect("read once");
                    let out = f(&record);
                    if record.release() {
                        self.parts.wake_peer.notify()?;
                    }
                    return Ok(out);
                }
                Err(PopError::Corrupted(c)) => return Err(Error::Corrupted(c)),
                Err(PopError::Empty) => {}
            }
            if self.link.known_gone() {
                return Err(Error::PeerGone);
            }
            let mut side = MsgData {
                consumer: &mut self.consumer,
            };
            match park::wait(
                &mut side,
                &self.parts.wait_own,
                &mut self.link,
                self.spin,
                deadline,
            )? {
                // On PeerGone, loop once more: the ring is drained first.
                Outcome::Ready | Outcome::PeerGone => {}
                Outcome::TimedOut => return Err(Error::TimedOut { done: 0 }),
            }
        }
    }

    /// Receives the next message into `buf` (resized to fit), blocking as
    /// [`recv_with`](Self::recv_with) does; returns its length.
    pub fn recv(&mut self, buf: &mut Vec<u8>, timeout: Option<Duration>) -> Result<usize, Error> {
        self.recv_with(timeout, |record| copy_out(record, buf))
    }

    /// Receives the next message into `buf` if it fits. A message longer
    /// than `buf` stays in the ring and the error says how long it is.
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        match self.consumer.pop(buf) {
            Ok(n) => {
                self.link.busy();
                if self.consumer.needs_wake() {
                    self.parts.wake_peer.notify()?;
                }
                Ok(Some(n))
            }
            Err(MsgPopError::Empty) => Ok(None),
            Err(MsgPopError::BufferTooSmall { len, buf }) => {
                Err(Error::BufferTooSmall { len, buf })
            }
            Err(MsgPopError::Corrupted(c)) => Err(Error::Corrupted(c)),
        }
    }

    /// Whether the peer is gone: it hung up or died (one `poll` of the
    /// liveness socket), or it broke the protocol, which treats it as gone
    /// from then on (every call then returns [`Error::Corrupted`]).
    pub fn is_peer_gone(&mut self) -> bool {
        self.consumer.corruption().is_some() || self.link.check()
    }

    /// The spsc-core half inside, for callers that drive the wake-up
    /// protocol themselves.
    pub fn consumer(&mut self) -> &mut MsgConsumer {
        &mut self.consumer
    }
}

/// Copies a record into `buf`, resized to its length (bounded by the
/// ring's maximum message size, which we validated).
pub(crate) fn copy_out(record: &Record<'_>, buf: &mut Vec<u8>) -> usize {
    let len = record.len();
    // Only the growth is zero-filled (then overwritten): clearing first
    // would zero the whole message on every call, an extra pass over it
    // that cost a fifth of the throughput at 64 KiB.
    buf.truncate(len);
    buf.resize(len, 0);
    record.copy_to_slice(buf);
    len
}

/// An in-process message ring pair over a real memfd and eventfds (for
/// tests and threads); see [`channel`](crate::channel).
pub fn msg_channel(opts: &Options) -> Result<(MsgSender, MsgReceiver), Error> {
    let (a, b) = UnixStream::pair().map_err(Error::Io)?;
    let layout = msg_layout(opts)?;
    let geometry = Geometry::Messages(layout);
    let (parts, fds) = setup::create_parts(Role::Sender, &geometry, opts)?;
    let producer = MsgProducer::create(parts.region(), layout.capacity(), layout.max_msg())
        .map_err(crate::HandshakeError::Ring)?;
    let setup = setup::setup_for(Role::Sender, &geometry, opts);
    let checked = setup::check_msg_setup(&setup, Role::Receiver, opts)?;
    let peer = setup::open_parts(Role::Receiver, &checked, fds, opts)?;
    let consumer = MsgConsumer::attach(peer.region(), layout.capacity(), layout.max_msg())
        .map_err(crate::HandshakeError::Ring)?;
    Ok((
        MsgSender::from_parts(producer, parts, Some(a), opts),
        MsgReceiver::from_parts(consumer, peer, Some(b), opts),
    ))
}

/// Two message rings over one connection, one each way: for request and
/// response.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use sharedring::{Duplex, Options};
///
/// let (a, b) = UnixStream::pair()?;
/// let server = std::thread::spawn(move || -> Result<(), sharedring::Error> {
///     let mut d = Duplex::accept(b, &Options::new())?;
///     let mut req = Vec::new();
///     while d.rx.recv(&mut req, None).is_ok() {
///         req.reverse();
///         d.tx.send(&req, None)?;
///     }
///     Ok(())
/// });
/// let mut client = Duplex::create(a, &Options::new().capacity(1 << 16))?;
/// let mut resp = Vec::new();
/// client.request(b"ping", &mut resp, None)?;
/// assert_eq!(resp, b"gnip");
/// drop(client);
/// server.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Duplex {
    /// Our sending ring.
    pub tx: MsgSender,
    /// Our receiving ring.
    pub rx: MsgReceiver,
}

impl Duplex {
    /// Creates both rings and offers them over `stream` (the connecting
    /// side, typically). The peer calls [`Duplex::accept`].
    pub fn create(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        let tx = MsgSender::create_with(stream.try_clone().map_err(Error::Io)?, opts)?;
        let rx = MsgReceiver::create_with(stream, opts)?;
        Ok(Self { tx, rx })
    }

    /// Accepts both rings that the peer's [`Duplex::create`] offers.
    pub fn accept(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        let rx = MsgReceiver::accept_with(stream.try_clone().map_err(Error::Io)?, opts)?;
        let tx = MsgSender::accept_with(stream, opts)?;
        Ok(Self { tx, rx })
    }

    /// Sends `request` and waits for one response into `response`; the
    /// timeout covers both.
    pub fn request(
        &mut self,
        request: &[u8],
        response: &mut Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<usize, Error> {
        let deadline = park::deadline(timeout);
        self.tx.send(request, timeout)?;
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        self.rx.recv(response, left)
    }
}
