//! [`sharedring_offer`]: everything a peer needs to attach to a ring, for
//! users who move descriptors over a transport of their own.

use std::collections::BTreeSet;
use std::ffi::c_int;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

use sharedring::{End, Offer, PeerFds, RingKind};

use crate::error::{invalid, own_fd, Fail};

/// A ring's values and descriptors, as the socket handshake sends them
/// (docs/LAYOUT.md, "The setup message"). Made by a `create_offer`
/// function, which gives the caller the three descriptors; taken by a
/// `from_offer` function, which validates every field and takes the
/// descriptors.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sharedring_offer {
    /// 1: element ring; 2: message ring.
    pub kind: u32,
    /// The end the creator kept: 1 sender, 2 receiver.
    pub creator: u32,
    /// Element size in bytes (1 for message rings).
    pub elem_size: u32,
    /// Element alignment in bytes (1 for message rings).
    pub elem_align: u32,
    /// The element type's tag (FNV-1a 64 of its name; 0 for messages).
    pub type_tag: u64,
    /// Capacity: elements, or bytes for message rings.
    pub capacity: u64,
    /// The largest message in bytes (message rings; 0 otherwise).
    pub max_msg: u32,
    /// Whether the memory uses huge pages.
    pub hugetlb: bool,
    /// The region's length in bytes.
    pub region_len: u64,
    /// The memfd.
    pub memory_fd: c_int,
    /// The eventfd the receiver sleeps on.
    pub data_fd: c_int,
    /// The eventfd the sender sleeps on.
    pub room_fd: c_int,
}

impl sharedring_offer {
    /// The C form of an offer; the descriptors now belong to the caller.
    pub(crate) fn export(offer: Offer) -> Self {
        let fds = offer.fds;
        Self {
            kind: offer.kind.code(),
            creator: match offer.creator {
                End::Sender => 1,
                End::Receiver => 2,
            },
            elem_size: offer.elem_size,
            elem_align: offer.elem_align,
            type_tag: offer.type_tag,
            capacity: offer.capacity,
            max_msg: offer.max_msg,
            hugetlb: offer.hugetlb,
            region_len: offer.region_len,
            memory_fd: fds.memory.into_raw_fd(),
            data_fd: fds.data.into_raw_fd(),
            room_fd: fds.room.into_raw_fd(),
        }
    }

    /// The facade's offer, taking the descriptors (closed on failure).
    pub(crate) fn import(&self) -> Result<Offer, Fail> {
        let raw: [RawFd; 3] = [self.memory_fd, self.data_fd, self.room_fd];
        // Take every distinct descriptor first, so that each is closed
        // exactly once whatever is wrong with the others.
        let distinct: BTreeSet<RawFd> = raw.iter().copied().filter(|&fd| fd >= 0).collect();
        let mut owned: Vec<(RawFd, OwnedFd)> = Vec::new();
        for fd in distinct {
            owned.push((fd, own_fd(fd, "offer")?));
        }
        if owned.len() != 3 {
            return invalid(format!(
                "the offer needs three distinct open descriptors, got {raw:?}"
            ));
        }
        let mut take = |fd: RawFd| {
            let at = owned
                .iter()
                .position(|(f, _)| *f == fd)
                .expect("checked above");
            owned.swap_remove(at).1
        };
        let creator = match self.creator {
            1 => End::Sender,
            2 => End::Receiver,
            // An unknown role is the peer's to refuse; keep it visible.
            other => {
                return invalid(format!(
                    "offer.creator must be 1 (sender) or 2 (receiver), not {other}"
                ))
            }
        };
        Ok(Offer {
            kind: RingKind::from_code(self.kind),
            creator,
            elem_size: self.elem_size,
            elem_align: self.elem_align,
            type_tag: self.type_tag,
            capacity: self.capacity,
            max_msg: self.max_msg,
            region_len: self.region_len,
            hugetlb: self.hugetlb,
            fds: PeerFds {
                memory: take(self.memory_fd),
                data: take(self.data_fd),
                room: take(self.room_fd),
            },
        })
    }
}

/// The optional liveness descriptor of a `create_offer`/`from_offer` call
/// (negative: none).
pub(crate) fn liveness(fd: RawFd) -> Result<Option<OwnedFd>, Fail> {
    if fd < 0 {
        Ok(None)
    } else {
        own_fd(fd, "liveness").map(Some)
    }
}
