//! Message rings between processes: variable-size byte records written and
//! read in place, with the same handshake, validation and peer-death
//! handling as the element rings ([`MsgSender`], [`MsgReceiver`]); and a
//! duplex pair for request/response ([`Duplex`]). Only the data path lives
//! here; the lifecycle is the shared [`Endpoint`](crate::endpoint::Endpoint).

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use spsc_core::{Corruption, MsgConsumer, MsgLayout, MsgProducer, RawRegion, SetupError};

use crate::endpoint::park;
use crate::error::{Error, HandshakeError};
use crate::options::{Options, DEFAULT_MAX_MSG};
use crate::setup::checks::check_messages;
use crate::setup::{Geometry, Kind, Role, Setup};

pub(crate) mod receiver;
pub(crate) mod sender;

pub use receiver::MsgReceiver;
pub use sender::MsgSender;

/// The geometry a creating side asks for: capacity in bytes (default
/// [`DEFAULT_RING_BYTES`](crate::DEFAULT_RING_BYTES)) and the maximum
/// message size (default [`DEFAULT_MAX_MSG`], or the most the capacity
/// allows if that is less).
fn geometry(opts: &Options) -> Result<Geometry, Error> {
    let capacity = opts.bytes_for_messages()?;
    let max_msg = opts
        .max_msg
        .unwrap_or_else(|| MsgLayout::max_msg_limit(capacity).min(DEFAULT_MAX_MSG));
    let layout = MsgLayout::new(capacity, max_msg)?;
    opts.check_own_region(capacity, layout.region_size())?;
    Ok(Geometry::Messages(layout))
}

/// The sending end of a message ring, as set-up sees it.
pub(crate) struct MsgSend;
/// The receiving end of a message ring, as set-up sees it.
pub(crate) struct MsgRecv;

/// The `Kind` of one end of a message ring: only the half, the role and
/// the name differ between the two ends.
macro_rules! message_kind {
    ($marker:ident, $half:ident, $role:ident, $name:literal) => {
        impl Kind for $marker {
            type Half = $half;
            const ROLE: Role = Role::$role;
            const NAME: &'static str = $name;
            const RING: crate::RingKind = crate::RingKind::Messages;
            const CONTRACT: (u32, u32, u64) = (1, 1, 0);
            fn geometry(opts: &Options) -> Result<Geometry, Error> {
                geometry(opts)
            }
            fn check(setup: &Setup, opts: &Options) -> Result<Geometry, HandshakeError> {
                check_messages(setup, Self::ROLE, opts)
            }
            fn create(region: RawRegion, g: &Geometry) -> Result<$half, SetupError> {
                $half::create(region, g.capacity(), g.max_msg())
            }
            fn attach(region: RawRegion, g: &Geometry) -> Result<$half, SetupError> {
                $half::attach(region, g.capacity(), g.max_msg())
            }
            fn corruption(half: &$half) -> Option<Corruption> {
                half.corruption()
            }
            fn wake_order(half: &mut $half, barrier: Option<fn() -> bool>, registered: bool) {
                if let Some(barrier) = barrier {
                    half.declare_sleeper_barrier(barrier);
                }
                if registered {
                    half.set_registered_for_sleeper_barrier();
                }
            }
            fn withdraw_barrier(half: &mut $half) {
                // A failed barrier keeps the declaration: our arms then
                // keep running it, which is slower, never unsafe.
                let _ = half.withdraw_sleeper_barrier();
            }
        }
    };
}

message_kind!(MsgSend, MsgProducer, Sender, "MsgSender");
message_kind!(MsgRecv, MsgConsumer, Receiver, "MsgReceiver");

