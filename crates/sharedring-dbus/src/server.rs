//! The serving side: exports the ring interface and hands a new ring to
//! each caller.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver as Queue, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use futures_lite::future;
use sharedring::{End, Offer, Options, DEFAULT_HANDSHAKE_TIMEOUT};
use zbus::message::Header;
use zbus::names::OwnedUniqueName;
use zbus::zvariant::{self, OwnedObjectPath};

use crate::bus::{self, Replier};
use crate::end::{self, RingEnd};
use crate::error::Error;
use crate::watch::Subscription;
use crate::{FLAG_HUGETLB, INTERFACE};

/// Rings created for callers and not yet accepted. A caller that finds the
/// queue full gets [`crate::errors::BUSY`]: a flood of calls costs at most
/// this many rings.
pub const BACKLOG: usize = 16;

/// Who asked for a ring, as the bus daemon reports it (the daemon, not the
/// caller, vouches for these values: the name is the sender field the
/// daemon set on the call, and `uid` and `pid` come from a
/// `GetConnectionCredentials` reply that is believed only from the daemon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's unique bus name; the ring reports
    /// [`sharedring::Error::PeerGone`] once it leaves the bus.
    pub name: OwnedUniqueName,
    /// The caller's user id, if the daemon knows it.
    pub uid: Option<u32>,
    /// The caller's process id, if the daemon knows it.
    pub pid: Option<u32>,
}

/// Creates the ring for one caller; type-erased so that the exported object
/// needs no type parameter.
type MakeRing = dyn Fn(OwnedFd, Caller) -> Result<Offer, RingError> + Send + Sync;

/// Serves rings at an object path: each call of the interface's `Open`
/// method creates a ring, keeps end `E` for us (queued for
/// [`accept`](Self::accept)) and answers the caller with the other end.
///
/// The caller must ask for the other end and the same element size, or it
/// gets a [`crate::errors::MISMATCH`] error. Dropping the server removes the
/// object from the connection; rings already accepted live on.
///
/// ```no_run
/// use std::time::Duration;
/// use sharedring::{Options, Receiver};
/// use sharedring_dbus::{RingServer, DEFAULT_PATH};
///
/// let conn = sharedring_dbus::connect(zbus::blocking::Connection::session)?;
/// conn.request_name("org.sharedring.Example")?;
/// let server =
///     RingServer::<Receiver<f64>>::serve(&conn, DEFAULT_PATH, &Options::new().capacity_elements(1 << 14))?;
/// let (mut rx, caller) = server.accept(None)?;
/// println!("ring for {} (pid {:?})", caller.name, caller.pid);
/// let mut buf = [0f64; 1024];
/// let n = rx.recv(&mut buf, Some(Duration::from_secs(1)))?;
/// # let _ = n;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RingServer<E: RingEnd> {
    conn: zbus::blocking::Connection,
    path: OwnedObjectPath,
    queue: Queue<(E, Caller)>,
}

impl<E: RingEnd> std::fmt::Debug for RingServer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingServer")
            .field("path", &self.path.as_str())
            .field("end", &E::END)
            .finish_non_exhaustive()
    }
}

impl<E: RingEnd> RingServer<E> {
    /// Exports the ring interface at `path` on `conn`. Rings are created
    /// with `opts`. Fails if `path` already has the interface.
    ///
    /// Returns once a call through the bus reaches the object (it pings
    /// itself: zbus starts its object server lazily, and a call that came
    /// earlier would be lost); fails if that takes longer than
    /// [`sharedring::DEFAULT_HANDSHAKE_TIMEOUT`], which means the
    /// connection's executor does not run.
    pub fn serve(
        conn: &zbus::blocking::Connection,
        path: &str,
        opts: &Options,
    ) -> Result<Self, Error> {
        let path = OwnedObjectPath::try_from(path).map_err(zbus::Error::from)?;
        let (tx, queue) = mpsc::sync_channel(BACKLOG);
        let opts = opts.clone();
        let make =
            move |liveness: OwnedFd, caller: Caller| make_ring::<E>(&tx, &opts, liveness, caller);
        let object = RingObject {
            end: E::END,
            kind: E::KIND.code(),
            elem_size: E::ELEM_SIZE,
            type_tag: E::TYPE_TAG,
            make: Box::new(make),
        };
        if !conn.object_server().at(&path, object)? {
            return Err(zbus::Error::from(zbus::fdo::Error::FileExists(format!(
                "{path} already serves {INTERFACE}"
            )))
            .into());
        }
        let server = Self {
            conn: conn.clone(),
            path,
            queue,
        };
        // Dropping `server` on failure removes the object again.
        zbus::block_on(await_dispatch(conn.inner(), &server.path))?;
        Ok(server)
    }

