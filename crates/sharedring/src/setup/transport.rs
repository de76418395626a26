//! The handshake's bytes and descriptors on the socket, all under one
//! deadline.
//!
//! Every socket call is non-blocking (`MSG_DONTWAIT`), preceded by a
//! `poll` that gets only the time left until the handshake's deadline. A
//! peer that sends one byte at a time therefore cannot stretch the
//! handshake: the deadline is a total, not a per-read timeout. The socket's
//! own flags (`O_NONBLOCK`, `SO_RCVTIMEO`) are neither read nor changed, so
//! a non-blocking socket (for example from tokio's `into_std()`) works the
//! same as a blocking one.

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
const FD_SLOTS: usize = 8;

/// When the whole handshake must be over (`None`: never).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// `timeout` from now; a timeout too far to represent is none.
    pub(crate) fn after(timeout: Option<Duration>) -> Self {
        Self(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    /// The time left, or `TimedOut` once it is spent.
    fn left(self) -> Result<Option<Duration>, HandshakeError> {
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
    fn wait(self, sock: BorrowedFd<'_>, events: PollFlags) -> Result<(), HandshakeError> {
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

/// Sends all of `bytes`, the descriptors (if any) with the first byte.
fn send_all(
    sock: BorrowedFd<'_>,
    mut bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    deadline: Deadline,
) -> Result<(), HandshakeError> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(wire::FDS))];
    let mut with_fds = !fds.is_empty();
    while !bytes.is_empty() {
        let mut control = SendAncillaryBuffer::new(&mut space);
        if with_fds {
            let pushed = control.push(SendAncillaryMessage::ScmRights(fds));
            debug_assert!(pushed, "cmsg space is sized for the protocol's descriptors");
        }
        match sendmsg(
            sock,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
        ) {
            Ok(n) => {
                // The descriptors went with the first byte.
                with_fds = false;
                bytes = &bytes[n..];
            }
            Err(Errno::AGAIN | Errno::INTR) => deadline.wait(sock, PollFlags::OUT)?,
            Err(e) => return Err(os(e)),
        }
    }
    Ok(())
}

/// Receives exactly `buf.len()` bytes, keeping every descriptor that came
/// with them in `fds` (close-on-exec). `Ok(false)`: the peer closed the
/// socket before the first byte.
fn recv_exact(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Deadline,
) -> Result<bool, HandshakeError> {
    let mut got = 0;
    while got < buf.len() {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FD_SLOTS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let r = recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut buf[got..])],
            &mut control,
            RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
        );
        // Take ownership of every descriptor that arrived, whatever happens
        // next: dropping them closes them.
        let before = fds.len();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(iter) = msg {
                fds.extend(iter);
            }
        }
        let arrived = fds.len() - before;
        match r {
            // Truncated with room to spare in our buffer: the kernel could
            // not install a descriptor in this process (we are out of
            // them), not a peer that sent too many.
            Ok(r) if r.flags.contains(ReturnFlags::CTRUNC) && arrived < FD_SLOTS => {
                return Err(os(Errno::MFILE))
            }
            Ok(r) if r.flags.contains(ReturnFlags::CTRUNC) => {
                return Err(HandshakeError::DescriptorsTruncated)
            }
            Ok(r) if r.bytes == 0 => {
                return if got == 0 {
                    Ok(false)
                } else {
                    Err(HandshakeError::ShortMessage { got })
                };
            }
            Ok(r) => got += r.bytes,
            Err(Errno::AGAIN | Errno::INTR) => deadline.wait(sock, PollFlags::IN)?,
            Err(Errno::CONNRESET) => return Err(HandshakeError::PeerClosed),
            Err(e) => return Err(os(e)),
        }
    }
    Ok(true)
}

/// Sends the setup message with the peer's descriptors.
pub(crate) fn send_setup(
    sock: BorrowedFd<'_>,
    setup: &Setup,
    fds: &PeerFds,
    deadline: Deadline,
) -> Result<(), HandshakeError> {
    let borrowed = [fds.memory.as_fd(), fds.data.as_fd(), fds.room.as_fd()];
    send_all(sock, &setup.encode(), &borrowed, deadline)
}

/// Receives a setup message and its descriptors (close-on-exec). Extra
/// descriptors are closed; a wrong count or a truncation is an error.
pub(crate) fn recv_setup(
    sock: BorrowedFd<'_>,
    deadline: Deadline,
) -> Result<(Setup, PeerFds), HandshakeError> {
    let mut bytes = [0u8; wire::SETUP_LEN];
    let mut fds = Vec::new();
    if !recv_exact(sock, &mut bytes, &mut fds, deadline)? {
        return Err(HandshakeError::ClosedBeforeOffer);
    }
    let setup = Setup::decode(&bytes)?;
    let got = fds.len();
    let mut it = fds.into_iter();
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(memory), Some(data), Some(room), None) => Ok((setup, PeerFds { memory, data, room })),
        _ => Err(HandshakeError::DescriptorCount {
            expected: wire::FDS,
            got,
        }),
    }
}

/// Sends our answer: 0 accepts, anything else refuses.
pub(crate) fn send_ack(
    sock: BorrowedFd<'_>,
    status: u32,
    deadline: Deadline,
) -> Result<(), HandshakeError> {
    send_all(sock, &wire::encode_ack(status), &[], deadline)
}

/// Waits for the peer's answer. Descriptors that come with it are closed.
pub(crate) fn recv_ack(sock: BorrowedFd<'_>, deadline: Deadline) -> Result<(), HandshakeError> {
    let mut b = [0u8; wire::ACK_LEN];
    let mut fds = Vec::new();
    match recv_exact(sock, &mut b, &mut fds, deadline) {
        Ok(true) => {}
        // Closed before or in the middle of its answer.
        Ok(false) | Err(HandshakeError::ShortMessage { .. }) => {
            return Err(HandshakeError::PeerClosed)
        }
        Err(e) => return Err(e),
    }
    // The magic first: a setup message here (with its descriptors) means
    // the peer created a ring too.
    let status = wire::decode_ack(&b)?;
    if !fds.is_empty() {
        return Err(HandshakeError::DescriptorCount {
            expected: 0,
            got: fds.len(),
        });
    }
    match status {
        0 => Ok(()),
        code => Err(HandshakeError::Refused {
            reason: RefusalReason::from_code(code),
        }),
    }
}
