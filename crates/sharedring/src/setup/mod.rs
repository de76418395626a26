//! Setting a ring up: the handshake that moves its descriptors to the peer
//! over a connected Unix socket, split by concern:
//!
//! - [`parts`]: the descriptors we own (creating the memory and wake-ups,
//!   opening the ones the peer sent);
//! - [`checks`]: the checks of what the peer sent;
//! - [`transport`]: the socket I/O as resumable steps, under one deadline;
//! - [`machine`]: the handshake as a state machine over those steps, for
//!   event loops and for the blocking calls alike;
//! - [`wire`]: the bytes of the setup message and the answer.

use std::os::unix::net::UnixStream;

use spsc_core::{MsgLayout, RawRegion, RingLayout, KIND_ELEMENTS, KIND_MESSAGES};

use crate::error::{Error, HandshakeError};
use crate::options::Options;

pub(crate) mod checks;
pub(crate) mod machine;
pub(crate) mod parts;
pub(crate) mod transport;
pub(crate) mod wire;

pub use machine::Interest;
pub(crate) use machine::Machine;
pub use parts::PeerFds;
pub(crate) use parts::{create_parts, open_parts, Parts};
pub(crate) use wire::{Role, Setup};

/// What an element ring's two ends must agree on besides the size: the
/// element's alignment and type tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Contract {
    pub align: u32,
    pub tag: u64,
}

/// The shape of a ring: fixed-size elements, or variable-size messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Geometry {
    Elements(RingLayout, Contract),
    Messages(MsgLayout),
}

impl Geometry {
    pub(crate) fn region_size(&self) -> usize {
        match self {
            Self::Elements(l, _) => l.region_size(),
            Self::Messages(l) => l.region_size(),
        }
    }

    /// Capacity: elements, or bytes for messages.
    pub(crate) fn capacity(&self) -> usize {
        match self {
            Self::Elements(l, _) => l.capacity(),
            Self::Messages(l) => l.capacity(),
        }
    }

    /// The maximum message size (0 for element rings).
    pub(crate) fn max_msg(&self) -> usize {
        match self {
            Self::Elements(..) => 0,
            Self::Messages(l) => l.max_msg(),
        }
    }

    /// The setup message a creator of this ring, keeping `creator`'s end,
    /// sends.
    pub(crate) fn setup(&self, creator: Role, opts: &Options) -> Setup {
        let (kind, elem_size, contract) = match self {
            Self::Elements(l, c) => (KIND_ELEMENTS, l.elem_size(), *c),
            Self::Messages(_) => (KIND_MESSAGES, 1, Contract { align: 1, tag: 0 }),
        };
        Setup {
            kind,
            creator: creator as u32,
            elem_size: elem_size as u32,
            capacity: self.capacity() as u64,
            region_len: self.region_size() as u64,
            flags: if opts.hugetlb.is_some() {
                wire::FLAG_HUGETLB
            } else {
                0
            },
            max_msg: self.max_msg() as u32,
            elem_align: contract.align,
            type_tag: contract.tag,
        }
    }
}

/// One end of one kind of ring, as set-up sees it: which role it plays,
/// the geometry it creates and accepts, and how its spsc-core half is
/// made. Implemented once per end (see `crate::endpoint`).
pub(crate) trait Kind {
    /// The spsc-core half this end drives.
    type Half: std::fmt::Debug + crate::endpoint::closed::Closing;
    /// Which end.
    const ROLE: Role;
    /// The public name of the end, for `Debug`.
    const NAME: &'static str;
    /// The kind of ring.
    const RING: crate::RingKind;
    /// The element's size, alignment and type tag (1, 1, 0 for messages).
    const CONTRACT: (u32, u32, u64);
    /// The geometry a creating side asks for, from its options.
    fn geometry(opts: &Options) -> Result<Geometry, Error>;
    /// Checks a peer's offer against what this end expects and returns
    /// the geometry to map (computed by us, never taken from the peer).
    fn check(setup: &Setup, opts: &Options) -> Result<Geometry, HandshakeError>;
    /// Initialises a fresh region.
    fn create(region: RawRegion, g: &Geometry) -> Result<Self::Half, spsc_core::SetupError>;
    /// Attaches to a region the peer initialised.
    fn attach(region: RawRegion, g: &Geometry) -> Result<Self::Half, spsc_core::SetupError>;
    /// The sticky corruption the half has seen, if any.
    fn corruption(half: &Self::Half) -> Option<spsc_core::Corruption>;
    /// Sets how the half orders its wake-ups: `barrier` declares the
    /// sleeper's barrier for its own sleeps, `registered` lets its wake-up
    /// checks skip their fence for a peer that declared one.
    fn wake_order(half: &mut Self::Half, barrier: Option<fn() -> bool>, registered: bool);
    /// Withdraws the sleeper's barrier of the half, if declared (for an
    /// event loop, whose every arm would otherwise run it).
    fn withdraw_barrier(half: &mut Self::Half);
}

/// A ring of kind `K` created here: the half, the parts we keep, and the
/// descriptors and setup values for the peer.
pub(crate) fn create_local<K: Kind>(
    opts: &Options,
) -> Result<(K::Half, Parts, PeerFds, Setup), Error> {
    let geometry = K::geometry(opts)?;
    let (parts, peer) = create_parts(K::ROLE, &geometry, opts)?;
    let half = K::create(parts.region(), &geometry).map_err(HandshakeError::Ring)?;
    Ok((half, parts, peer, geometry.setup(K::ROLE, opts)))
}

/// Attaches to a ring of kind `K` from the peer's setup values and
/// descriptors, after checking all of them.
pub(crate) fn attach_remote<K: Kind>(
    setup: &Setup,
    fds: PeerFds,
    opts: &Options,
) -> Result<(K::Half, Parts), HandshakeError> {
    let geometry = K::check(setup, opts)?;
    let parts = open_parts(K::ROLE, &geometry, fds, opts)?;
    let half = K::attach(parts.region(), &geometry).map_err(HandshakeError::Ring)?;
    Ok((half, parts))
}

/// The creating side of the handshake: makes the ring, offers it over
/// `sock`, and waits for the peer's acceptance, all within one handshake
/// deadline. The blocking driver of [`Machine`].
pub(crate) fn create_over<K: Kind>(
    sock: UnixStream,
    opts: &Options,
) -> Result<((K::Half, Parts), UnixStream), Error> {
    let (half, parts, peer, setup) = create_local::<K>(opts)?;
    Machine::create(sock, opts, (half, parts), &setup, peer).block()
}

/// The accepting side of the handshake: receives an offer, validates it
/// against what *we* expect, maps and attaches, and answers (a refusal
/// names the reason, so the peer gets a clear error), all within one
/// handshake deadline. The blocking driver of [`Machine`].
pub(crate) fn accept_over<K: Kind>(
    sock: UnixStream,
    opts: &Options,
) -> Result<((K::Half, Parts), UnixStream), Error> {
    Machine::accept(sock, opts, attach_remote::<K>).block()
}