    /// Waits for the next caller's ring, at most `timeout` (`None`:
    /// forever). Fails with [`Error::TimedOut`], or [`Error::Closed`] if the
    /// object is no longer served.
    ///
    /// A caller may leave the bus between its call and this return: the
    /// ring then reports [`sharedring::Error::PeerGone`] at its first
    /// blocking call, like any dead peer.
    pub fn accept(&self, timeout: Option<Duration>) -> Result<(E, Caller), Error> {
        match timeout {
            None => self.queue.recv().map_err(|_| Error::Closed),
            Some(t) => self.queue.recv_timeout(t).map_err(|e| match e {
                RecvTimeoutError::Timeout => Error::TimedOut,
                RecvTimeoutError::Disconnected => Error::Closed,
            }),
        }
    }

    /// The object path served.
    pub fn path(&self) -> &str {
        self.path.as_str()
    }
}

impl<E: RingEnd> Drop for RingServer<E> {
    fn drop(&mut self) {
        // Best effort: the connection may be closed already. Rings queued
        // and not accepted are dropped with `queue`, which hangs them up.
        let _ = self
            .conn
            .object_server()
            .remove::<RingObject, _>(&self.path);
    }
}

/// Returns once our object server answers calls that come through the bus.
///
/// zbus starts a connection's object server task on first use and does
/// not wait for it to listen: a call that arrives before it does is lost,
/// and its caller waits for its timeout (see z-galaxy/zbus#1109). So we
/// ping our own object through the bus until it answers. If the daemon
/// refuses to route the ping (a policy that forbids calling ourselves),
/// we cannot tell and go on.
async fn await_dispatch(conn: &zbus::Connection, path: &OwnedObjectPath) -> Result<(), Error> {
    let Some(me) = conn.unique_name() else {
        return Ok(());
    };
    let me = Replier::Peer(me);
    let deadline = Instant::now() + DEFAULT_HANDSHAKE_TIMEOUT;
    let mut wait = Duration::from_millis(20);
    loop {
        let ping =
            bus::method_call(me, path.as_str(), "org.freedesktop.DBus.Peer", "Ping")?.build(&())?;
        let answer = future::or(async { Some(bus::call(conn, me, ping).await) }, async {
            async_io::Timer::after(wait).await;
            None
        })
        .await;
        match answer {
            Some(Ok(_) | Err(zbus::Error::MethodError(..))) => return Ok(()),
            Some(Err(e)) => return Err(e.into()),
            None if Instant::now() >= deadline => {
                return Err(zbus::Error::Failure(format!(
                    "our own object server did not answer a ping at {path} within \
                     {DEFAULT_HANDSHAKE_TIMEOUT:?}: is the connection's executor running?"
                ))
                .into())
            }
            None => wait = (wait * 2).min(Duration::from_secs(1)),
        }
    }
}

fn make_ring<E: RingEnd>(
    queue: &SyncSender<(E, Caller)>,
    opts: &Options,
    liveness: OwnedFd,
    caller: Caller,
) -> Result<Offer, RingError> {
    let (ring, offer) =
        E::create_offer(opts, Some(liveness)).map_err(|e| RingError::Failed(e.to_string()))?;
    match queue.try_send((ring, caller)) {
        Ok(()) => Ok(offer),
        Err(TrySendError::Full(_)) => Err(RingError::Busy(format!(
            "{BACKLOG} rings are waiting to be accepted"
        ))),
        Err(TrySendError::Disconnected(_)) => {
            Err(RingError::Failed("the server is shutting down".into()))
        }
    }
}

/// The errors `Open` answers with; see [`crate::errors`].
#[derive(zbus::DBusError, Debug)]
#[zbus(prefix = "org.sharedring.Ring2.Error")]
enum RingError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller asked for the wrong end or element size.
    Mismatch(String),
    /// Too many rings wait to be accepted.
    Busy(String),
    /// The caller left the bus before its ring was made.
    Gone(String),
    /// Creating the ring failed on our side.
    Failed(String),
}

