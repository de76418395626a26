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
use spsc_core::{MsgLayout, RawRegion, RingLayout, KIND_ELEMENTS, KIND_MESSAGES};

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

/// The shape of a ring: fixed-size elements, or variable-size messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Geometry {
    Elements(RingLayout),
    Messages(MsgLayout),
}

impl Geometry {
    pub(crate) fn region_size(&self) -> usize {
        match self {
            Self::Elements(l) => l.region_size(),
            Self::Messages(l) => l.region_size(),
        }
    }

    /// Capacity: elements, or bytes for messages.
    pub(crate) fn capacity(&self) -> usize {
        match self {
            Self::Elements(l) => l.capacity(),
            Self::Messages(l) => l.capacity(),
        }
    }

    /// The maximum message size (0 for element rings).
    pub(crate) fn max_msg(&self) -> usize {
        match self {
            Self::Elements(_) => 0,
            Self::Messages(l) => l.max_msg(),
        }
    }

    fn setup(&self, creator: Role, opts: &Options) -> Setup {
        let (kind, elem_size) = match self {
            Self::Elements(l) => (KIND_ELEMENTS, l.elem_size()),
            Self::Messages(_) => (KIND_MESSAGES, 1),
        };
        let (capacity, max_msg) = (self.capacity(), self.max_msg());
        Setup {
            kind,
            creator: creator as u32,
            elem_size: elem_size as u32,
            capacity: capacity as u64,
            region_len: self.region_size() as u64,
            flags: if opts.hugetlb.is_some() {
                wire::FLAG_HUGETLB
            } else {
                0
            },
            max_msg: max_msg as u32,
        }
    }
}

impl From<RingLayout> for Geometry {
    fn from(l: RingLayout) -> Self {
        Self::Elements(l)
    }
}

impl From<MsgLayout> for Geometry {
    fn from(l: MsgLayout) -> Self {
        Self::Messages(l)
    }
}

