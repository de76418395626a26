//! Setting a ring up: the handshake that moves its descriptors to the peer
//! over a connected Unix socket, split by concern:
//!
//! - [`parts`]: the descriptors we own (creating the memory and wake-ups,
//!   opening the ones the peer sent);
//! - [`checks`]: the checks of what the peer sent;
//! - [`transport`]: the socket I/O, all under one deadline;
//! - [`wire`]: the bytes of the setup message and the answer.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use spsc_core::{MsgLayout, RawRegion, RingLayout, KIND_ELEMENTS, KIND_MESSAGES};

use crate::error::{Error, HandshakeError};
use crate::options::Options;

pub(crate) mod checks;
pub(crate) mod parts;
pub(crate) mod transport;
pub(crate) mod wire;

pub(crate) use checks::{check_msg_setup, check_setup};
pub use parts::PeerFds;
pub(crate) use parts::{create_parts, open_parts, Parts};
use transport::Deadline;
use wire::{Role, Setup};

/// The shape of a ring: fixed-size elements, or variable-size messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Geometry {
    Elements(RingLayout),
    Messages(MsgLayout),
}

impl Geometry {
    pub(crate) fn region_size(&self) -> usize {
        match self {
            Self::Elements(l) => l.region_size(),
            Self::Messages(l) => l.region_size(),
        }
    }

    /// Capacity: elements, or bytes for messages.
    pub(crate) fn capacity(&self) -> usize {
        match self {
            Self::Elements(l) => l.capacity(),
            Self::Messages(l) => l.capacity(),
        }
    }

    /// The maximum message size (0 for element rings).
    pub(crate) fn max_msg(&self) -> usize {
        match self {
            Self::Elements(_) => 0,
            Self::Messages(l) => l.max_msg(),
        }
    }

    fn setup(&self, creator: Role, opts: &Options) -> Setup {
        let (kind, elem_size) = match self {
            Self::Elements(l) => (KIND_ELEMENTS, l.elem_size()),
            Self::Messages(_) => (KIND_MESSAGES, 1),
        };
        let (capacity, max_msg) = (self.capacity(), self.max_msg());
        Setup {
            kind,
            creator: creator as u32,
            elem_size: elem_size as u32,
            capacity: capacity as u64,
            region_len: self.region_size() as u64,
            flags: if opts.hugetlb.is_some() {
                wire::FLAG_HUGETLB
            } else {
                0
            },
            max_msg: max_msg as u32,
        }
    }
}

impl From<RingLayout> for Geometry {
    fn from(l: RingLayout) -> Self {
        Self::Elements(l)
    }
}

impl From<MsgLayout> for Geometry {
    fn from(l: MsgLayout) -> Self {
        Self::Messages(l)
    }
}

/// The setup values for a ring of `geometry` created by `creator`.
pub(crate) fn setup_for(creator: Role, geometry: &Geometry, opts: &Options) -> Setup {
    geometry.setup(creator, opts)
}

/// The creating side of the handshake: makes the ring, initialises it with
/// `init`, offers it over `sock`, and waits for the peer's acceptance, all
/// within one handshake deadline.
pub(crate) fn create_over<H>(
    sock: &UnixStream,
    me: Role,
    geometry: Geometry,
    opts: &Options,
    init: impl FnOnce(RawRegion) -> Result<H, spsc_core::SetupError>,
) -> Result<(H, Parts), Error> {
    let (parts, peer) = create_parts(me, &geometry, opts)?;
    let handle = init(parts.region()).map_err(HandshakeError::Ring)?;
    let setup = setup_for(me, &geometry, opts);
    let deadline = Deadline::after(opts.handshake_timeout);
    transport::send_setup(sock.as_fd(), &setup, &peer, deadline)?;
    // Our copies of the peer's descriptors are no longer needed.
    drop(peer);
    transport::recv_ack(sock.as_fd(), deadline)?;
    Ok((handle, parts))
}

/// The accepting side of the handshake: receives an offer, validates it
/// with `check` against what *we* expect, maps and attaches with `attach`,
/// and answers (a refusal names the reason, so the peer gets a clear
/// error), all within one handshake deadline.
pub(crate) fn accept_over<H>(
    sock: &UnixStream,
    me: Role,
    opts: &Options,
    check: impl FnOnce(&Setup, Role, &Options) -> Result<Geometry, HandshakeError>,
    attach: impl FnOnce(RawRegion, &Geometry) -> Result<H, spsc_core::SetupError>,
) -> Result<(H, Parts), Error> {
    let deadline = Deadline::after(opts.handshake_timeout);
    let sock = sock.as_fd();
    let result = (|| -> Result<(H, Parts), HandshakeError> {
        let (setup, fds) = transport::recv_setup(sock, deadline)?;
        let geometry = check(&setup, me, opts)?;
        let parts = open_parts(me, &geometry, fds, opts)?;
        let handle = attach(parts.region(), &geometry).map_err(HandshakeError::Ring)?;
        Ok((handle, parts))
    })();
    match result {
        Ok(v) => {
            transport::send_ack(sock, 0, deadline)?;
            Ok(v)
        }
        Err(e) => {
            if let Some(reason) = e.refusal() {
                // Best effort: the peer may be gone already.
                let _ = transport::send_ack(sock, reason.code(), deadline);
            }
            Err(e.into())
        }
    }
}
