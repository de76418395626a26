//! Peer death over D-Bus, turned into the hang-up of a socket that the
//! ring watches as its liveness descriptor.
//!
//! A ring notices a dead peer by a hang-up (`POLLHUP`/`POLLRDHUP`) on its
//! liveness descriptor, in the same `poll` as its wake-up eventfd. Over
//! D-Bus we make that descriptor: a socket pair, one end for the ring,
//! the other held by a watcher thread that drops it when
//!
//! - the bus daemon says the peer's unique name has no owner any more
//!   (`NameOwnerChanged` sent by `org.freedesktop.DBus`: the peer exited,
//!   was killed, or closed its connection), or
//! - the peer's end of the ring's *hang-up socket* closes: the service
//!   makes a socket pair per ring and sends one end with the ring, so a
//!   peer that drops its ring but stays on the bus is noticed too, as on
//!   the Unix-socket path.
//!
//! Only the daemon's own signal counts. Any connection can send a
//! `NameOwnerChanged` signal straight to us (a unicast signal is delivered
//! whatever our match rules say), so we check the sender field, which the
//! daemon sets. We read the connection's messages ourselves rather than
//! through a zbus signal stream: zbus adds the match rule for such a
//! stream with its own `AddMatch` call, whose reply it takes by serial
//! alone (see `bus.rs`), so a third connection could make the
//! subscription fail with a forged error. Our `AddMatch` reply is
//! believed only from the daemon. The cost: every message on the
//! connection wakes every watcher thread of that connection (ring setup
//! is the only D-Bus traffic a ring causes).
//!
//! The watcher ends, removing its match rule and closing our end of the
//! hang-up socket (which tells the peer), when the ring drops its end.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use async_io::Async;
use futures_lite::{future, StreamExt};
use zbus::message::Type;
use zbus::names::{OwnedUniqueName, UniqueName};
use zbus::{MatchRule, Message, MessageStream};

use crate::bus;
use crate::error::Error;

/// A confirmed subscription to the disappearance of one unique name.
pub(crate) struct Subscription {
    conn: zbus::Connection,
    peer: OwnedUniqueName,
    /// Every message on the connection, from before the match rule was
    /// added. It must be read continuously: zbus stops reading the socket
    /// while any stream's queue is full.
    messages: MessageStream,
    /// The match rule the daemon may hold for us, until removed.
    rule: Option<String>,
}

impl Subscription {
    /// Subscribes to the disappearance of `peer` (a unique name). Fails
    /// with [`Error::PeerGone`] if `peer` is not on the bus now.
    ///
    /// The subscription (an `AddMatch` the daemon has confirmed) comes
    /// before the `NameHasOwner` check, so no departure can fall between
    /// the two. Both replies are believed only from the daemon.
    pub(crate) async fn new(conn: &zbus::Connection, peer: &UniqueName<'_>) -> Result<Self, Error> {
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(bus::DAEMON)?
            .path("/org/freedesktop/DBus")?
            .interface("org.freedesktop.DBus")?
            .member("NameOwnerChanged")?
            .arg(0, peer.as_str())?
            .build()
            .to_string();
        let mut this = Self {
            conn: conn.clone(),
            peer: peer.to_owned().into(),
            messages: MessageStream::from(conn),
            // Set before the call: if we are cancelled while it is under
            // way, `drop` removes the rule the daemon may have added.
            rule: Some(rule.clone()),
        };
        this.guard(async { Ok(bus::add_match(conn, &rule).await?) })
            .await?;
        if !this
            .guard(async { Ok(bus::name_has_owner(conn, peer).await?) })
            .await?
        {
            return Err(Error::PeerGone);
        }
        Ok(this)
    }

    /// Runs `step` of the setup while reading our messages, so that the
    /// connection never stalls on them; fails with [`Error::PeerGone`] if
    /// the daemon says the peer left meanwhile.
    pub(crate) async fn guard<T>(
        &mut self,
        step: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let (peer, messages) = (&self.peer, &mut self.messages);
        let departure = async {
            while let Some(msg) = messages.next().await {
                match msg {
                    Ok(msg) if departed(&msg, peer) => return Err(Error::PeerGone),
                    Ok(_) => {}
                    // Our connection failed: `step` fails too, with the
                    // reason.
                    Err(_) => break,
                }
            }
            future::pending().await
        };
        future::or(step, departure).await
    }

    /// Starts the watcher thread; returns the ring's liveness descriptor.
    /// `hangup` is our end of the ring's hang-up socket.
    pub(crate) fn start(mut self, hangup: UnixStream) -> Result<OwnedFd, Error> {
        let (ring_end, ours) = UnixStream::pair()?;
        let ours = Async::new(ours)?;
        let hangup = Async::new(hangup)?;
        std::thread::Builder::new()
            .name("sharedring-dbus-watch".into())
            .spawn(move || {
                async_io::block_on(async {
                    let (peer, messages) = (&self.peer, &mut self.messages);
                    future::or(
                        async {
                            // A unique name loses its owner exactly once.
                            // The stream's end means our own connection is
                            // gone: a ring we can no longer watch is
                            // treated as orphaned too.
                            while let Some(Ok(msg)) = messages.next().await {
                                if departed(&msg, peer) {
                                    break;
                                }
                            }
                        },
                        future::or(
                            async {
                                // Readable means end of file (or an
                                // error): the peer dropped its ring, or
                                // died.
                                let _ = hangup.readable().await;
                            },
                            async {
                                // The ring dropped its end: nobody needs
                                // this watcher any more.
                                let _ = ours.readable().await;
                            },
                        ),
                    )
                    .await;
                    // Dropping `ours` hangs up the ring's end, dropping
                    // `hangup` tells the peer.
                    drop(ours);
                    drop(hangup);
                    if let Some(rule) = self.rule.take() {
                        let _ = bus::remove_match(&self.conn, &rule).await;
                    }
                });
            })?;
        Ok(ring_end.into())
    }
}

impl Drop for Subscription {
    /// A subscription dropped before its watcher started (the setup failed
    /// or was cancelled) removes its match rule from a short-lived thread:
    /// we may be inside an executor that `block_on` would stall.
    fn drop(&mut self) {
        if let Some(rule) = self.rule.take() {
            let conn = self.conn.clone();
            let _ = std::thread::Builder::new()
                .name("sharedring-dbus-unwatch".into())
                .spawn(move || zbus::block_on(bus::remove_match(&conn, &rule)));
        }
    }
}

/// Whether `msg` is the bus daemon's word that `peer` left the bus.
fn departed(msg: &Message, peer: &UniqueName<'_>) -> bool {
    let header = msg.header();
    if header.message_type() != Type::Signal
        || !bus::is_daemon(header.sender())
        || header
            .interface()
            .is_none_or(|i| i.as_str() != "org.freedesktop.DBus")
        || header
            .member()
            .is_none_or(|m| m.as_str() != "NameOwnerChanged")
    {
        return false;
    }
    matches!(
        msg.body().deserialize::<(&str, &str, &str)>(),
        Ok((name, _, new_owner)) if name == peer.as_str() && new_owner.is_empty()
    )
}
