//! Errors of the facade: who did what wrong.

use std::fmt;
use std::io;

/// What went wrong while setting a ring up over a socket.
///
/// Errors that name the peer ("peer sent ...") mean the peer is buggy or
/// hostile; errors that name the kernel keep the errno.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A socket operation failed (the kernel's errno is kept).
    Io(io::Error),
    /// The peer closed the socket before the handshake finished.
    PeerClosed,
    /// The peer closed the socket without offering a ring (while this
    /// side waited to accept one): typically both sides called `accept`.
    ClosedBeforeOffer,
    /// The peer did not answer within the handshake timeout.
    TimedOut,
    /// The setup message is shorter than the protocol's fixed size.
    ShortMessage {
        /// Bytes received.
        got: usize,
    },
    /// The setup message does not start with the handshake magic.
    BadMagic {
        /// The value found.
        found: u64,
    },
    /// The peer speaks another handshake version.
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The peer offers another kind of ring (elements where we expect
    /// messages, or the other way round).
    WrongKind {
        /// The kind code found.
        found: u32,
        /// The kind code we expect.
        expected: u32,
    },
    /// Both sides want the same end: two senders, or two receivers.
    SameEnd {
        /// The end both sides want.
        end: crate::End,
    },
    /// The peer claims a role code that is neither sender nor receiver.
    RoleMismatch {
        /// The role code the peer claimed for itself.
        peer_role: u32,
    },
    /// The two ends use different element types (or the same name for
    /// types of a different size or alignment).
    TypeMismatch {
        /// Our element type: name, size, alignment.
        ours: String,
        /// The peer's, as its offer describes it.
        peer: String,
    },
    /// The peer's element size differs from ours.
    ElementSizeMismatch {
        /// Our element size.
        expected: u32,
        /// The peer's.
        found: u32,
    },
    /// The capacity is not a power of two, or the ring would exceed the
    /// size we accept.
    BadCapacity {
        /// The capacity the peer asked for, in elements.
        capacity: u64,
        /// The region size that capacity implies, in bytes, if computable.
        region_bytes: Option<u64>,
        /// The largest region we accept, in bytes.
        limit: u64,
    },
    /// The peer's maximum message size is above what the capacity allows
    /// or what we accept.
    BadMaxMessage {
        /// The maximum the peer asked for.
        max_msg: u32,
        /// The largest we accept.
        limit: u64,
    },
    /// The peer's region length disagrees with the one its capacity implies.
    RegionLengthMismatch {
        /// The length we computed.
        expected: u64,
        /// The length the peer claimed.
        found: u64,
    },
    /// The peer attached the wrong number of descriptors.
    DescriptorCount {
        /// How many the protocol needs.
        expected: usize,
        /// How many arrived (extra ones were closed).
        got: usize,
    },
    /// The kernel truncated the descriptors (`MSG_CTRUNC`): the peer sent
    /// more than any honest peer would. The ones that arrived were closed.
    DescriptorsTruncated,
    /// The shared-memory descriptor failed validation.
    Memory(shmem_seal::Error),
    /// A wake-up descriptor failed validation.
    Eventfd(eventfd_notify::Error),
    /// The ring header in the shared memory failed validation.
    Ring(spsc_core::SetupError),
    /// The peer refused our offer, with the reason code it sent.
    Refused {
        /// The peer's reason.
        reason: RefusalReason,
    },
    /// The peer's acknowledgement is malformed.
    BadAck,
    /// The peer sent a setup message where its answer should be: both
    /// sides called `create`. Exactly one side creates a ring; the other
    /// calls `accept`.
    BothCreated,
}

/// Why the accepting peer refused a ring, as it reported it in its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The setup message was malformed or of another version or kind.
    Message,
    /// Element size or role mismatch.
    Mismatch,
    /// The capacity is too big or not a power of two.
    Capacity,
    /// The descriptors were wrong.
    Descriptors,
    /// The ring header did not validate.
    Ring,
    /// A reason code this version does not know.
    Other(u32),
}

impl RefusalReason {
    pub(crate) fn code(self) -> u32 {
        match self {
            Self::Message => 1,
            Self::Mismatch => 2,
            Self::Capacity => 3,
            Self::Descriptors => 4,
            Self::Ring => 5,
            Self::Other(c) => c,
        }
    }

    pub(crate) fn from_code(code: u32) -> Self {
        match code {
            1 => Self::Message,
            2 => Self::Mismatch,
            3 => Self::Capacity,
            4 => Self::Descriptors,
            5 => Self::Ring,
            c => Self::Other(c),
        }
    }
}