/// The exported object.
struct RingObject {
    end: End,
    kind: u32,
    elem_size: u32,
    type_tag: u64,
    make: Box<MakeRing>,
}

/// `Open`'s out values: see [`crate::REPLY_SIGNATURE`].
type OpenReply = (
    u32,
    u32,
    u32,
    u32,
    u64,
    u64,
    u32,
    u64,
    u32,
    zvariant::OwnedFd,
    zvariant::OwnedFd,
    zvariant::OwnedFd,
    zvariant::OwnedFd,
);

#[zbus::interface(name = "org.sharedring.Ring2")]
impl RingObject {
    /// Creates a ring for the caller. `kind`: 1 elements, 2 messages;
    /// `end`: the end the caller will hold (1 sender, 2 receiver);
    /// `elem_size`, `type_tag`: its element type (1 and 0 for messages).
    #[zbus(out_args(
        "kind",
        "creator",
        "elem_size",
        "elem_align",
        "type_tag",
        "capacity",
        "max_msg",
        "region_len",
        "flags",
        "memory",
        "data",
        "room",
        "hangup"
    ))]
    async fn open(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        kind: u32,
        end: u32,
        elem_size: u32,
        type_tag: u64,
    ) -> Result<OpenReply, RingError> {
        let ours = self.end;
        if end::from_code(end) != Some(end::other(ours)) {
            return Err(RingError::Mismatch(format!(
                "this service keeps the {ours:?} end; ask for end {}, not {end}",
                end::code(end::other(ours))
            )));
        }
        if kind != self.kind {
            return Err(RingError::Mismatch(format!(
                "this service serves rings of kind {} (1 elements, 2 messages), not {kind}",
                self.kind
            )));
        }
        if elem_size != self.elem_size || type_tag != self.type_tag {
            return Err(RingError::Mismatch(format!(
                "this service's elements are {} B with type tag {:#018x}, not {elem_size} B \
                 with tag {type_tag:#018x}: both sides must use the same element type",
                self.elem_size, self.type_tag
            )));
        }
        let Some(sender) = header.sender() else {
            return Err(RingError::Failed("the call has no sender".into()));
        };
        // The daemon's answers about the caller, each believed only from
        // the daemon, within the deadline a client has for the whole call.
        let setup = async {
            let caller = caller(conn, sender.to_owned().into()).await;
            let subscription = Subscription::new(conn, sender).await.map_err(|e| match e {
                Error::PeerGone => RingError::Gone(format!("{sender} left the bus")),
                e => RingError::Failed(e.to_string()),
            })?;
            Ok((caller, subscription))
        };
        let timer = async {
            async_io::Timer::after(DEFAULT_HANDSHAKE_TIMEOUT).await;
            Err(RingError::Failed(format!(
                "the bus daemon did not answer about {sender} within {DEFAULT_HANDSHAKE_TIMEOUT:?}"
            )))
        };
        let (caller, subscription) = future::or(setup, timer).await?;
        let (ours, theirs) = UnixStream::pair().map_err(|e| RingError::Failed(e.to_string()))?;
        let liveness = subscription
            .start(ours)
            .map_err(|e| RingError::Failed(e.to_string()))?;
        let offer = (self.make)(liveness, caller)?;
        Ok((
            offer.kind.code(),
            end::code(offer.creator),
            offer.elem_size,
            offer.elem_align,
            offer.type_tag,
            offer.capacity,
            offer.max_msg,
            offer.region_len,
            if offer.hugetlb { FLAG_HUGETLB } else { 0 },
            offer.fds.memory.into(),
            offer.fds.data.into(),
            offer.fds.room.into(),
            OwnedFd::from(theirs).into(),
        ))
    }
}

/// The caller's identity, from the daemon (missing values stay `None`: the
/// call is not refused because the daemon could not tell). Only the
/// daemon's reply counts: the caller itself could send one with the same
/// serial.
async fn caller(conn: &zbus::Connection, name: OwnedUniqueName) -> Caller {
    let creds = bus::connection_credentials(conn, &name).await.ok();
    Caller {
        uid: creds.as_ref().and_then(|c| c.unix_user_id()),
        pid: creds.as_ref().and_then(|c| c.process_id()),
        name,
    }
}
