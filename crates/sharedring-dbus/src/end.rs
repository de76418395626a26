//! The two ends of a ring, as the D-Bus setup sees them.

use std::os::fd::OwnedFd;

use sharedring::{Element, End, Offer, Options, Receiver, Sender};

mod sealed {
    pub trait Sealed {}
    impl<T: sharedring::Element> Sealed for sharedring::Sender<T> {}
    impl<T: sharedring::Element> Sealed for sharedring::Receiver<T> {}
}

/// A ring end that can be set up over D-Bus: [`Sender<T>`] or
/// [`Receiver<T>`]. Sealed; it only names which end a call sets up.
///
/// ```
/// use sharedring::{End, Receiver, Sender};
/// use sharedring_dbus::RingEnd;
/// assert_eq!(<Sender<f64> as RingEnd>::END, End::Sender);
/// assert_eq!(<Receiver<u8> as RingEnd>::ELEM_SIZE, 1);
/// ```
pub trait RingEnd: sealed::Sealed + Sized + Send + 'static {
    /// Which end this is.
    const END: End;
    /// The element size in bytes.
    const ELEM_SIZE: usize;
    /// The element alignment in bytes.
    const ELEM_ALIGN: u32;
    /// The element type's tag (see [`sharedring::Element`]).
    const TYPE_TAG: u64;

    /// Creates a ring, keeping this end; see [`Sender::create_offer`].
    fn create_offer(
        opts: &Options,
        liveness: Option<OwnedFd>,
    ) -> Result<(Self, Offer), sharedring::Error>;

    /// Attaches to a peer's ring, validating everything; see
    /// [`Sender::from_offer`].
    fn from_offer(
        offer: Offer,
        opts: &Options,
        liveness: Option<OwnedFd>,
    ) -> Result<Self, sharedring::Error>;
}

impl<T: Element + Send + 'static> RingEnd for Sender<T> {
    const END: End = End::Sender;
    const ELEM_SIZE: usize = std::mem::size_of::<T>();
    const ELEM_ALIGN: u32 = std::mem::align_of::<T>() as u32;
    const TYPE_TAG: u64 = T::TAG.hash();

    fn create_offer(
        opts: &Options,
        liveness: Option<OwnedFd>,
    ) -> Result<(Self, Offer), sharedring::Error> {
        Sender::create_offer(opts, liveness)
    }

    fn from_offer(
        offer: Offer,
        opts: &Options,
        liveness: Option<OwnedFd>,
    ) -> Result<Self, sharedring::Error> {
        Sender::from_offer(offer, opts, liveness)
    }
}

impl<T: Element + Send + 'static> RingEnd for Receiver<T> {
    const END: End = End::Receiver;
    const ELEM_SIZE: usize = std::mem::size_of::<T>();
    const ELEM_ALIGN: u32 = std::mem::align_of::<T>() as u32;
    const TYPE_TAG: u64 = T::TAG.hash();

    fn create_offer(
        opts: &Options,
        liveness: Option<OwnedFd>,
    ) -> Result<(Self, Offer), sharedring::Error> {
        Receiver::create_offer(opts, liveness)
    }

    fn from_offer(
        offer: Offer,
        opts: &Options,
        liveness: Option<OwnedFd>,
    ) -> Result<Self, sharedring::Error> {
        Receiver::from_offer(offer, opts, liveness)
    }
}

/// The wire code of an end (the same codes as the socket handshake).
pub(crate) fn code(end: End) -> u32 {
    match end {
        End::Sender => 1,
        End::Receiver => 2,
    }
}

/// The end a wire code names, if any.
pub(crate) fn from_code(code: u32) -> Option<End> {
    match code {
        1 => Some(End::Sender),
        2 => Some(End::Receiver),
        _ => None,
    }
}

/// The other end.
pub(crate) fn other(end: End) -> End {
    match end {
        End::Sender => End::Receiver,
        End::Receiver => End::Sender,
    }
}
