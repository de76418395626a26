//! Setting a ring up: creating the memory and wake-up descriptors, and the
//! handshake that moves them to the peer over a connected Unix socket.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use eventfd_notify::{Notifier, Waiter};
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use shmem_seal::{MemfdBuilder, SharedMemory};
use spsc_core::{RawRegion, RingLayout, KIND_ELEMENTS};

use crate::error::{Error, HandshakeError, RefusalReason};
use crate::options::Options;
use crate::wire::{self, Role, Setup};

/// Room for more descriptors than the protocol needs, so that a peer that
/// sends a few extra gets a clear error (and they are closed) rather than a
/// truncation.
const FD_SLOTS: usize = 8;

/// What one side holds of a ring besides the ring handle itself.
#[derive(Debug)]
pub(crate) struct Parts {
    /// The mapping. Handles built on [`Parts::region`] must be dropped
    /// before it.
    pub shm: SharedMemory,
    /// Wakes the peer.
    pub wake_peer: Notifier,
    /// What we sleep on.
    pub wait_own: Waiter,
}

impl Parts {
    /// The mapping as a raw region for `spsc-core`.
    pub(crate) fn region(&self) -> RawRegion {
        // SAFETY: the mapping is valid for `len` bytes while `shm` lives;
        // every owner of `Parts` keeps it alive for as long as the ring
        // handle built on it (declared after the handle, so dropped after
        // it), and never makes a Rust reference into it.
        unsafe { RawRegion::new(self.shm.as_ptr(), self.shm.len()) }
    }
}

/// Descriptors for the peer, in wire order.
#[derive(Debug)]
pub struct PeerFds {
    /// The memfd holding the ring.
    pub memory: OwnedFd,
    /// The eventfd the receiver waits on (the sender notifies it).
    pub data: OwnedFd,
    /// The eventfd the sender waits on (the receiver notifies it).
    pub room: OwnedFd,
}

/// Creates the memory and wake-ups of a ring for `role`.
pub(crate) fn create_parts(
    role: Role,
    layout: &RingLayout,
    opts: &Options,
) -> Result<(Parts, PeerFds), Error> {
    let mut builder = MemfdBuilder::new("sharedring").mlock(opts.mlock);
    if let Some(size) = opts.hugetlb {
        builder = builder.hugetlb(size);
    }
    let shm = builder.create(layout.region_size())?;
    let data = Waiter::new()?;
    let room = Waiter::new()?;
    let peer = PeerFds {
        memory: shm.as_fd().try_clone_to_owned().map_err(Error::Io)?,
        data: data.try_clone_fd()?,
        room: room.try_clone_fd()?,
    };
    let (wait_own, peer_waits) = match role {
        Role::Sender => (room, data),
        Role::Receiver => (data, room),
    };
    let wake_peer = Notifier::from_received(peer_waits.try_clone_fd()?)?;
    Ok((
        Parts {
            shm,
            wake_peer,
            wait_own,
        },
        peer,
    ))
}

/// Validates and opens descriptors received from the peer, for `role`,
/// mapping exactly `layout.region_size()` bytes.
pub(crate) fn open_parts(
    role: Role,
    layout: &RingLayout,
    fds: PeerFds,
    opts: &Options,
) -> Result<Parts, HandshakeError> {
    let len = layout.region_size();
    let shm = if opts.allow_hugetlb {
        SharedMemory::open_allowing_hugetlb(fds.memory, len)
    } else {
        SharedMemory::open(fds.memory, len)
    }
    .map_err(HandshakeError::Memory)?;
    let (own, peer) = match role {
        Role::Sender => (fds.room, fds.data),
        Role::Receiver => (fds.data, fds.room),
    };
    let wait_own = Waiter::from_received(own).map_err(HandshakeError::Eventfd)?;
    let wake_peer = Notifier::from_received(peer).map_err(HandshakeError::Eventfd)?;
    Ok(Parts {
        shm,
        wake_peer,
        wait_own,
    })
}

