//! Peer death over D-Bus, turned into the hang-up of a socket that the
//! ring watches as its liveness descriptor.
//!
//! A ring notices a dead peer by a hang-up (`POLLHUP`/`POLLRDHUP`) on its
//! liveness descriptor, in the same `poll` as its wake-up eventfd. Over
//! D-Bus we make that descriptor: a socket pair, one end for the ring,
//! the other held by a watcher thread that drops it when
//!
//! - the bus says the peer's unique name has no owner any more
//!   (`NameOwnerChanged`: the peer exited, was killed, or closed its
//!   connection), or
//! - the peer's end of the ring's *hang-up socket* closes: the service
//!   makes a socket pair per ring and sends one end with the ring, so a
//!   peer that drops its ring but stays on the bus is noticed too, as on
//!   the Unix-socket path.
//!
//! The watcher ends, releasing its match rule and closing our end of the
//! hang-up socket (which tells the peer), when the ring drops its end.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use async_io::Async;
use futures_lite::{future, StreamExt};
use zbus::fdo::{DBusProxy, NameOwnerChangedStream};
use zbus::names::{BusName, UniqueName};

use crate::error::Error;

/// A confirmed subscription to the disappearance of one unique name.
pub(crate) struct Subscription {
    changes: NameOwnerChangedStream,
}

impl Subscription {
    /// Subscribes to the disappearance of `peer` (a unique name). Fails
    /// with [`Error::PeerGone`] if `peer` is not on the bus now.
    ///
    /// The subscription (an `AddMatch` the daemon has confirmed) comes
    /// before the `NameHasOwner` check, so no departure can fall between
    /// the two.
    pub(crate) async fn new(conn: &zbus::Connection, peer: &UniqueName<'_>) -> Result<Self, Error> {
        let dbus = DBusProxy::new(conn).await?;
        let changes = dbus
            .receive_name_owner_changed_with_args(&[(0, peer.as_str())])
            .await?;
        if !dbus.name_has_owner(BusName::from(peer.as_ref())).await? {
            return Err(Error::PeerGone);
        }
        Ok(Self { changes })
    }

    /// Starts the watcher thread; returns the ring's liveness descriptor.
    /// `hangup` is our end of the ring's hang-up socket.
    pub(crate) fn start(self, hangup: UnixStream) -> Result<OwnedFd, Error> {
        let mut changes = self.changes;
        let (ring_end, ours) = UnixStream::pair()?;
        let ours = Async::new(ours)?;
        let hangup = Async::new(hangup)?;
        std::thread::Builder::new()
            .name("sharedring-dbus-watch".into())
            .spawn(move || {
                async_io::block_on(future::or(
                    async {
                        // A unique name loses its owner exactly once. The
                        // stream's end means our own connection is gone:
                        // a ring we can no longer watch is treated as
                        // orphaned too.
                        while let Some(signal) = changes.next().await {
                            if signal.args().is_ok_and(|a| a.new_owner().is_none()) {
                                break;
                            }
                        }
                    },
                    future::or(
                        async {
                            // Readable means end of file (or an error):
                            // the peer dropped its ring, or died.
                            let _ = hangup.readable().await;
                        },
                        async {
                            // The ring dropped its end: nobody needs this
                            // watcher any more.
                            let _ = ours.readable().await;
                        },
                    ),
                ));
                // Dropping `ours` hangs up the ring's end, dropping
                // `hangup` tells the peer, dropping `changes` removes the
                // match rule.
                drop(ours);
                drop(hangup);
                drop(changes);
            })?;
        Ok(ring_end.into())
    }
}
