//! The liveness channel: the handshake socket, kept open for the ring's
//! lifetime. Its hang-up is how we learn that the peer is gone.

use std::os::fd::{AsFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// After this many calls that found nothing to do (ring empty for a
/// receiver, full for a sender), a non-blocking call looks at the socket
/// once: cheap enough for a busy-polling loop, and a dead peer is still
/// noticed promptly.
const IDLE_CHECK_EVERY: u32 = 1024;

#[derive(Debug)]
pub(crate) struct Link {
    sock: Option<OwnedFd>,
    gone: bool,
    idle: u32,
}

impl Link {
    pub(crate) fn new(sock: Option<OwnedFd>) -> Self {
        Self {
            sock,
            gone: false,
            idle: 0,
        }
    }

    /// The socket, for waits that watch it.
    pub(crate) fn sock(&self) -> Option<&OwnedFd> {
        self.sock.as_ref()
    }

    /// Whether the peer is already known to be gone (no syscall).
    pub(crate) fn known_gone(&self) -> bool {
        self.gone
    }

    /// Whether a sending end may still be used: not after the peer broke
    /// the protocol (`corruption`, sticky), nor once it is known to be gone.
    pub(crate) fn usable(
        &self,
        corruption: Option<spsc_core::Corruption>,
    ) -> Result<(), crate::Error> {
        if let Some(c) = corruption {
            return Err(crate::Error::Corrupted(c));
        }
        if self.gone {
            return Err(crate::Error::PeerGone);
        }
        Ok(())
    }

    /// Records that the peer is gone.
    pub(crate) fn set_gone(&mut self) {
        self.gone = true;
    }

    /// Looks at the socket now (one non-blocking `poll`).
    pub(crate) fn check(&mut self) -> bool {
        if self.gone {
            return true;
        }
        let Some(sock) = self.sock.as_ref() else {
            return false;
        };
        let fd = sock.as_fd();
        let mut fds = [PollFd::new(&fd, PollFlags::RDHUP)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if poll(&mut fds, Some(&zero)).is_ok() {
            let r = fds[0].revents();
            if r.intersects(PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR | PollFlags::NVAL) {
                self.gone = true;
            }
        }
        self.gone
    }

    /// Called when a non-blocking call found nothing to do: every
    /// `IDLE_CHECK_EVERY` such calls, looks at the socket.
    pub(crate) fn idle(&mut self) -> bool {
        self.idle += 1;
        if self.idle >= IDLE_CHECK_EVERY {
            self.idle = 0;
            return self.check();
        }
        self.gone
    }

    /// Called when a call made progress.
    #[inline]
    pub(crate) fn busy(&mut self) {
        self.idle = 0;
    }
}