/// The setup values for a ring of `layout` created by `creator`.
pub(crate) fn setup_for(creator: Role, layout: &RingLayout, opts: &Options) -> Setup {
    Setup {
        kind: KIND_ELEMENTS,
        creator: creator as u32,
        elem_size: layout.elem_size() as u32,
        capacity: layout.capacity() as u64,
        region_len: layout.region_size() as u64,
        flags: if opts.hugetlb.is_some() {
            wire::FLAG_HUGETLB
        } else {
            0
        },
    }
}

/// Checks a peer's setup values against what *we* expect, and returns the
/// layout we will map (computed by us, never taken from the peer).
pub(crate) fn check_setup<T>(
    setup: &Setup,
    me: Role,
    opts: &Options,
) -> Result<RingLayout, HandshakeError> {
    let elem_size = std::mem::size_of::<T>();
    if setup.kind != KIND_ELEMENTS {
        return Err(HandshakeError::WrongKind { found: setup.kind });
    }
    if setup.creator == me as u32
        || (setup.creator != Role::Sender as u32 && setup.creator != Role::Receiver as u32)
    {
        return Err(HandshakeError::RoleMismatch {
            peer_role: setup.creator,
        });
    }
    if setup.elem_size as usize != elem_size {
        return Err(HandshakeError::ElementSizeMismatch {
            expected: elem_size as u32,
            found: setup.elem_size,
        });
    }
    let limit = opts.max_region as u64;
    let bad = |region_bytes| HandshakeError::BadCapacity {
        capacity: setup.capacity,
        region_bytes,
        limit,
    };
    let capacity = usize::try_from(setup.capacity).map_err(|_| bad(None))?;
    // The size computed with checked arithmetic before any layout is built.
    let region_bytes = capacity
        .checked_mul(elem_size)
        .and_then(|d| d.checked_add(spsc_core::DATA_OFFSET))
        .map(|b| b as u64);
    if region_bytes.is_none_or(|b| b > limit) {
        return Err(bad(region_bytes));
    }
    let layout = RingLayout::new::<T>(capacity).map_err(|_| bad(region_bytes))?;
    if setup.region_len != layout.region_size() as u64 {
        return Err(HandshakeError::RegionLengthMismatch {
            expected: layout.region_size() as u64,
            found: setup.region_len,
        });
    }
    Ok(layout)
}

/// Sends the setup message with the peer's descriptors.
pub(crate) fn send_setup(
    sock: &UnixStream,
    setup: &Setup,
    fds: &PeerFds,
) -> Result<(), HandshakeError> {
    let bytes = setup.encode();
    let borrowed = [fds.memory.as_fd(), fds.data.as_fd(), fds.room.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(wire::FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let pushed = control.push(SendAncillaryMessage::ScmRights(&borrowed));
    debug_assert!(pushed, "cmsg space is sized for the protocol's descriptors");
    let sent = sendmsg(
        sock,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(|e| HandshakeError::from(io::Error::from(e)))?;
    if sent < bytes.len() {
        // The descriptors went with the first byte; the rest is plain data.
        let mut w = sock;
        w.write_all(&bytes[sent..])?;
    }
    Ok(())
}

/// Receives a setup message and its descriptors (close-on-exec). Extra
/// descriptors are closed; a wrong count or a truncation is an error.
pub(crate) fn recv_setup(sock: &UnixStream) -> Result<(Setup, PeerFds), HandshakeError> {
    let mut bytes = [0u8; wire::SETUP_LEN];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FD_SLOTS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut bytes)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(got) => break got,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io::Error::from(e).into()),
        }
    };
    // Take ownership of every descriptor that arrived, whatever happens
    // next: dropping them closes them.
    let mut fds: Vec<OwnedFd> = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(iter) = msg {
            fds.extend(iter);
        }
    }
    if got.flags.contains(ReturnFlags::CTRUNC) {
        return Err(HandshakeError::DescriptorsTruncated);
    }
    if got.bytes == 0 {
        return Err(HandshakeError::PeerClosed);
    }
    if got.bytes < bytes.len() {
        let mut r = sock;
        r.read_exact(&mut bytes[got.bytes..]).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                HandshakeError::ShortMessage { got: got.bytes }
            } else {
                e.into()
            }
        })?;
    }
    let setup = Setup::decode(&bytes)?;
    if fds.len() != wire::FDS {
        return Err(HandshakeError::DescriptorCount {
            expected: wire::FDS,
            got: fds.len(),
        });
    }
    let mut it = fds.into_iter();
    let (Some(memory), Some(data), Some(room)) = (it.next(), it.next(), it.next()) else {
        unreachable!("length checked above");
    };
    Ok((setup, PeerFds { memory, data, room }))
}

