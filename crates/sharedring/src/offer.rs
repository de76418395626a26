//! Setting up without the socket handshake: the raw descriptors and values
//! (for D-Bus or any other channel), and in-process pairs.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use spsc_core::{Consumer, Producer, RingLayout};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::{Error, HandshakeError};
use crate::options::Options;
use crate::receiver::Receiver;
use crate::sender::Sender;
use crate::setup::wire::{self, Role, Setup};
use crate::setup::{self, PeerFds};

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

/// Everything a peer needs to attach to a ring, for moving over a channel
/// of your choice (the socket handshake sends exactly this).
///
/// The receiving side must treat every field as untrusted:
/// [`Sender::from_offer`] and [`Receiver::from_offer`] validate them all
/// against what *they* expect.
#[derive(Debug)]
pub struct Offer {
    /// The end the creator kept; the offer is for the other end.
    pub creator: End,
    /// Element size in bytes.
    pub elem_size: u32,
    /// Capacity in elements.
    pub capacity: u64,
    /// Length of the shared region in bytes.
    pub region_len: u64,
    /// Whether the region uses huge pages.
    pub hugetlb: bool,
    /// The descriptors.
    pub fds: PeerFds,
}

impl Offer {
    fn new(setup: &Setup, fds: PeerFds) -> Self {
        Self {
            creator: if setup.creator == Role::Sender as u32 {
                End::Sender
            } else {
                End::Receiver
            },
            elem_size: setup.elem_size,
            capacity: setup.capacity,
            region_len: setup.region_len,
            hugetlb: setup.flags & wire::FLAG_HUGETLB != 0,
            fds,
        }
    }

    fn setup(&self) -> Setup {
        Setup {
            kind: spsc_core::KIND_ELEMENTS,
            creator: Role::from(self.creator) as u32,
            elem_size: self.elem_size,
            capacity: self.capacity,
            region_len: self.region_len,
            flags: if self.hugetlb { wire::FLAG_HUGETLB } else { 0 },
            max_msg: 0,
        }
    }
}

impl<T: FromBytes + IntoBytes + Immutable> Sender<T> {
    /// Creates a ring and returns this end with the [`Offer`] for the
    /// receiver. `liveness` is a descriptor that hangs up when the peer is
    /// gone (a socket, or a pidfd's peer end), if you have one.
    pub fn create_offer(opts: &Options, liveness: Option<OwnedFd>) -> Result<(Self, Offer), Error> {
        let layout = RingLayout::new::<T>(opts.capacity_for::<T>())?;
        let (parts, fds) = setup::create_parts(Role::Sender, &layout.into(), opts)?;
        let producer =
            Producer::create(parts.region(), layout.capacity()).map_err(HandshakeError::Ring)?;
        let offer = Offer::new(&setup::setup_for(Role::Sender, &layout.into(), opts), fds);
        Ok((Self::from_parts(producer, parts, liveness, opts), offer))
    }

    /// Attaches to a ring from an [`Offer`] made by the receiver's side,
    /// validating every value and descriptor.
    pub fn from_offer(
        offer: Offer,
        opts: &Options,
        liveness: Option<OwnedFd>,
    ) -> Result<Self, Error> {
        let geometry = setup::check_setup::<T>(&offer.setup(), Role::Sender, opts)?;
        let parts = setup::open_parts(Role::Sender, &geometry, offer.fds, opts)?;
        let producer =
            Producer::attach(parts.region(), geometry.capacity()).map_err(HandshakeError::Ring)?;
        Ok(Self::from_parts(producer, parts, liveness, opts))
    }
}

impl<T: FromBytes + IntoBytes + Immutable> Receiver<T> {
    /// Creates a ring and returns this end with the [`Offer`] for the
    /// sender; see [`Sender::create_offer`].
    pub fn create_offer(opts: &Options, liveness: Option<OwnedFd>) -> Result<(Self, Offer), Error> {
        let layout = RingLayout::new::<T>(opts.capacity_for::<T>())?;
        let (parts, fds) = setup::create_parts(Role::Receiver, &layout.into(), opts)?;
        let consumer =
            Consumer::create(parts.region(), layout.capacity()).map_err(HandshakeError::Ring)?;
        let offer = Offer::new(&setup::setup_for(Role::Receiver, &layout.into(), opts), fds);
        Ok((Self::from_parts(consumer, parts, liveness, opts), offer))
    }

    /// Attaches to a ring from an [`Offer`] made by the sender's side,
    /// validating every value and descriptor.
    pub fn from_offer(
        offer: Offer,
        opts: &Options,
        liveness: Option<OwnedFd>,
    ) -> Result<Self, Error> {
        let geometry = setup::check_setup::<T>(&offer.setup(), Role::Receiver, opts)?;
        let parts = setup::open_parts(Role::Receiver, &geometry, offer.fds, opts)?;
        let consumer =
            Consumer::attach(parts.region(), geometry.capacity()).map_err(HandshakeError::Ring)?;
        Ok(Self::from_parts(consumer, parts, liveness, opts))
    }
}

/// An in-process pair over a real memfd and eventfds, with a socket pair
/// as the liveness channel: dropping one end makes the other see
/// [`Error::PeerGone`]. For tests, and for threads.
///
/// ```
/// let (mut tx, mut rx) = sharedring::channel::<i32>(8)?;
/// assert_eq!(tx.try_send(&[-1, 0, 1])?, 3);
/// let mut buf = [0; 8];
/// assert_eq!(rx.try_recv(&mut buf)?, 3);
/// # Ok::<(), sharedring::Error>(())
/// ```
pub fn channel<T: FromBytes + IntoBytes + Immutable>(
    capacity: usize,
) -> Result<(Sender<T>, Receiver<T>), Error> {
    channel_with(&Options::new().capacity(capacity))
}

/// [`channel`] with options.
pub fn channel_with<T: FromBytes + IntoBytes + Immutable>(
    opts: &Options,
) -> Result<(Sender<T>, Receiver<T>), Error> {
    let (a, b) = UnixStream::pair().map_err(Error::Io)?;
    let (tx, offer) = Sender::<T>::create_offer(opts, Some(a.into()))?;
    let rx = Receiver::<T>::from_offer(offer, opts, Some(b.into()))?;
    Ok((tx, rx))
}
