//! A handshake in progress, for event loops: [`Handshake`] wraps the
//! set-up state machine ([`Machine`]) holding the public end it makes,
//! and hands that end out when it is done (so it is `Send` when the end
//! is).

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::{Endpoint, RingEnd};
use crate::error::{Error, HandshakeError};
use crate::options::Options;
use crate::setup::{attach_remote, create_local, Interest, Kind, Machine, PeerFds, Setup};

/// A public end made of an [`Endpoint`] of kind `K`.
pub(crate) trait Wrap<K: Kind> {
    /// The end around `end`.
    fn wrap(end: Endpoint<K>) -> Self;
}

/// Hands the socket to a finished end as its liveness channel.
type Install<E> = fn(&mut E, UnixStream);

/// Starts the handshake of the end `E`, made of an endpoint of kind `K`:
/// a creator makes its ring (and its end) now, an acceptor when the
/// peer's setup message is in.
pub(crate) fn begin<K: Kind, E: RingEnd + Wrap<K>>(
    stream: UnixStream,
    opts: &Options,
    create: bool,
    install: Install<E>,
) -> Result<Handshake<E>, Error> {
    let machine = if create {
        let (half, parts, peer, setup) = create_local::<K>(opts)?;
        let end = E::wrap(Endpoint::new(half, parts, None, opts));
        Machine::create(stream, opts, end, &setup, peer)
    } else {
        Machine::accept(stream, opts, attach_end::<K, E>)
    };
    Ok(Handshake {
        machine: Box::new(machine),
        install,
    })
}

/// The acceptor's step: checks the peer's offer and attaches, as `E`.
fn attach_end<K: Kind, E: Wrap<K>>(
    setup: &Setup,
    fds: PeerFds,
    opts: &Options,
) -> Result<E, HandshakeError> {
    let (half, parts) = attach_remote::<K>(setup, fds, opts)?;
    Ok(E::wrap(Endpoint::new(half, parts, None, opts)))
}

/// What [`Handshake::advance`] did.
#[derive(Debug)]
pub enum Progress<E> {
    /// Not finished: wait until the socket is ready for
    /// [`Handshake::interest`] (or the deadline passes), then advance again.
    Pending(Handshake<E>),
    /// The ring is set up: the end, ready to use.
    Done(E),
}

/// A ring handshake in progress that never blocks, for event loops: one
/// thread can set up rings with any number of clients at once, and a slow
/// or stalled client delays nobody else.
///
/// Start it with [`create`](Self::create) or [`accept`](Self::accept), wait
/// until its descriptor ([`AsFd`]) is ready for what it
/// [wants](Self::interest) (readable or writable) or its
/// [deadline](Self::deadline) has passed, then [`advance`](Self::advance)
/// it; repeat until it is [`Progress::Done`]. Each advance does what the
/// socket allows now and keeps partial reads and writes; the whole
/// handshake has one deadline ([`Options::handshake_timeout`]), checked on
/// every advance. The blocking `create` and `accept` of every end are this
/// loop with `poll(2)`.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use sharedring::{Handshake, Interest, Options, Progress, Receiver, Sender};
/// use rustix::event::{poll, PollFd, PollFlags};
///
/// let (a, b) = UnixStream::pair()?;
/// let peer = std::thread::spawn(move || Sender::<u64>::create(b, 64));
/// let mut pending = Handshake::<Receiver<u64>>::accept(a, &Options::new())?;
/// let mut rx = loop {
///     // A real server would add this descriptor to its epoll set.
///     let events = match pending.interest() {
///         Interest::Readable => PollFlags::IN,
///         Interest::Writable => PollFlags::OUT,
///     };
///     poll(&mut [PollFd::new(&pending, events)], None)?;
///     match pending.advance()? {
///         Progress::Pending(p) => pending = p,
///         Progress::Done(end) => break end,
///     }
/// };
/// let mut tx = peer.join().unwrap()?;
/// tx.send(&[42], None)?;
/// assert_eq!(rx.recv(&mut [0; 4], None)?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Handshake<E> {
    // Boxed: a `Progress` moves it on every advance.
    machine: Box<Machine<E>>,
    install: Install<E>,
}

impl<E: RingEnd> Handshake<E> {
    /// Starts the creating side: makes the ring now (memfd, eventfds,
    /// header), and sends it over `stream` as the socket allows. The
    /// handshake's deadline starts now.
    ///
    /// ```
    /// use sharedring::{Handshake, Options, Progress, Receiver, Sender};
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let pending = Handshake::<Sender<u32>>::create(a, &Options::new().capacity_elements(64))?;
    /// let peer = std::thread::spawn(move || Receiver::<u32>::accept(b));
    /// let tx = pending.finish()?; // blocks: the loop of `create_with`
    /// # drop((tx, peer.join().unwrap()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Sender::create_with`](crate::Sender::create_with) before any
    /// socket call: the ring cannot be made with these options.
    pub fn create(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        E::begin(stream, opts, true)
    }

