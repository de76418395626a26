//! The handshake's bytes and descriptors on the socket, as resumable
//! steps under one deadline.
//!
//! Every socket call is non-blocking (`MSG_DONTWAIT`). An [`Outgoing`]
//! message and an [`Incoming`] one keep what has been sent or received so
//! far, so a step that would block returns and is resumed when the socket
//! is ready: by the blocking driver, after a `poll` that gets only the
//! time left until the handshake's deadline ([`Deadline::wait`]), or by an
//! event loop ([`crate::Handshake`]). A peer that sends one byte at a time
//! therefore cannot stretch the handshake: the deadline is a total, not a
//! per-read timeout. The socket's own flags (`O_NONBLOCK`, `SO_RCVTIMEO`)
//! are neither read nor changed, so a non-blocking socket (for example
//! from tokio's `into_std()`) works the same as a blocking one.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

use super::parts::PeerFds;
use super::wire::{self, Setup};
use crate::error::{HandshakeError, RefusalReason};

/// Room for more descriptors than the protocol needs, so that a peer that
/// sends a few extra gets a clear error (and they are closed) rather than a
/// truncation.
pub(crate) const FD_SLOTS: usize = 8;

/// When the whole handshake must be over (`None`: never).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// `timeout` from now; a timeout too far to represent is none.
    pub(crate) fn after(timeout: Option<Duration>) -> Self {
        Self(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    /// When it is (`None`: never).
    pub(crate) fn instant(self) -> Option<Instant> {
        self.0
    }

    /// The time left, or `TimedOut` once it is spent.
    pub(crate) fn left(self) -> Result<Option<Duration>, HandshakeError> {
        match self.0 {
            None => Ok(None),
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(HandshakeError::TimedOut),
            },
        }
    }

    /// Waits until `sock` has `events` (or an error or hang-up, which the
    /// next socket call reports), or fails with `TimedOut`.
    pub(crate) fn wait(
        self,
        sock: BorrowedFd<'_>,
        events: PollFlags,
    ) -> Result<(), HandshakeError> {
        loop {
            let ts = self.left()?.map(|d| Timespec {
                tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(d.subsec_nanos()),
            });
            let mut fds = [PollFd::new(&sock, events)];
            match poll(&mut fds, ts.as_ref()) {
                Ok(0) | Err(Errno::INTR) => continue,
                Ok(_) => return Ok(()),
                Err(e) => return Err(os(e)),
            }
        }
    }
}

fn os(e: Errno) -> HandshakeError {
    HandshakeError::from(std::io::Error::from(e))
}

/// One message to send: its bytes, how many went out, and the
/// descriptors that go with the first byte (closed once they went).
#[derive(Debug)]
pub(crate) struct Outgoing {
    bytes: [u8; wire::SETUP_LEN],
    len: usize,
    sent: usize,
    fds: Option<PeerFds>,
}

impl Outgoing {
    /// The setup message with the peer's descriptors.
    pub(crate) fn setup(setup: &Setup, fds: PeerFds) -> Self {
        Self {
            bytes: setup.encode(),
            len: wire::SETUP_LEN,
            sent: 0,
            fds: Some(fds),
        }
    }

    /// Our answer: 0 accepts, anything else refuses.
    pub(crate) fn ack(status: u32) -> Self {
        let mut bytes = [0u8; wire::SETUP_LEN];
        bytes[..wire::ACK_LEN].copy_from_slice(&wire::encode_ack(status));
        Self {
            bytes,
            len: wire::ACK_LEN,
            sent: 0,
            fds: None,
        }
    }

    /// Sends as much as the socket takes now. `Ok(true)`: all of it went;
    /// `Ok(false)`: the socket is full, call again once it is writable.
    pub(crate) fn send(&mut self, sock: BorrowedFd<'_>) -> Result<bool, HandshakeError> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(wire::FDS))];
        while self.sent < self.len {
            let mut control = SendAncillaryBuffer::new(&mut space);
            let borrowed;
            if let Some(fds) = &self.fds {
                borrowed = [fds.memory.as_fd(), fds.data.as_fd(), fds.room.as_fd()];
                let pushed = control.push(SendAncillaryMessage::ScmRights(&borrowed));
                debug_assert!(pushed, "cmsg space is sized for the protocol's descriptors");
            }
            match sendmsg(
                sock,
                &[IoSlice::new(&self.bytes[self.sent..self.len])],
                &mut control,
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ) {
                Ok(n) => {
                    // The descriptors went with the first byte; our copies
                    // are no longer needed.
                    self.fds = None;
                    self.sent += n;
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(false),
                Err(e) => return Err(os(e)),
            }
        }
        Ok(true)
    }
}

/// What one receive step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// The whole message is in.
    Complete,
    /// Not yet: call again once the socket is readable.
    Pending,
    /// The peer closed the socket before the first byte.
    Closed,
}

