//! End of stream, told apart from a crash: a sending end that is closed
//! ([`Sender::close`](crate::Sender::close),
//! [`MsgSender::close`](crate::MsgSender::close), or simply dropped while
//! its thread is not panicking) says so in the ring itself, and the
//! receiver reports [`Error::Closed`](crate::Error::Closed) instead of
//! [`Error::PeerGone`](crate::Error::PeerGone) once it has delivered
//! everything.
//!
//! The mark is the ring header's "producer closed" word (offset 136, on
//! the producer's line; `docs/LAYOUT.md`). The sender stores 1 with
//! Release after its last publication, then wakes the receiver exactly as
//! after a publication (the wait-word check, then the eventfd), so a
//! receiver parked on its eventfd, in a blocking `recv` with or without a
//! deadline, in an event loop or in a tokio task, wakes and sees it at
//! once, even while the peer's socket stays open (a `Duplex` whose other
//! ring lives on). A receiver that finds the ring empty loads the word
//! (Acquire); if it is set it looks for data once more, and only if there
//! is still none reports the end, and keeps reporting it.
//!
//! A crash (SIGKILL, abort, a panic that unwinds through the sender, or an
//! exit that skips destructors) leaves the word 0: the receiver drains the
//! ring and reports `PeerGone` when the liveness socket hangs up.
//!
//! What a hostile peer can do with it: only lie about its own stream. It
//! can set the word early (we still deliver what it committed and what we
//! see before the empty check, then end), set it and keep writing (we end
//! at the first empty check after the mark; what it writes later is not
//! read), or never set it (we report `PeerGone` when it goes). It cannot
//! make us read out of bounds, block, or skip data it committed before the
//! mark.

use spsc_core::{Consumer, Corruption, MsgConsumer, MsgProducer, Producer};

use crate::elements::Element;

/// The end-of-stream operations of a ring half. Producers close; consumers
/// detect the end. Each half implements the other role's method as "never"
/// (it is never called for it: `Endpoint` asks by its role).
pub(crate) trait Closing {
    /// Stores the mark after the last publication; whether the consumer
    /// must be woken (producers).
    fn close_stream(&mut self) -> bool;
    /// Whether the stream ended: marked and drained (consumers; call on
    /// an empty ring).
    fn stream_ended(&mut self) -> Result<bool, Corruption>;
    /// Whether the producer marked its stream closed, drained or not
    /// (consumers; producers answer `false`).
    fn closed_mark(&self) -> bool {
        false
    }
}

impl<T: Element> Closing for Producer<T> {
    fn close_stream(&mut self) -> bool {
        self.close()
    }
    #[inline]
    fn stream_ended(&mut self) -> Result<bool, Corruption> {
        Ok(false)
    }
}

impl Closing for MsgProducer {
    fn close_stream(&mut self) -> bool {
        self.close()
    }
    #[inline]
    fn stream_ended(&mut self) -> Result<bool, Corruption> {
        Ok(false)
    }
}

impl<T: Element> Closing for Consumer<T> {
    #[inline]
    fn closed_mark(&self) -> bool {
        Self::closed_mark(self)
    }
    fn close_stream(&mut self) -> bool {
        false
    }
    #[inline]
    fn stream_ended(&mut self) -> Result<bool, Corruption> {
        self.end_of_stream()
    }
}

impl Closing for MsgConsumer {
    #[inline]
    fn closed_mark(&self) -> bool {
        Self::closed_mark(self)
    }
    fn close_stream(&mut self) -> bool {
        false
    }
    #[inline]
    fn stream_ended(&mut self) -> Result<bool, Corruption> {
        self.end_of_stream()
    }
}
