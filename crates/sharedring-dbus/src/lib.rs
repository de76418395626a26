//! Set up [`sharedring`] rings over D-Bus, the way desktop and system
//! services pass descriptors, with peer death taken from the bus.
//!
//! One call on each side: a service exports a [`RingServer`] at an object
//! path and [`accept`](RingServer::accept)s rings; a client calls
//! [`open`] with the service's bus name. The descriptors travel as D-Bus
//! file descriptors (type `h`), the setup values as plain arguments, and
//! the side that receives them validates all of it exactly as on the
//! Unix-socket path ([`sharedring::Sender::from_offer`]). Neither side
//! trusts the other; the bus daemon is trusted to route messages and to
//! report who called and who left. Other connections on the bus are not
//! trusted at all: every reply and signal this crate acts on is checked to
//! come from the connection that must send it (the sender field, which the
//! daemon sets), so a third connection's forged replies and signals are
//! dropped (see `docs/THREAT-MODEL.md`). Make bus connections with
//! [`connect`]: it hands out only connections that survived a pitfall of
//! zbus that any connection on the bus can spring on a process starting
//! up.
//!
//! ```no_run
//! use sharedring::{Options, Receiver, Sender};
//! use sharedring_dbus::{open, RingServer, DEFAULT_PATH};
//!
//! // The service (one process): keeps the receiving end of each ring.
//! let bus = sharedring_dbus::connect(zbus::blocking::Connection::session)?;
//! bus.request_name("org.sharedring.Example")?;
//! let server = RingServer::<Receiver<f64>>::serve(&bus, DEFAULT_PATH, &Options::new())?;
//!
//! // A client (another process): gets the sending end.
//! let client_bus = sharedring_dbus::connect(zbus::blocking::Connection::session)?;
//! let mut tx: Sender<f64> =
//!     open(&client_bus, "org.sharedring.Example", DEFAULT_PATH, &Options::new())?;
//! tx.send(&[1.5, 2.5], None)?;
//!
//! // Back in the service.
//! let (mut rx, caller) = server.accept(None)?;
//! let mut buf = [0f64; 16];
//! let n = rx.recv(&mut buf, None)?;
//! assert_eq!(buf[..n].iter().sum::<f64>(), 4.0);
//! # let _ = caller;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The interface
//!
//! Interface [`INTERFACE`] (`org.sharedring.Ring2`), by default at object
//! path [`DEFAULT_PATH`] (`/org/sharedring/Ring`), has one method:
//!
//! ```text
//! Open(u kind, u end, u elem_size, t type_tag)
//!   -> (u kind, u creator, u elem_size, u elem_align, t type_tag,
//!       t capacity, u max_msg, t region_len, u flags,
//!       h memory, h data, h room, h hangup)
//! ```
//!
//! - `kind`: 1 for a ring of fixed-size elements, 2 for a message ring;
//!   `end`: the end the caller wants, 1 for the sender, 2 for the
//!   receiver; `elem_size` and `type_tag`: its element type (1 and 0 for
//!   message rings; see `sharedring::Element`). The service refuses a
//!   request that does not match what it serves.
//! - `creator`: the end the service kept (the other one); `elem_size`,
//!   `elem_align`, `type_tag`: the element type; `capacity` (elements, or
//!   bytes for a message ring), `max_msg` (message rings; 0 otherwise) and
//!   `region_len` (bytes): the ring's geometry; `flags`: bit 0 set if the
//!   memory uses huge pages, all other bits zero. These are the fields of
//!   a `sharedring::Offer`, and the caller checks every one of them as the
//!   socket handshake does.
//! - `memory`: the sealed memfd holding the ring; `data`: the eventfd the
//!   receiver waits on; `room`: the eventfd the sender waits on; `hangup`:
//!   one end of a socket pair whose other end the service keeps for this
//!   ring (never read or written: its hang-up tells either side that the
//!   other dropped its end of the ring). Exactly these four descriptors are
//!   attached.
//!
//! The values and descriptors are those of the Unix-socket handshake
//! (see `docs/LAYOUT.md` and the `sharedring` crate's wire format). Errors
//! are named under [`ERROR_PREFIX`]; see [`errors`].
//!
//! # Peer death
//!
//! A ring notices a dead peer by the hang-up of its liveness descriptor.
//! Over D-Bus each side makes that descriptor itself: one end of a socket
//! pair goes to the ring, the other to a watcher thread subscribed to the
//! daemon's `NameOwnerChanged` signal for the peer's unique name, which drops
//! its end when the name loses its owner (the peer exited, was killed, or
//! closed its connection), or when the ring's `hangup` socket hangs up (the
//! peer dropped its end of the ring but stays on the bus). The ring then
//! reports
//! [`sharedring::Error::PeerGone`], after delivering everything the peer
//! committed, as on the socket path (a sender dropped cleanly, or closed,
//! ends its stream in the ring itself: its receiver reports
//! [`sharedring::Error::Closed`] instead). The subscription is made before the
//! peer is checked to be on the bus, so no departure is missed. If our own
//! bus connection closes, the peer can no longer be watched and its rings
//! report `PeerGone` too. There is one watcher thread per live ring; it
//! ends with the ring.
//!
//! # Testing with a private bus
//!
//! With the `test-bus` feature, `PrivateBus` starts a `dbus-daemon` on a
//! socket in a fresh temporary directory and stops it when dropped; this
//! crate's tests and benchmark use it. It is a testing aid, not part of the
//! stable API, and is off by default.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod bus;
mod client;
mod connect;
mod end;
mod error;
#[cfg(feature = "test-bus")]
mod private_bus;
mod server;
mod watch;

pub use client::{open, open_async};
pub use connect::{connect, connect_async, CONNECT_ATTEMPTS};
pub use end::RingEnd;
pub use error::Error;
#[cfg(feature = "test-bus")]
pub use private_bus::PrivateBus;
pub use server::{Caller, RingServer, BACKLOG};

pub use zbus;

/// The D-Bus interface name of the ring service.
pub const INTERFACE: &str = "org.sharedring.Ring2";

/// The object path the examples serve rings at.
pub const DEFAULT_PATH: &str = "/org/sharedring/Ring";

/// The method that asks for a ring.
pub const METHOD: &str = "Open";

/// The signature of `Open`'s arguments.
pub const CALL_SIGNATURE: &str = "uuut";

/// The signature of `Open`'s reply.
pub const REPLY_SIGNATURE: &str = "uuuuttutuhhhh";

/// `flags` bit 0: the ring's memory uses huge pages.
pub const FLAG_HUGETLB: u32 = 1;

/// The prefix of the error names `Open` answers with.
pub const ERROR_PREFIX: &str = "org.sharedring.Ring2.Error.";

/// The error names `Open` answers with. A client gets them as
/// [`Error::Refused`].
pub mod errors {
    /// The caller asked for the end the service keeps, or another element
    /// size.
    pub const MISMATCH: &str = "org.sharedring.Ring2.Error.Mismatch";
    /// Too many rings wait to be accepted ([`crate::BACKLOG`]).
    pub const BUSY: &str = "org.sharedring.Ring2.Error.Busy";
    /// The caller left the bus before its ring was made.
    pub const GONE: &str = "org.sharedring.Ring2.Error.Gone";
    /// Creating the ring failed on the service's side.
    pub const FAILED: &str = "org.sharedring.Ring2.Error.Failed";
}
