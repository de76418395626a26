//! Errors of setting rings up over D-Bus: who did what wrong.

use std::fmt;
use std::io;

/// What went wrong while offering or accepting a ring over D-Bus.
///
/// Errors about the peer's *reply* (its signature, flags, descriptors) mean
/// the peer is buggy or hostile; every value and descriptor that passes
/// those checks is then validated by `sharedring` exactly as on the
/// Unix-socket path, and a failure there is [`Error::Ring`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The bus or our connection to it failed, or the bus answered with one
    /// of its own errors (`org.freedesktop.DBus.Error.*`: no such name, the
    /// peer disconnected without replying, ...).
    Bus(zbus::Error),
    /// The peer refused the ring with one of this interface's errors
    /// (`org.sharedring.Ring2.Error.*`, see [`crate::errors`]).
    Refused {
        /// The D-Bus error name.
        name: String,
        /// The peer's description, if it sent one.
        message: Option<String>,
    },
    /// The peer's reply does not have the interface's signature: a wrong
    /// number of values or descriptors, or wrong types.
    ReplySignature {
        /// The signature of the interface ([`crate::REPLY_SIGNATURE`]).
        expected: &'static str,
        /// The signature the peer sent.
        found: String,
    },
    /// The peer's reply has the right signature but cannot be decoded (a
    /// descriptor index beyond the descriptors attached, say).
    ReplyBody(zbus::Error),
    /// The peer's reply sets flags this version does not know.
    UnknownFlags {
        /// The flags the peer sent.
        flags: u32,
    },
    /// The ring's hang-up descriptor in the peer's reply is not a socket.
    HangupNotSocket,
    /// The peer left the bus before the setup finished.
    PeerGone,
    /// The peer did not answer in time, or no client came before the
    /// timeout given to [`crate::RingServer::accept`].
    TimedOut,
    /// The server can accept no more rings: its connection is closed.
    Closed,
    /// Creating or validating the ring failed; a peer's bad values or
    /// descriptors are [`sharedring::Error::Handshake`].
    Ring(sharedring::Error),
    /// A system call of ours failed.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bus(e) => write!(f, "D-Bus: {e}"),
            Self::Refused { name, message } => match message {
                Some(m) => write!(f, "peer refused the ring: {name}: {m}"),
                None => write!(f, "peer refused the ring: {name}"),
            },
            Self::ReplySignature { expected, found } => write!(
                f,
                "peer's reply has signature \"{found}\", the interface needs \"{expected}\""
            ),
            Self::ReplyBody(e) => write!(f, "peer's reply cannot be decoded: {e}"),
            Self::UnknownFlags { flags } => {
                write!(f, "peer's reply sets unknown flags {flags:#x}")
            }
            Self::HangupNotSocket => f.write_str("peer's hang-up descriptor is not a socket"),
            Self::PeerGone => f.write_str("peer left the bus during the setup"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Closed => f.write_str("the connection is closed"),
            Self::Ring(e) => write!(f, "{e}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bus(e) | Self::ReplyBody(e) => Some(e),
            Self::Ring(e) => Some(e),
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, message, _) if name.starts_with(crate::ERROR_PREFIX) => {
                Self::Refused {
                    name: name.to_string(),
                    message,
                }
            }
            e => Self::Bus(e),
        }
    }
}

impl From<zbus::fdo::Error> for Error {
    fn from(e: zbus::fdo::Error) -> Self {
        Self::from(zbus::Error::from(e))
    }
}

impl From<sharedring::Error> for Error {
    fn from(e: sharedring::Error) -> Self {
        Self::Ring(e)
    }
}

impl From<sharedring::HandshakeError> for Error {
    fn from(e: sharedring::HandshakeError) -> Self {
        Self::Ring(sharedring::Error::Handshake(e))
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}
