//! Setting up without the socket handshake: the raw descriptors and values
//! of a ring, to move over a channel of your choice (D-Bus, a socket you
//! already have). The socket handshake sends exactly this.

use crate::setup::wire::{self, Role, Setup};
use crate::setup::PeerFds;

/// Which end of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The sending end.
    Sender,
    /// The receiving end.
    Receiver,
}

impl From<End> for Role {
    fn from(end: End) -> Self {
        match end {
            End::Sender => Role::Sender,
            End::Receiver => Role::Receiver,
        }
    }
}

impl From<Role> for End {
    fn from(role: Role) -> Self {
        match role {
            Role::Sender => End::Sender,
            Role::Receiver => End::Receiver,
        }
    }
}

/// Which kind of ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingKind {
    /// Fixed-size elements ([`Sender`](crate::Sender), [`Receiver`](crate::Receiver)).
    Elements,
    /// Variable-size messages ([`MsgSender`](crate::MsgSender), [`MsgReceiver`](crate::MsgReceiver)).
    Messages,
    /// A kind code this version does not know (refused on attach).
    Other(u32),
}

impl RingKind {
    /// The kind's code on the wire and in the ring header.
    ///
    /// ```
    /// assert_eq!(sharedring::RingKind::Messages.code(), 2);
    /// ```
    pub fn code(self) -> u32 {
        match self {
            Self::Elements => spsc_core::KIND_ELEMENTS,
            Self::Messages => spsc_core::KIND_MESSAGES,
            Self::Other(c) => c,
        }
    }

    /// The kind with this code.
    ///
    /// ```
    /// assert_eq!(sharedring::RingKind::from_code(1), sharedring::RingKind::Elements);
    /// ```
    pub fn from_code(code: u32) -> Self {
        match code {
            spsc_core::KIND_ELEMENTS => Self::Elements,
            spsc_core::KIND_MESSAGES => Self::Messages,
            c => Self::Other(c),
        }
    }
}

/// Everything a peer needs to attach to a ring, for moving over a channel
/// of your choice (the socket handshake sends exactly this: see the
/// handshake section of `docs/LAYOUT.md`).
///
/// The receiving side must treat every field as untrusted: `from_offer`
/// on every end validates them all against what *it* expects.
///
/// ```
/// use sharedring::{MsgReceiver, MsgSender, Options, RingKind};
/// let (tx, offer) = MsgSender::create_offer(&Options::new().capacity_bytes(4096), None)?;
/// assert_eq!(offer.kind, RingKind::Messages);
/// assert_eq!(offer.capacity, 4096);
/// let rx = MsgReceiver::from_offer(offer, &Options::new(), None)?;
/// # drop((tx, rx));
/// # Ok::<(), sharedring::Error>(())
/// ```
#[derive(Debug)]
pub struct Offer {
    /// The kind of ring.
    pub kind: RingKind,
    /// The end the creator kept; the offer is for the other end.
    pub creator: End,
    /// Element size in bytes (1 for message rings).
    pub elem_size: u32,
    /// Element alignment in bytes (1 for message rings).
    pub elem_align: u32,
    /// The element type's [`TypeTag`](crate::TypeTag) hash (0 for message
    /// rings).
    pub type_tag: u64,
    /// Capacity: elements for element rings, bytes for message rings.
    pub capacity: u64,
    /// The largest message in bytes (message rings; 0 otherwise).
    pub max_msg: u32,
    /// Length of the shared region in bytes.
    pub region_len: u64,
    /// Whether the region uses huge pages.
    pub hugetlb: bool,
    /// The descriptors.
    pub fds: PeerFds,
}

impl Offer {
    pub(crate) fn from_setup(setup: &Setup, fds: PeerFds) -> Self {
        Self {
            kind: RingKind::from_code(setup.kind),
            creator: if setup.creator == Role::Sender as u32 {
                End::Sender
            } else {
                End::Receiver
            },
            elem_size: setup.elem_size,
            elem_align: setup.elem_align,
            type_tag: setup.type_tag,
            capacity: setup.capacity,
            max_msg: setup.max_msg,
            region_len: setup.region_len,
            hugetlb: setup.flags & wire::FLAG_HUGETLB != 0,
            fds,
        }
    }

    pub(crate) fn into_setup(self) -> (Setup, PeerFds) {
        let setup = Setup {
            kind: self.kind.code(),
            creator: Role::from(self.creator) as u32,
            elem_size: self.elem_size,
            capacity: self.capacity,
            region_len: self.region_len,
            flags: if self.hugetlb { wire::FLAG_HUGETLB } else { 0 },
            max_msg: self.max_msg,
            elem_align: self.elem_align,
            type_tag: self.type_tag,
        };
        (setup, self.fds)
    }
}