/// Creates the memory and wake-ups of a ring for `role`.
pub(crate) fn create_parts(
    role: Role,
    geometry: &Geometry,
    opts: &Options,
) -> Result<(Parts, PeerFds), Error> {
    let mut builder = MemfdBuilder::new("sharedring").mlock(opts.mlock);
    if let Some(size) = opts.hugetlb {
        builder = builder.hugetlb(size);
    }
    let shm = builder.create(geometry.region_size())?;
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
/// mapping exactly `geometry.region_size()` bytes (our number, never the
/// peer's).
pub(crate) fn open_parts(
    role: Role,
    geometry: &Geometry,
    fds: PeerFds,
    opts: &Options,
) -> Result<Parts, HandshakeError> {
    let len = geometry.region_size();
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

/// The setup values for a ring of `geometry` created by `creator`.
pub(crate) fn setup_for(creator: Role, geometry: &Geometry, opts: &Options) -> Setup {
    geometry.setup(creator, opts)
}

/// The checks every offer passes: kind, roles, element size, and a region
/// within our limit (computed with checked arithmetic before any layout is
/// built). Returns the capacity.
fn check_common(
    setup: &Setup,
    me: Role,
    kind: u32,
    elem_size: usize,
    opts: &Options,
) -> Result<usize, HandshakeError> {
    if setup.kind != kind {
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
    let capacity = usize::try_from(setup.capacity).ok();
    let region_bytes = capacity
        .and_then(|c| c.checked_mul(elem_size))
        .and_then(|d| d.checked_add(spsc_core::DATA_OFFSET))
        .map(|b| b as u64);
    match (capacity, region_bytes) {
        (Some(capacity), Some(bytes)) if bytes <= limit => Ok(capacity),
        _ => Err(HandshakeError::BadCapacity {
            capacity: setup.capacity,
            region_bytes,
            limit,
        }),
    }
}

/// The peer's region length must be the one *we* compute.
fn check_region_len(setup: &Setup, geometry: &Geometry) -> Result<(), HandshakeError> {
    let expected = geometry.region_size() as u64;
    if setup.region_len != expected {
        return Err(HandshakeError::RegionLengthMismatch {
            expected,
            found: setup.region_len,
        });
    }
    Ok(())
}

/// Checks a peer's offer of a ring of `T` against what *we* expect, and
/// returns the layout we will map (computed by us, never taken from the
/// peer).
pub(crate) fn check_setup<T>(
    setup: &Setup,
    me: Role,
    opts: &Options,
) -> Result<Geometry, HandshakeError> {
    let capacity = check_common(setup, me, KIND_ELEMENTS, std::mem::size_of::<T>(), opts)?;
    let layout = RingLayout::new::<T>(capacity).map_err(|_| HandshakeError::BadCapacity {
        capacity: setup.capacity,
        region_bytes: None,
        limit: opts.max_region as u64,
    })?;
    let geometry = Geometry::Elements(layout);
    check_region_len(setup, &geometry)?;
    Ok(geometry)
}

/// Checks a peer's offer of a message ring: as [`check_setup`], plus a
/// maximum message size that the capacity allows and that is within ours.
pub(crate) fn check_msg_setup(
    setup: &Setup,
    me: Role,
    opts: &Options,
) -> Result<Geometry, HandshakeError> {
    let capacity = check_common(setup, me, KIND_MESSAGES, 1, opts)?;
    let max_msg = setup.max_msg as usize;
    if opts.max_msg.is_some_and(|ours| max_msg > ours) {
        return Err(HandshakeError::BadMaxMessage {
            max_msg: setup.max_msg,
            limit: opts.max_msg.unwrap_or(0) as u64,
        });
    }
    let layout = MsgLayout::new(capacity, max_msg).map_err(|e| match e {
        spsc_core::LayoutError::MaxMessageTooLarge { limit, .. } => HandshakeError::BadMaxMessage {
            max_msg: setup.max_msg,
            limit: limit as u64,
        },
        _ => HandshakeError::BadCapacity {
            capacity: setup.capacity,
            region_bytes: None,
            limit: opts.max_region as u64,
        },
    })?;
    let geometry = Geometry::Messages(layout);
    check_region_len(setup, &geometry)?;
    Ok(geometry)
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
    geometry: Geometry,
    opts: &Options,
    init: impl FnOnce(RawRegion) -> Result<H, spsc_core::SetupError>,
) -> Result<(H, Parts), Error> {
    let (parts, peer) = create_parts(me, &geometry, opts)?;
    let handle = init(parts.region()).map_err(HandshakeError::Ring)?;
    let setup = setup_for(me, &geometry, opts);
    with_timeout(sock, opts, || {
        send_setup(sock, &setup, &peer)?;
        // Our copies of the peer's descriptors are no longer needed.
        drop(peer);
        recv_ack(sock)?;
        Ok(())
    })?;
    Ok((handle, parts))
}

/// The accepting side of the handshake: receives an offer, validates it
/// with `check` against what *we* expect, maps and attaches with `attach`,
/// and answers (a refusal names the reason, so the peer gets a clear
/// error).
pub(crate) fn accept_over<H>(
    sock: &UnixStream,
    me: Role,
    opts: &Options,
    check: impl FnOnce(&Setup, Role, &Options) -> Result<Geometry, HandshakeError>,
    attach: impl FnOnce(RawRegion, &Geometry) -> Result<H, spsc_core::SetupError>,
) -> Result<(H, Parts), Error> {
    with_timeout(sock, opts, || {
        let result = (|| -> Result<(H, Parts), HandshakeError> {
            let (setup, fds) = recv_setup(sock)?;
            let geometry = check(&setup, me, opts)?;
            let parts = open_parts(me, &geometry, fds, opts)?;
            let handle = attach(parts.region(), &geometry).map_err(HandshakeError::Ring)?;
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