/// One message to receive: the bytes so far, and every descriptor that
/// came with them (close-on-exec; dropping them closes them).
#[derive(Debug)]
pub(crate) struct Incoming<const N: usize> {
    bytes: [u8; N],
    got: usize,
    fds: Vec<OwnedFd>,
}

impl<const N: usize> Incoming<N> {
    pub(crate) fn new() -> Self {
        Self {
            bytes: [0; N],
            got: 0,
            fds: Vec::new(),
        }
    }

    /// Receives what has arrived, up to the message's end.
    pub(crate) fn recv(&mut self, sock: BorrowedFd<'_>) -> Result<Received, HandshakeError> {
        while self.got < N {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FD_SLOTS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let r = recvmsg(
                sock,
                &mut [IoSliceMut::new(&mut self.bytes[self.got..])],
                &mut control,
                RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
            );
            // Take ownership of every descriptor that arrived, whatever
            // happens next: dropping them closes them.
            let before = self.fds.len();
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(iter) = msg {
                    self.fds.extend(iter);
                }
            }
            let arrived = self.fds.len() - before;
            match r {
                // Truncated with room to spare in our buffer: the kernel
                // could not install a descriptor in this process (we are
                // out of them), not a peer that sent too many.
                Ok(r) if r.flags.contains(ReturnFlags::CTRUNC) && arrived < FD_SLOTS => {
                    return Err(os(Errno::MFILE))
                }
                Ok(r) if r.flags.contains(ReturnFlags::CTRUNC) => {
                    return Err(HandshakeError::DescriptorsTruncated)
                }
                Ok(r) if r.bytes == 0 => {
                    return if self.got == 0 {
                        Ok(Received::Closed)
                    } else {
                        Err(HandshakeError::ShortMessage { got: self.got })
                    };
                }
                Ok(r) => self.got += r.bytes,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(Received::Pending),
                Err(Errno::CONNRESET) => return Err(HandshakeError::PeerClosed),
                Err(e) => return Err(os(e)),
            }
        }
        Ok(Received::Complete)
    }
}

impl<const N: usize> Incoming<N> {
    /// The complete message's bytes and every descriptor that came with
    /// it, for a protocol of its own (the broadcast offer).
    pub(crate) fn into_parts(self) -> ([u8; N], Vec<OwnedFd>) {
        (self.bytes, self.fds)
    }
}

impl Incoming<{ wire::SETUP_LEN }> {
    /// The complete setup message and its descriptors. Extra descriptors
    /// are closed; a wrong count is an error.
    pub(crate) fn into_setup(self) -> Result<(Setup, PeerFds), HandshakeError> {
        let setup = Setup::decode(&self.bytes)?;
        let got = self.fds.len();
        let mut it = self.fds.into_iter();
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(memory), Some(data), Some(room), None) => {
                Ok((setup, PeerFds { memory, data, room }))
            }
            _ => Err(HandshakeError::DescriptorCount {
                expected: wire::FDS,
                got,
            }),
        }
    }
}

impl Incoming<{ wire::ACK_LEN }> {
    /// The peer's complete answer. Descriptors that came with it are
    /// closed.
    pub(crate) fn into_ack(self) -> Result<(), HandshakeError> {
        // The magic first: a setup message here (with its descriptors)
        // means the peer created a ring too.
        let status = wire::decode_ack(&self.bytes)?;
        if !self.fds.is_empty() {
            return Err(HandshakeError::DescriptorCount {
                expected: 0,
                got: self.fds.len(),
            });
        }
        match status {
            0 => Ok(()),
            code => Err(HandshakeError::Refused {
                reason: RefusalReason::from_code(code),
            }),
        }
    }
}