/// What the refusal means, and where to look: the accepting side's own
/// error says exactly what it refused.
impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Message => f.write_str(
                "it could not read our setup message (another sharedring version or ring kind)",
            ),
            Self::Mismatch => f.write_str(
                "the two ends do not match (same end on both sides, or another element type)",
            ),
            Self::Capacity => f.write_str(
                "the ring is larger than it accepts (its Options::max_region or \
                 Options::max_msg)",
            ),
            Self::Descriptors => f.write_str("it refused our descriptors"),
            Self::Ring => f.write_str("it refused the ring header"),
            Self::Other(c) => write!(f, "reason code {c}, unknown to this version"),
        }
    }
}

impl HandshakeError {
    /// The reason code we send the peer when we refuse its offer.
    pub(crate) fn refusal(&self) -> Option<RefusalReason> {
        Some(match self {
            Self::ShortMessage { .. }
            | Self::BadMagic { .. }
            | Self::UnsupportedVersion { .. }
            | Self::WrongKind { .. } => RefusalReason::Message,
            Self::RoleMismatch { .. }
            | Self::SameEnd { .. }
            | Self::TypeMismatch { .. }
            | Self::ElementSizeMismatch { .. }
            | Self::RegionLengthMismatch { .. } => RefusalReason::Mismatch,
            Self::BadCapacity { .. } | Self::BadMaxMessage { .. } => RefusalReason::Capacity,
            Self::DescriptorCount { .. }
            | Self::DescriptorsTruncated
            | Self::Memory(_)
            | Self::Eventfd(_) => RefusalReason::Descriptors,
            Self::Ring(_) => RefusalReason::Ring,
            _ => return None,
        })
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "handshake socket error: {e}"),
            Self::PeerClosed => f.write_str("peer closed the socket during the handshake"),
            Self::ClosedBeforeOffer => f.write_str(
                "peer closed the socket without offering a ring: if it called accept too, \
                 one side must call create instead",
            ),
            Self::TimedOut => f.write_str(
                "peer did not complete the handshake within the handshake timeout \
                 (Options::handshake_timeout); if both sides called accept, one of them \
                 must call create instead",
            ),
            Self::ShortMessage { got } => {
                write!(
                    f,
                    "peer sent a {got}-byte setup message, the protocol needs 64"
                )
            }
            Self::BadMagic { found } => {
                write!(
                    f,
                    "peer's setup message has magic {found:#018x}, not sharedring's"
                )
            }
            Self::UnsupportedVersion { found } => write!(
                f,
                "peer speaks handshake version {found}, we speak {}: both sides need the \
                 same sharedring handshake version",
                crate::setup::wire::VERSION
            ),
            Self::WrongKind { found, expected } => {
                let name = |k: u32| match crate::RingKind::from_code(k) {
                    crate::RingKind::Elements => "an element ring (Sender/Receiver)".to_owned(),
                    crate::RingKind::Messages => {
                        "a message ring (MsgSender/MsgReceiver)".to_owned()
                    }
                    _ => format!("a ring of unknown kind {k}"),
                };
                write!(
                    f,
                    "peer offers {}, this side expects {}: use the matching end on both sides",
                    name(*found),
                    name(*expected)
                )
            }
            Self::SameEnd { end } => {
                let (want, other) = match end {
                    crate::End::Sender => ("senders", "Receiver (or MsgReceiver)"),
                    crate::End::Receiver => ("receivers", "Sender (or MsgSender)"),
                };
                write!(
                    f,
                    "both sides are {want}: the peer kept that end when it created the ring, \
                     so this side must be the {other}"
                )
            }
            Self::RoleMismatch { peer_role } => write!(
                f,
                "peer claims role code {peer_role}, which is neither sender (1) nor receiver (2)"
            ),
            Self::TypeMismatch { ours, peer } => write!(
                f,
                "the peer's ring carries {peer}, this side's carries {ours}: both ends must \
                 use the same element type (see sharedring::Element)"
            ),
            Self::ElementSizeMismatch { expected, found } => {
                write!(f, "peer's elements are {found} B, ours are {expected} B")
            }
            Self::BadCapacity {
                capacity,
                region_bytes,
                limit,
            } => match region_bytes {
                Some(bytes) => write!(
                    f,
                    "peer asked for a capacity of {capacity} ({bytes} B), \
                     we accept powers of two up to {limit} B"
                ),
                None => write!(f, "peer asked for an impossible capacity of {capacity}"),
            },
            Self::BadMaxMessage { max_msg, limit } => write!(
                f,
                "peer asked for messages of up to {max_msg} B, we accept up to {limit} B \
                 (to accept more, raise Options::max_msg on this side)"
            ),
            Self::RegionLengthMismatch { expected, found } => write!(
                f,
                "peer claims a {found} B region, its capacity implies {expected} B"
            ),
            Self::DescriptorCount { expected, got } => write!(
                f,
                "peer attached {got} descriptors, the protocol needs {expected} (extra ones closed)"
            ),
            Self::DescriptorsTruncated => {
                f.write_str("peer attached more descriptors than fit; all were closed")
            }
            Self::Memory(e) => write!(f, "peer's shared memory refused: {e}"),
            Self::Eventfd(e) => write!(f, "peer's wake-up descriptor refused: {e}"),
            Self::Ring(e) => write!(f, "ring header refused: {e}"),
            Self::Refused { reason } => write!(f, "peer refused the ring: {reason}"),
            Self::BadAck => f.write_str("peer's acknowledgement is malformed"),
            Self::BothCreated => f.write_str(
                "both sides called create: exactly one side creates the ring, \
                 the other must call accept",
            ),
        }
    }
}

