//! End of stream, told apart from a crash: a sending end that is closed
//! ([`Sender::close`](crate::Sender::close),
//! [`MsgSender::close`](crate::MsgSender::close)) says so where only the
//! ring's two ends can see it, and the receiver reports
//! [`Error::Closed`](crate::Error::Closed) instead of
//! [`Error::PeerGone`](crate::Error::PeerGone) once it has delivered
//! everything.
//!
//! Where the mark lives: the liveness socket must stay silent (anything
//! readable on it means the peer is gone, see `link.rs`), and the ring
//! layout has no word for it yet, so the mark is `O_APPEND` in the status
//! flags of the memfd's open file description. Both ends hold that one
//! description (the memfd travels by `SCM_RIGHTS`, which passes the
//! description, not a copy; shmem-seal keeps the received descriptor),
//! `F_SETFL` changes it for both, and nothing here ever writes to the
//! memfd, so `O_APPEND` has no other effect. It says something only about
//! the peer's own stream, which a hostile peer can fake either way: that
//! is fine, it cannot make us read less than it committed, nor more.
//!
//! An offer moved over a channel that reopens the memfd (a new
//! description) loses the mark: the receiver then reports `PeerGone`, as
//! before. Once the ring layout has a "producer closed" word, these two
//! functions are the only ones to change.

use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

use crate::error::Error;
use crate::setup::Parts;

/// Marks the stream of the ring in `parts` as closed by its sender.
pub(crate) fn mark(parts: &Parts) -> Result<(), Error> {
    let fd = &parts.shm;
    let flags = fcntl_getfl(fd).map_err(|e| Error::from(std::io::Error::from(e)))?;
    fcntl_setfl(fd, flags | OFlags::APPEND).map_err(|e| Error::from(std::io::Error::from(e)))
}

/// Whether the sender marked the stream closed (one `fcntl`).
pub(crate) fn is_marked(parts: &Parts) -> bool {
    fcntl_getfl(&parts.shm).is_ok_and(|f| f.contains(OFlags::APPEND))
}
