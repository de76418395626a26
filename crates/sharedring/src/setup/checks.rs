//! The checks of what the peer sent: every value of its setup message
//! against what *we* expect, before anything is mapped. The layout we map
//! is computed by us from checked numbers, never taken from the peer.

use spsc_core::{MsgLayout, RingLayout, KIND_ELEMENTS, KIND_MESSAGES};

use super::wire::{Role, Setup};
use super::{Contract, Geometry};
use crate::elements::element::{describe, Element};
use crate::error::HandshakeError;
use crate::options::{Options, DEFAULT_MAX_MSG};

/// The checks every offer passes: kind, roles, element size, and a region
/// within our limit (computed with checked arithmetic before any layout is
/// built; the limit counts the data, not the 512-byte header). Returns the
/// capacity.
fn check_common(
    setup: &Setup,
    me: Role,
    kind: u32,
    elem_size: usize,
    opts: &Options,
) -> Result<usize, HandshakeError> {
    if setup.kind != kind {
        return Err(HandshakeError::WrongKind {
            found: setup.kind,
            expected: kind,
        });
    }
    if setup.creator == me as u32 {
        return Err(HandshakeError::SameEnd { end: me.into() });
    }
    if setup.creator != Role::Sender as u32 && setup.creator != Role::Receiver as u32 {
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
    let data_bytes = capacity.and_then(|c| c.checked_mul(elem_size));
    let region_bytes = data_bytes
        .and_then(|d| d.checked_add(spsc_core::DATA_OFFSET))
        .map(|b| b as u64);
    match (capacity, data_bytes, region_bytes) {
        (Some(capacity), Some(data), Some(_)) if data as u64 <= limit => Ok(capacity),
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

/// The element contract of `T`.
pub(crate) fn contract_of<T: Element>() -> Contract {
    Contract {
        align: std::mem::align_of::<T>() as u32,
        tag: T::TAG.hash(),
    }
}

/// Checks a peer's offer of a ring of `T` against what *we* expect, and
/// returns the layout we will map (computed by us, never taken from the
/// peer).
pub(crate) fn check_elements<T: Element>(
    setup: &Setup,
    me: Role,
    opts: &Options,
) -> Result<Geometry, HandshakeError> {
    let ours = contract_of::<T>();
    let size = std::mem::size_of::<T>() as u32;
    if setup.kind == KIND_ELEMENTS
        && (setup.elem_size != size || setup.elem_align != ours.align || setup.type_tag != ours.tag)
    {
        return Err(HandshakeError::TypeMismatch {
            ours: describe(Some(std::any::type_name::<T>()), ours.tag, size, ours.align),
            peer: describe(None, setup.type_tag, setup.elem_size, setup.elem_align),
        });
    }
    let capacity = check_common(setup, me, KIND_ELEMENTS, size as usize, opts)?;
    let layout = RingLayout::new::<T>(capacity).map_err(|_| HandshakeError::BadCapacity {
        capacity: setup.capacity,
        region_bytes: None,
        limit: opts.max_region as u64,
    })?;
    let geometry = Geometry::Elements(layout, ours);
    check_region_len(setup, &geometry)?;
    Ok(geometry)
}

/// Checks a peer's offer of a message ring: as [`check_elements`], plus a
/// maximum message size that the capacity allows and that is within ours.
pub(crate) fn check_messages(
    setup: &Setup,
    me: Role,
    opts: &Options,
) -> Result<Geometry, HandshakeError> {
    let capacity = check_common(setup, me, KIND_MESSAGES, 1, opts)?;
    if setup.elem_align != 1 || setup.type_tag != 0 {
        return Err(HandshakeError::TypeMismatch {
            ours: "messages (1 B, align 1)".into(),
            peer: describe(None, setup.type_tag, setup.elem_size, setup.elem_align),
        });
    }
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
