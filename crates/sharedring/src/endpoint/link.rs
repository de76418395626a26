//! Peer death, decided in one place for the blocking, non-blocking and
//! async paths: the liveness descriptor (the handshake socket, kept open
//! for the ring's lifetime, or whatever the user handed to an `Offer`).
//!
//! The rule: after the handshake (a `Duplex`'s two handshakes) the
//! liveness descriptor must stay silent; a further ring needs a new
//! connection.
//! It hanging up, reaching end of file, or becoming readable at all means
//! the peer is gone. Data on it is a protocol breach, and descriptors on
//! it are how a dying peer could hide its death: a peer that mails its
//! own end of the socket to us over that socket and then exits keeps the
//! socket open through the in-flight copy, and the kernel never reports
//! the hang-up. So whatever is readable is drained (received descriptors
//! are closed at once) and the peer is treated as gone. For a pidfd,
//! readable means the process exited, which fits the same rule.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvFlags};

/// After this many calls that found nothing to do (ring empty for a
/// receiver, full for a sender), a non-blocking call looks at the socket
/// once: cheap enough for a busy-polling loop, and a dead peer is still
/// noticed promptly.
const IDLE_CHECK_EVERY: u32 = 1024;

/// A receiver that keeps finding its ring empty looks at the ring's
/// closed word on the first such call after progress or a wait, then on
/// every this-many-th: a busy-polling receiver sees the end of the stream
/// within this many empty polls. Loading the word on every empty poll
/// cost the element ring's busy round trip about 0.12x of the validated
/// one-line ring (1.07x against 0.94-0.95x, 36 set-ups per build): the
/// word shares its line with the write position, the line the receiver
/// polls (docs/ARCHITECTURE.md, "The closed word, not on every poll").
const CLOSED_CHECK_EVERY: u32 = 16;

/// At most this many `recvmsg` calls drain a liveness socket: enough for
/// anything a peer queued before it died; a live flooder is cut off by
/// the bound (it is treated as gone anyway, and the rest of its queue is
/// freed when the socket is closed).
const DRAIN_ROUNDS: usize = 64;

/// The poll events that end the peer's life, as far as we are concerned.
pub(crate) const GONE_EVENTS: PollFlags = PollFlags::IN
    .union(PollFlags::HUP)
    .union(PollFlags::RDHUP)
    .union(PollFlags::ERR)
    .union(PollFlags::NVAL);

/// What an idle call is due to look at; see [`Link::idle_due`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleDue {
    /// The ring's closed word (receivers).
    pub(crate) closed: bool,
    /// The liveness socket.
    pub(crate) socket: bool,
}

/// The peer's liveness, as this end knows it.
#[derive(Debug)]
pub(crate) struct Link {
    sock: Option<OwnedFd>,
    gone: bool,
    idle: u32,
}

impl Link {
    pub(crate) fn new(sock: Option<OwnedFd>) -> Self {
        // Not checked here: a `Duplex` runs its second handshake over the
        // same socket after the first ring's link exists. Anything still
        // queued once the handshakes are over is seen by the first check.
        Self {
            sock,
            gone: false,
            idle: 0,
        }
    }

    /// The liveness descriptor, for waits that watch it.
    pub(crate) fn sock(&self) -> Option<BorrowedFd<'_>> {
        self.sock.as_ref().map(|s| s.as_fd())
    }

    /// Whether the peer is already known to be gone (no syscall).
    #[inline]
    pub(crate) fn known_gone(&self) -> bool {
        self.gone
    }

    /// Whether an end may still be used: not after the peer broke the
    /// protocol (`corruption`, sticky), nor once it is known to be gone.
    #[inline]
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

    /// Called when a wait saw the liveness descriptor signal: drains it
    /// and records that the peer is gone.
    pub(crate) fn set_gone(&mut self) {
        if !self.gone {
            self.gone = true;
            self.drain();
        }
    }

    /// Looks at the liveness descriptor now (one non-blocking `poll`).
    pub(crate) fn check(&mut self) -> bool {
        if self.gone {
            return true;
        }
        let Some(sock) = self.sock.as_ref() else {
            return false;
        };
        let fd = sock.as_fd();
        let mut fds = [PollFd::new(&fd, PollFlags::IN | PollFlags::RDHUP)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if poll(&mut fds, Some(&zero)).is_ok() && fds[0].revents().intersects(GONE_EVENTS) {
            self.set_gone();
        }
        self.gone
    }

    /// Receives and discards what the peer queued on the liveness socket,
    /// closing every descriptor that came with it. Not a socket (a pidfd),
    /// nothing queued, or an error: stops.
    fn drain(&mut self) {
        let Some(sock) = self.sock.as_ref() else {
            return;
        };
        let mut bytes = [0u8; 256];
        for _ in 0..DRAIN_ROUNDS {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(16))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = recvmsg(
                sock,
                &mut [IoSliceMut::new(&mut bytes)],
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            );
            // Dropping the received descriptors closes them.
            control.drain().for_each(drop);
            match got {
                Ok(r) if r.bytes > 0 => continue,
                _ => return,
            }
        }
    }

    /// Called when a non-blocking call found nothing to do: what it is
    /// time to look at. The closed word on the first such call after
    /// progress or a wait and then every `CLOSED_CHECK_EVERY` calls; the
    /// socket every `IDLE_CHECK_EVERY` calls.
    #[inline]
    pub(crate) fn idle_due(&mut self) -> IdleDue {
        self.idle += 1;
        let closed = self.idle % CLOSED_CHECK_EVERY == 1;
        if self.idle >= IDLE_CHECK_EVERY {
            self.idle = 0;
            return IdleDue {
                closed,
                socket: true,
            };
        }
        IdleDue {
            closed,
            socket: false,
        }
    }

    /// Called when a call made progress, or after a wait: the next call
    /// that finds nothing to do looks at the closed word at once.
    #[inline]
    pub(crate) fn busy(&mut self) {
        self.idle = 0;
    }
}