/// `Display` includes the wrapped error's own text, so `source()` skips it
/// and returns what *it* wraps (the errno, typically): an error-chain
/// reporter prints every piece once.
impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => e.source(),
            Self::Memory(e) => e.source(),
            Self::Eventfd(e) => e.source(),
            Self::Ring(e) => e.source(),
            _ => None,
        }
    }
}

impl From<io::Error> for HandshakeError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Self::TimedOut,
            // EPIPE (we wrote after the peer closed) and ECONNRESET (it
            // closed with our message unread) are the peer hanging up.
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Self::PeerClosed,
            _ => Self::Io(e),
        }
    }
}

/// Errors of sending and receiving, and of setting up.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer is gone: it died (killed, aborted, panicked, exited without
    /// dropping its end) or hung up without closing its stream. A receiver
    /// reports this only after it has delivered everything the peer
    /// committed.
    PeerGone,
    /// The sender closed its stream ([`Sender::close`](crate::Sender::close),
    /// [`MsgSender::close`](crate::MsgSender::close), or a drop outside a
    /// panic) and everything it sent has been received: the end of the
    /// stream, as `io::Read`'s `Ok(0)`. Reported from then on. A sender
    /// that dies is [`Error::PeerGone`] instead.
    Closed,
    /// The timeout passed. `done` elements were sent (or received) before.
    TimedOut {
        /// Elements moved before the timeout.
        done: usize,
    },
    /// The peer broke the ring protocol; it is treated as gone from now on.
    Corrupted(spsc_core::Corruption),
    /// A message is longer than the ring's maximum (our caller's error).
    MessageTooLarge {
        /// The message's length.
        len: usize,
        /// The ring's maximum message size.
        max: usize,
    },
    /// The next message does not fit the caller's buffer; it stays in the
    /// ring.
    BufferTooSmall {
        /// The message's length.
        len: usize,
        /// The buffer's length.
        buf: usize,
    },
    /// Setting the ring up failed.
    Handshake(HandshakeError),
    /// Creating our own shared memory failed.
    Memory(shmem_seal::Error),
    /// Creating or using a wake-up descriptor failed.
    Eventfd(eventfd_notify::Error),
    /// A ring geometry we were asked for is impossible (our caller's error).
    Layout(spsc_core::LayoutError),
    /// The ring we were asked to create is larger than this side's own
    /// [`Options::max_region`](crate::Options::max_region) (our caller's
    /// error; a peer with the same limit would refuse it).
    RingTooLarge {
        /// The region the ring needs, in bytes (header included).
        bytes: u64,
        /// The limit, in bytes of data.
        limit: u64,
    },
    /// A capacity was given in the wrong unit for this kind of ring (our
    /// caller's error).
    CapacityUnit {
        /// The unit given: "elements" or "bytes".
        given: &'static str,
        /// The kind of ring: "element" or "message".
        ring: &'static str,
    },
    /// A system call failed.
    Io(io::Error),
    /// This process ran out of file descriptors (`EMFILE`, or the system's
    /// `ENFILE`) while setting up or using a ring. Each ring holds about
    /// five: the socket, the memfd, two eventfds and an io_uring for
    /// wake-ups.
    OutOfDescriptors {
        /// This process's descriptor limit (`RLIMIT_NOFILE`), if known.
        limit: Option<u64>,
    },
}

