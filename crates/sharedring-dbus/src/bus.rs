//! Method calls whose replies we believe only from the connection that
//! must send them.
//!
//! zbus (5.19, `Connection::call_method` and every proxy built on it)
//! completes a pending call with the first method return or error that
//! carries the call's serial as its reply serial, whoever sent it
//! (`PendingMethodCalls::complete_call` is keyed by the serial alone). A
//! bus daemon with the stock session policy relays replies that nobody
//! requested, and serials are easy to predict (one process-wide counter).
//! So any third connection on the bus could answer our calls. zbus has no
//! option to tie a reply to its sender, and a match rule cannot name a
//! reply serial. We found no upstream report of the reply-sender
//! exposure; the closest, z-galaxy/zbus#1966, was answered with "send the
//! message yourself and read the reply from a `MessageStream`", which is
//! what [`call`] does, checking the reply serial *and* the sender.
//!
//! The daemon sets the sender field of every message it relays to the
//! sending connection's unique name, and its own messages carry
//! `org.freedesktop.DBus`, a name no connection can own: the sender is
//! the one thing about a message that a third connection cannot forge.

use std::io;
use std::sync::Arc;

use futures_lite::StreamExt;
use zbus::fdo::ConnectionCredentials;
use zbus::message::{Flags, Type};
use zbus::names::{BusName, OwnedUniqueName, UniqueName};
use zbus::{Message, MessageStream};

/// The bus daemon's name, object path and interface.
pub(crate) const DAEMON: &str = "org.freedesktop.DBus";
const DAEMON_PATH: &str = "/org/freedesktop/DBus";
const DAEMON_INTERFACE: &str = "org.freedesktop.DBus";

/// Who may answer a call.
#[derive(Clone, Copy)]
pub(crate) enum Replier<'a> {
    /// The bus daemon itself: only messages it sent.
    Daemon,
    /// A peer, by its unique name: its replies, and the daemon's errors
    /// about the call (the peer left without answering, no such name,
    /// refused by policy). The daemon never answers a peer's call with a
    /// method return.
    Peer(&'a UniqueName<'a>),
}

/// Whether `sender` is the bus daemon.
pub(crate) fn is_daemon(sender: Option<&UniqueName<'_>>) -> bool {
    sender.is_some_and(|s| s.as_str() == DAEMON)
}

impl Replier<'_> {
    /// Whether a reply of type `kind` from `sender` is one we believe.
    fn vouches(self, kind: Type, sender: Option<&UniqueName<'_>>) -> bool {
        match self {
            Self::Daemon => is_daemon(sender),
            Self::Peer(peer) => sender == Some(peer) || (kind == Type::Error && is_daemon(sender)),
        }
    }

    fn destination(self) -> BusName<'static> {
        match self {
            Self::Daemon => BusName::from_static_str(DAEMON).expect("a valid bus name"),
            Self::Peer(peer) => BusName::from(peer.to_owned()),
        }
    }
}

/// A method call to `replier`, to be built with its body and passed to
/// [`call`].
pub(crate) fn method_call(
    replier: Replier<'_>,
    path: &str,
    interface: &str,
    member: &str,
) -> zbus::Result<zbus::message::Builder<'static>> {
    let builder = Message::method_call(path.to_owned(), member.to_owned())?
        .destination(replier.destination())?
        .interface(interface.to_owned())?;
    Ok(builder)
}

/// Sends `msg`, a method call to `replier` (see [`method_call`]), and
/// waits for its reply: a method return is `Ok`, an error reply is
/// [`zbus::Error::MethodError`]. Replies with our serial from anyone else
/// are dropped (with their descriptors) and the true one is still awaited;
/// the caller bounds the wait.
pub(crate) async fn call(
    conn: &zbus::Connection,
    replier: Replier<'_>,
    msg: Message,
) -> zbus::Result<Message> {
    // Subscribed before the call is sent, so that its reply cannot come
    // before we listen. The stream is unfiltered: every message on the
    // connection passes by, and is dropped here unless it is our reply.
    let mut replies = MessageStream::from(conn);
    let serial = msg.primary_header().serial_num();
    let member = msg.header().member().map(|m| m.to_string());
    conn.send(&msg).await?;
    drop(msg);
    while let Some(reply) = replies.next().await {
        let reply = reply?;
        let header = reply.header();
        let kind = header.message_type();
        if !matches!(kind, Type::MethodReturn | Type::Error)
            || header.reply_serial() != Some(serial)
            || !replier.vouches(kind, header.sender())
        {
            continue;
        }
        drop(header);
        return match kind {
            Type::MethodReturn => Ok(reply),
            _ => Err(zbus::Error::from(reply)),
        };
    }
    Err(zbus::Error::InputOutput(Arc::new(io::Error::new(
        io::ErrorKind::BrokenPipe,
        format!(
            "our bus connection closed while waiting for the reply to {}",
            member.as_deref().unwrap_or("a call")
        ),
    ))))
}

/// Calls `member` of the bus daemon with a string argument.
async fn daemon(conn: &zbus::Connection, member: &str, arg: &str) -> zbus::Result<Message> {
    let msg =
        method_call(Replier::Daemon, DAEMON_PATH, DAEMON_INTERFACE, member)?.build(&(arg,))?;
    call(conn, Replier::Daemon, msg).await
}

/// The unique name that owns `name`, as the daemon says.
pub(crate) async fn get_name_owner(
    conn: &zbus::Connection,
    name: &BusName<'_>,
) -> zbus::Result<OwnedUniqueName> {
    let reply = daemon(conn, "GetNameOwner", name.as_str()).await?;
    let body = reply.body();
    let owner: UniqueName<'_> = body.deserialize()?;
    Ok(owner.into())
}

/// Whether `name` has an owner, as the daemon says.
pub(crate) async fn name_has_owner(
    conn: &zbus::Connection,
    name: &UniqueName<'_>,
) -> zbus::Result<bool> {
    let reply = daemon(conn, "NameHasOwner", name.as_str()).await?;
    reply.body().deserialize()
}

/// What the daemon knows of the process behind `name`.
pub(crate) async fn connection_credentials(
    conn: &zbus::Connection,
    name: &UniqueName<'_>,
) -> zbus::Result<ConnectionCredentials> {
    let reply = daemon(conn, "GetConnectionCredentials", name.as_str()).await?;
    reply.body().deserialize()
}

/// A round trip to the bus daemon (`org.freedesktop.DBus.Peer.Ping`).
pub(crate) async fn ping_daemon(conn: &zbus::Connection) -> zbus::Result<()> {
    let msg = method_call(
        Replier::Daemon,
        DAEMON_PATH,
        "org.freedesktop.DBus.Peer",
        "Ping",
    )?
    .build(&())?;
    call(conn, Replier::Daemon, msg).await.map(drop)
}

/// Adds a match rule; returns once the daemon has confirmed it.
pub(crate) async fn add_match(conn: &zbus::Connection, rule: &str) -> zbus::Result<()> {
    daemon(conn, "AddMatch", rule).await.map(drop)
}

/// Removes a match rule without waiting: the call asks for no reply, so
/// none arrives for anyone to imitate.
pub(crate) async fn remove_match(conn: &zbus::Connection, rule: &str) -> zbus::Result<()> {
    let msg = Message::method_call(DAEMON_PATH, "RemoveMatch")?
        .destination(DAEMON)?
        .interface(DAEMON_INTERFACE)?
        .with_flags(Flags::NoReplyExpected)?
        .build(&(rule,))?;
    conn.send(&msg).await
}
