//! The two ends of a ring, as the D-Bus setup sees them.

use sharedring::End;

/// A ring end that can be set up over D-Bus: any of sharedring's ends
/// ([`Sender<T>`](sharedring::Sender), [`Receiver<T>`](sharedring::Receiver),
/// [`MsgSender`](sharedring::MsgSender), [`MsgReceiver`](sharedring::MsgReceiver))
/// that can move to another thread.
///
/// ```
/// use sharedring::{End, MsgReceiver, Sender};
/// use sharedring_dbus::RingEnd;
/// assert_eq!(<Sender<f64> as sharedring::RingEnd>::END, End::Sender);
/// assert_eq!(<MsgReceiver as sharedring::RingEnd>::ELEM_SIZE, 1);
/// fn servable<E: RingEnd>() {}
/// servable::<MsgReceiver>();
/// ```
pub trait RingEnd: sharedring::RingEnd + Send + 'static {}

impl<E: sharedring::RingEnd + Send + 'static> RingEnd for E {}

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