    /// Starts the accepting side over `stream`; nothing is read yet. The
    /// handshake's deadline starts now.
    ///
    /// ```
    /// use sharedring::{Handshake, MsgReceiver, MsgSender, Options};
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let pending = Handshake::<MsgReceiver>::accept(a, &Options::new())?;
    /// let peer = std::thread::spawn(move || MsgSender::create(b, 4096));
    /// let rx = pending.finish()?;
    /// # drop((rx, peer.join().unwrap()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        E::begin(stream, opts, false)
    }

    /// Does everything the socket allows now, without blocking:
    /// [`Progress::Done`] with the end once the handshake is over, or
    /// [`Progress::Pending`] with the handshake to wait on again.
    ///
    /// ```
    /// use sharedring::{Handshake, Options, Progress, Receiver};
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let pending = Handshake::<Receiver<u8>>::accept(a, &Options::new())?;
    /// // The peer has sent nothing yet: nothing to do, nothing blocks.
    /// assert!(matches!(pending.advance()?, Progress::Pending(_)));
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Everything the blocking `create` and `accept` report:
    /// [`HandshakeError::TimedOut`](crate::HandshakeError::TimedOut) once
    /// an advance that cannot finish finds the deadline passed, the
    /// peer's mistakes, our refusals. The handshake is over then; its
    /// socket and every descriptor it held are closed.
    pub fn advance(mut self) -> Result<Progress<E>, Error> {
        Ok(match self.machine.advance()? {
            Some((mut end, sock)) => {
                (self.install)(&mut end, sock);
                Progress::Done(end)
            }
            None => Progress::Pending(self),
        })
    }

    /// What the next [`advance`](Self::advance) waits for on the
    /// descriptor.
    ///
    /// ```
    /// use sharedring::{Handshake, Interest, Options, Sender};
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let pending = Handshake::<Sender<u8>>::accept(a, &Options::new())?;
    /// assert_eq!(pending.interest(), Interest::Readable); // the peer's offer
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn interest(&self) -> Interest {
        self.machine.interest()
    }

    /// When the whole handshake must be over (`None`: no timeout). Wake up
    /// by then and [`advance`](Self::advance): it fails with `TimedOut`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sharedring::{Handshake, Options, Sender};
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let opts = Options::new().handshake_timeout(Some(Duration::from_secs(5)));
    /// let pending = Handshake::<Sender<u8>>::accept(a, &opts)?;
    /// assert!(pending.deadline().unwrap() <= Instant::now() + Duration::from_secs(5));
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.machine.deadline()
    }

    /// The time left until the [deadline](Self::deadline), for a `poll`
    /// or `epoll_wait` timeout (zero once it passed; `None`: no timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use sharedring::{Handshake, Options, Sender};
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let opts = Options::new().handshake_timeout(Some(Duration::from_secs(5)));
    /// let pending = Handshake::<Sender<u8>>::accept(a, &opts)?;
    /// assert!(pending.time_left().unwrap() <= Duration::from_secs(5));
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Drives the handshake to its end here, blocking in `poll(2)` for at
    /// most the time left between advances: what the blocking `create`
    /// and `accept` do.
    ///
    /// ```
    /// use sharedring::{Handshake, Options, Receiver, Sender};
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let peer = std::thread::spawn(move || Sender::<u8>::create(b, 64));
    /// let rx = Handshake::<Receiver<u8>>::accept(a, &Options::new())?.finish()?;
    /// # drop((rx, peer.join().unwrap()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish(self) -> Result<E, Error> {
        let mut pending = self;
        loop {
            match pending.advance()? {
                Progress::Done(end) => return Ok(end),
                Progress::Pending(p) => pending = p,
            }
            pending.wait_ready()?;
        }
    }

    /// Blocks in `poll` until the descriptor is ready for the interest,
    /// or the deadline passed (then the next advance reports it).
    fn wait_ready(&self) -> Result<(), Error> {
        use rustix::event::{poll, PollFd, Timespec};
        let ts = self.time_left().map(|d| Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let fd = self.as_fd();
        let mut fds = [PollFd::new(&fd, self.interest().poll_flags())];
        match poll(&mut fds, ts.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(std::io::Error::from(e).into()),
        }
    }
}

impl<E> AsFd for Handshake<E> {
    /// The handshake's socket: wait for it to be readable or writable, as
    /// [`interest`](Handshake::interest) says.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.machine.as_fd()
    }
}

impl<E> fmt::Debug for Handshake<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.machine.fmt(f)
    }
}
