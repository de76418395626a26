//! The calling side: asks a peer for a ring and validates its reply.

use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;

use futures_lite::future;
use sharedring::{HandshakeError, Offer, Options, PeerFds, DEFAULT_HANDSHAKE_TIMEOUT};
use zbus::names::{BusName, UniqueName};
use zbus::zvariant;

use crate::bus::{self, Replier};
use crate::end::{self, RingEnd};
use crate::error::Error;
use crate::watch::Subscription;
use crate::{FLAG_HUGETLB, INTERFACE, METHOD, REPLY_SIGNATURE};

/// The reply's values, in signature order.
type Reply = (
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

/// Descriptors in a reply.
const REPLY_FDS: usize = 4;

/// Asks the ring service at `path` of `destination` (a well-known or
/// unique bus name) for a ring, and returns our end of it.
///
/// `E` says which end we want and of which element type: the peer
/// creates the ring, keeps the other end, and answers with the setup
/// values and the three descriptors. Everything in the reply is
/// validated as on the Unix-socket path ([`Sender::from_offer`]): a
/// wrong signature or descriptor count, wrong kinds of descriptors, a
/// memfd too small, an element size or capacity we do not accept are all
/// errors that name the problem, and every descriptor received is closed.
///
/// A well-known name is resolved to its owner's unique name first, and
/// the call goes to that unique name: the ring comes from the connection
/// we watch. Every reply is believed only from the connection that must
/// send it (the daemon for the name lookup and the subscription, the peer
/// for the ring; the bus sets each message's sender): replies from any
/// other connection on the bus are dropped and the true one is awaited.
/// From then on the ring reports [`sharedring::Error::PeerGone`] once the
/// peer leaves the bus (`NameOwnerChanged` from the daemon), like a
/// hang-up.
///
/// The call waits at most [`DEFAULT_HANDSHAKE_TIMEOUT`] for the answer.
///
/// ```no_run
/// use sharedring::{Options, Sender};
///
/// let conn = sharedring_dbus::connect(zbus::blocking::Connection::session)?;
/// let mut tx: Sender<f64> = sharedring_dbus::open(
///     &conn,
///     "org.sharedring.Example",
///     sharedring_dbus::DEFAULT_PATH,
///     &Options::new(),
/// )?;
/// tx.send(&[1.0, 2.0, 3.0], None)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Sender::from_offer`]: sharedring::Sender::from_offer
pub fn open<E: RingEnd>(
    conn: &zbus::blocking::Connection,
    destination: &str,
    path: &str,
    opts: &Options,
) -> Result<E, Error> {
    zbus::block_on(open_async(conn.inner(), destination, path, opts))
}

/// [`open`] on an async connection.
pub async fn open_async<E: RingEnd>(
    conn: &zbus::Connection,
    destination: &str,
    path: &str,
    opts: &Options,
) -> Result<E, Error> {
    let call = open_inner::<E>(conn, destination, path, opts);
    let timer = async {
        async_io::Timer::after(DEFAULT_HANDSHAKE_TIMEOUT).await;
        Err(Error::TimedOut)
    };
    future::or(call, timer).await
}

async fn open_inner<E: RingEnd>(
    conn: &zbus::Connection,
    destination: &str,
    path: &str,
    opts: &Options,
) -> Result<E, Error> {
    let dest = BusName::try_from(destination).map_err(zbus::Error::from)?;
    // The owner of a well-known name is resolved once, by the daemon; from
    // then on the peer is that unique name, and only it may answer.
    let peer: UniqueName<'static> = match dest {
        BusName::Unique(u) => u.to_owned(),
        BusName::WellKnown(_) => bus::get_name_owner(conn, &dest).await?.into_inner(),
    };
    let mut subscription = Subscription::new(conn, &peer).await?;
    let replier = Replier::Peer(&peer);
    let call = bus::method_call(replier, path, INTERFACE, METHOD)?.build(&(
        E::KIND.code(),
        end::code(E::END),
        E::ELEM_SIZE,
        E::TYPE_TAG,
    ))?;
    let reply = subscription
        .guard(async { Ok(bus::call(conn, replier, call).await?) })
        .await?;
    let (offer, hangup) = parse_reply::<E>(&reply)?;
    drop(reply);
    let liveness = subscription.start(hangup)?;
    Ok(E::from_offer(offer, opts, Some(liveness))?)
}

/// Checks the reply's shape and turns it into an [`Offer`] and the ring's
/// hang-up socket; the offer's values are checked by `from_offer`.
fn parse_reply<E: RingEnd>(reply: &zbus::Message) -> Result<(Offer, UnixStream), Error> {
    let body = reply.body();
    let found = body.signature().to_string_no_parens();
    // The signature is checked before the descriptor count: it names what
    // is wrong (a missing `h`, a string in place of a descriptor) best.
    if found != REPLY_SIGNATURE {
        return Err(Error::ReplySignature {
            expected: REPLY_SIGNATURE,
            found,
        });
    }
    // Descriptors attached but not referenced by the body would otherwise
    // pass unnoticed (they are closed with the message either way).
    let attached = body.data().fds().len();
    if attached != REPLY_FDS {
        return Err(HandshakeError::DescriptorCount {
            expected: REPLY_FDS,
            got: attached,
        }
        .into());
    }
    let (
        kind,
        creator,
        elem_size,
        elem_align,
        type_tag,
        capacity,
        max_msg,
        region_len,
        flags,
        memory,
        data,
        room,
        hangup,
    ): Reply = body.deserialize().map_err(Error::ReplyBody)?;
    // The peer must have kept the other end.
    let creator = match end::from_code(creator) {
        Some(c) if c != E::END => c,
        _ => return Err(HandshakeError::RoleMismatch { peer_role: creator }.into()),
    };
    if flags & !FLAG_HUGETLB != 0 {
        return Err(Error::UnknownFlags { flags });
    }
    // We only ever wait for the hang-up socket to become readable (end of
    // file), never read or write it; it must be a socket so that its
    // hang-up means what we take it to mean.
    let hangup = std::fs::File::from(OwnedFd::from(hangup));
    if !hangup.metadata()?.file_type().is_socket() {
        return Err(Error::HangupNotSocket);
    }
    let hangup = UnixStream::from(OwnedFd::from(hangup));
    // Every value is the peer's; `from_offer` checks them all against
    // what `E` expects, as the socket handshake does.
    let offer = Offer {
        kind: sharedring::RingKind::from_code(kind),
        creator,
        elem_size,
        elem_align,
        type_tag,
        capacity,
        max_msg,
        region_len,
        hugetlb: flags & FLAG_HUGETLB != 0,
        fds: PeerFds {
            memory: OwnedFd::from(memory),
            data: OwnedFd::from(data),
            room: OwnedFd::from(room),
        },
    };
    Ok((offer, hangup))
}