impl Error {
    /// Whether `e` (or what it wraps) is the kernel saying that we are out
    /// of descriptors.
    fn is_exhaustion(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(e) = cur {
            let raw = e
                .downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error)
                .or_else(|| {
                    e.downcast_ref::<rustix::io::Errno>()
                        .map(|n| n.raw_os_error())
                });
            if matches!(raw, Some(r) if r == rustix::io::Errno::MFILE.raw_os_error()
                || r == rustix::io::Errno::NFILE.raw_os_error())
            {
                return true;
            }
            cur = e.source();
        }
        false
    }

    /// Running out of descriptors looks the same wherever it happens: one
    /// variant, one message, one fix.
    fn out_of_descriptors() -> Self {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        Error::OutOfDescriptors { limit }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if Self::is_exhaustion(&e) {
            return Self::out_of_descriptors();
        }
        Error::Io(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerGone => f.write_str("peer is gone"),
            Self::Closed => {
                f.write_str("the sender closed its stream and everything it sent was received")
            }
            Self::TimedOut { done } => write!(f, "timed out after moving {done} elements"),
            Self::Corrupted(c) => write!(f, "{c}; the peer is treated as gone"),
            Self::MessageTooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} B exceeds the ring's maximum of {max} B"
                )
            }
            Self::BufferTooSmall { len, buf } => {
                write!(f, "message of {len} B does not fit a buffer of {buf} B")
            }
            Self::Handshake(e) => write!(f, "ring setup failed: {e}"),
            Self::Memory(e) => write!(f, "shared memory: {e}"),
            Self::Eventfd(e) => write!(f, "wake-up descriptor: {e}"),
            Self::Layout(e) => write!(f, "ring layout: {e}"),
            Self::RingTooLarge { bytes, limit } => write!(
                f,
                "a ring of {bytes} B is larger than Options::max_region ({limit} B of data): \
                 choose a smaller capacity, or raise max_region on both sides"
            ),
            Self::CapacityUnit { given, ring } => {
                let setter = if *ring == "message" {
                    "Options::capacity_bytes"
                } else {
                    "Options::capacity_elements"
                };
                write!(
                    f,
                    "capacity given in {given} for a {ring} ring: size it with {setter}"
                )
            }
            Self::Io(e) => write!(f, "{e}"),
            Self::OutOfDescriptors { limit } => {
                f.write_str("this process has run out of file descriptors")?;
                if let Some(n) = limit {
                    write!(f, " (limit {n})")?;
                }
                f.write_str(
                    ": each ring holds about five; raise the limit (ulimit -n, \
                     RLIMIT_NOFILE) or drop rings that are no longer used",
                )
            }
        }
    }
}

/// As for [`HandshakeError`]: `Display` includes the wrapped error's text,
/// and `source()` returns what that error wraps, so nothing is printed
/// twice by an error-chain reporter.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Corrupted(c) => c.source(),
            Self::Handshake(e) => e.source(),
            Self::Memory(e) => e.source(),
            Self::Eventfd(e) => e.source(),
            Self::Layout(e) => e.source(),
            Self::Io(e) => e.source(),
            _ => None,
        }
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        let exhausted = match &e {
            HandshakeError::Io(io) => Self::is_exhaustion(io),
            HandshakeError::Memory(m) => Self::is_exhaustion(m),
            HandshakeError::Eventfd(n) => Self::is_exhaustion(n),
            _ => false,
        };
        if exhausted {
            return Self::out_of_descriptors();
        }
        Self::Handshake(e)
    }
}

impl From<spsc_core::Corruption> for Error {
    fn from(c: spsc_core::Corruption) -> Self {
        Self::Corrupted(c)
    }
}

impl From<eventfd_notify::Error> for Error {
    fn from(e: eventfd_notify::Error) -> Self {
        if Self::is_exhaustion(&e) {
            return Self::out_of_descriptors();
        }
        Self::Eventfd(e)
    }
}

impl From<shmem_seal::Error> for Error {
    fn from(e: shmem_seal::Error) -> Self {
        if Self::is_exhaustion(&e) {
            return Self::out_of_descriptors();
        }
        Self::Memory(e)
    }
}

impl From<spsc_core::LayoutError> for Error {
    fn from(e: spsc_core::LayoutError) -> Self {
        Self::Layout(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::PeerGone => io::Error::new(io::ErrorKind::BrokenPipe, e),
            Error::Closed => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            Error::TimedOut { .. } => io::Error::new(io::ErrorKind::TimedOut, e),
            Error::Corrupted(_) => io::Error::new(io::ErrorKind::InvalidData, e),
            Error::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}
