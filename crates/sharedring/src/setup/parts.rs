//! The descriptors we own: creating a ring's memory and wake-ups, and
//! opening (validating) the ones the peer sent.

use std::os::fd::{AsFd, OwnedFd};

use eventfd_notify::{Notifier, Waiter};
use shmem_seal::{MemfdBuilder, SharedMapping, SharedMemory};
use spsc_core::RawRegion;

use super::wire::Role;
use super::Geometry;
use crate::error::{Error, HandshakeError};
use crate::options::Options;

/// What one side holds of a ring besides the ring handle itself: the
/// mapping, our eventfd and a duplicate of the peer's. No memfd
/// descriptor: it is closed once mapped (the peer's copy went out before),
/// so a ring end holds these two eventfds, the liveness socket, and, once
/// it first wakes a sleeping peer, the notifier's io_uring.
#[derive(Debug)]
pub(crate) struct Parts {
    /// The mapping. Handles built on [`Parts::region`] must be dropped
    /// before it.
    pub shm: SharedMapping,
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
        memory: shm.as_fd().try_clone_to_owned().map_err(Error::from)?,
        data: data.try_clone_fd()?,
        room: room.try_clone_fd()?,
    };
    // The peer's duplicate is made: ours is no longer needed.
    let shm = shm.into_mapping();
    let (wait_own, peer_waits) = match role {
        Role::Sender => (room, data),
        Role::Receiver => (data, room),
    };
    // Our own eventfd: no need to inspect it through /proc.
    let wake_peer = Notifier::for_waiter(&peer_waits)?;
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
    .map_err(HandshakeError::Memory)?
    // Mapped: the descriptor is no longer needed.
    .into_mapping();
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