/// An in-process message ring pair over a real memfd and eventfds, with a
/// socket pair as the liveness channel (for tests and threads); see
/// [`channel`](crate::channel).
///
/// ```
/// let (mut tx, mut rx) = sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(4096))?;
/// tx.send(b"ping", None)?;
/// let mut buf = Vec::new();
/// rx.recv(&mut buf, None)?;
/// assert_eq!(buf, b"ping");
/// # Ok::<(), sharedring::Error>(())
/// ```
pub fn msg_channel(opts: &Options) -> Result<(MsgSender, MsgReceiver), Error> {
    let (a, b) = UnixStream::pair().map_err(Error::from)?;
    let (tx, offer) = MsgSender::create_offer(opts, Some(a.into()))?;
    let rx = MsgReceiver::from_offer(offer, opts, Some(b.into()))?;
    Ok((tx, rx))
}

/// Two message rings over one connection, one each way: for request and
/// response.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use sharedring::Duplex;
///
/// let (a, b) = UnixStream::pair()?;
/// let server = std::thread::spawn(move || -> Result<(), sharedring::Error> {
///     let mut d = Duplex::accept(b)?;
///     let mut req = Vec::new();
///     while d.rx.recv(&mut req, None).is_ok() {
///         req.reverse();
///         d.tx.send(&req, None)?;
///     }
///     Ok(())
/// });
/// let mut client = Duplex::create(a, 1 << 16)?;
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
    /// Creates two rings of `bytes` each and offers them over `stream`
    /// (the connecting side, typically). The peer calls
    /// [`Duplex::accept`].
    ///
    /// ```
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let peer = std::thread::spawn(move || sharedring::Duplex::accept(b));
    /// let d = sharedring::Duplex::create(a, 4096)?;
    /// assert_eq!(d.tx.capacity_bytes(), 4096);
    /// # drop((d, peer.join().unwrap()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(stream: UnixStream, bytes: usize) -> Result<Self, Error> {
        Self::create_with(stream, &Options::new().capacity_bytes(bytes))
    }

    /// [`create`](Self::create) with options.
    ///
    /// ```
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let peer = std::thread::spawn(move || sharedring::Duplex::accept(b));
    /// let opts = sharedring::Options::new().capacity_bytes(4096).max_msg(256);
    /// let d = sharedring::Duplex::create_with(a, &opts)?;
    /// assert_eq!(d.tx.max_msg(), 256);
    /// # drop((d, peer.join().unwrap()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_with(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        let tx = MsgSender::create_with(stream.try_clone().map_err(Error::from)?, opts)?;
        let rx = MsgReceiver::create_with(stream, opts)?;
        Ok(Self { tx, rx })
    }

    /// Accepts both rings that the peer's [`Duplex::create`] offers.
    ///
    /// ```
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let peer = std::thread::spawn(move || sharedring::Duplex::create(b, 4096));
    /// let d = sharedring::Duplex::accept(a)?;
    /// assert_eq!(d.rx.capacity_bytes(), 4096);
    /// # drop((d, peer.join().unwrap()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept(stream: UnixStream) -> Result<Self, Error> {
        Self::accept_with(stream, &Options::new())
    }

    /// [`accept`](Self::accept) with options (limits, spin budget).
    ///
    /// ```
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let peer = std::thread::spawn(move || sharedring::Duplex::create(b, 4096));
    /// let d = sharedring::Duplex::accept_with(a, &sharedring::Options::new().max_msg(4096))?;
    /// # drop((d, peer.join().unwrap()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_with(stream: UnixStream, opts: &Options) -> Result<Self, Error> {
        let rx = MsgReceiver::accept_with(stream.try_clone().map_err(Error::from)?, opts)?;
        let tx = MsgSender::accept_with(stream, opts)?;
        Ok(Self { tx, rx })
    }

    /// Sends `request` and waits for one response into `response`; the
    /// timeout covers both.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let peer = std::thread::spawn(move || sharedring::Duplex::accept(b));
    /// let mut d = sharedring::Duplex::create(a, 4096)?;
    /// let _server = peer.join().unwrap()?; // accepts, never answers
    /// let err = d.request(b"?", &mut Vec::new(), Some(Duration::from_millis(10))).unwrap_err();
    /// assert!(matches!(err, sharedring::Error::TimedOut { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