/// Sends our answer: 0 accepts, anything else refuses.
pub(crate) fn send_ack(sock: &UnixStream, status: u32) -> Result<(), HandshakeError> {
    let mut w = sock;
    w.write_all(&wire::encode_ack(status))?;
    Ok(())
}

/// Waits for the peer's answer.
pub(crate) fn recv_ack(sock: &UnixStream) -> Result<(), HandshakeError> {
    let mut b = [0u8; wire::ACK_LEN];
    let mut r = sock;
    r.read_exact(&mut b).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            HandshakeError::PeerClosed
        } else {
            e.into()
        }
    })?;
    match wire::decode_ack(&b)? {
        0 => Ok(()),
        code => Err(HandshakeError::Refused {
            reason: RefusalReason::from_code(code),
        }),
    }
}

/// Runs `f` with the socket's read and write timeouts set to the handshake
/// timeout, restoring blocking behaviour afterwards.
pub(crate) fn with_timeout<R>(
    sock: &UnixStream,
    opts: &Options,
    f: impl FnOnce() -> Result<R, Error>,
) -> Result<R, Error> {
    sock.set_read_timeout(opts.handshake_timeout)
        .and_then(|()| sock.set_write_timeout(opts.handshake_timeout))
        .map_err(|e| Error::Handshake(e.into()))?;
    let result = f();
    let restore = sock
        .set_read_timeout(None)
        .and_then(|()| sock.set_write_timeout(None));
    let r = result?;
    restore.map_err(|e| Error::Handshake(e.into()))?;
    Ok(r)
}

/// The creating side of the handshake: makes the ring, initialises it with
/// `init`, offers it over `sock`, and waits for the peer's acceptance.
pub(crate) fn create_over<H>(
    sock: &UnixStream,
    me: Role,
    layout: RingLayout,
    opts: &Options,
    init: impl FnOnce(RawRegion) -> Result<H, spsc_core::SetupError>,
) -> Result<(H, Parts), Error> {
    let (parts, peer) = create_parts(me, &layout, opts)?;
    let handle = init(parts.region()).map_err(HandshakeError::Ring)?;
    let setup = setup_for(me, &layout, opts);
    with_timeout(sock, opts, || {
        send_setup(sock, &setup, &peer)?;
        // Our copies of the peer's descriptors are no longer needed.
        drop(peer);
        recv_ack(sock)?;
        Ok(())
    })?;
    Ok((handle, parts))
}

/// The accepting side of the handshake: receives an offer, validates
/// everything against what *we* expect, attaches with `attach`, and
/// answers (a refusal names the reason, so the peer gets a clear error).
pub(crate) fn accept_over<T, H>(
    sock: &UnixStream,
    me: Role,
    opts: &Options,
    attach: impl FnOnce(RawRegion, usize) -> Result<H, spsc_core::SetupError>,
) -> Result<(H, Parts), Error> {
    with_timeout(sock, opts, || {
        let result = (|| -> Result<(H, Parts), HandshakeError> {
            let (setup, fds) = recv_setup(sock)?;
            let layout = check_setup::<T>(&setup, me, opts)?;
            let parts = open_parts(me, &layout, fds, opts)?;
            let handle = attach(parts.region(), layout.capacity()).map_err(HandshakeError::Ring)?;
            Ok((handle, parts))
        })();
        match result {
            Ok(v) => {
                send_ack(sock, 0)?;
                Ok(v)
            }
            Err(e) => {
                if let Some(reason) = e.refusal() {
                    // Best effort: the peer may be gone already.
                    let _ = send_ack(sock, reason.code());
                }
                Err(e.into())
            }
        }
    })
}
