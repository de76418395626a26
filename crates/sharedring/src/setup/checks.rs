//! The checks of what the peer sent: every value of its setup message
//! against what *we* expect, before anything is mapped. The layout we map
//! is computed by us from checked numbers, never taken from the peer.

use spsc_core::{MsgLayout, RingLayout, KIND_ELEMENTS, KIND_MESSAGES};

use super::wire::{Role, Setup};
use super::Geometry;
use crate::error::HandshakeError;
use crate::options::{Options, DEFAULT_MAX_MSG};

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
    let ours = opts.max_msg.unwrap_or(DEFAULT_MAX_MSG);
    if max_msg > ours {
        return Err(HandshakeError::BadMaxMessage {
            max_msg: setup.max_msg,
            limit: ours as u64,
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
