//! The broadcast handshake's one message: the publisher's offer, 64
//! bytes with three descriptors (`SCM_RIGHTS`), native byte order. There
//! is no answer: a subscriber that refuses the offer closes its socket,
//! which the publisher sees as that subscriber leaving. So adding a
//! subscriber never waits for it.
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 8 | magic `"shrdbofr"` |
//! | 8 | 4 | version, 1 |
//! | 12 | 4 | ring kind, 3 (broadcast) |
//! | 16 | 4 | slots (a power of two) |
//! | 20 | 4 | maximum message size in bytes |
//! | 24 | 8 | data region length in bytes |
//! | 32 | 4 | element size in bytes (0: byte messages) |
//! | 36 | 4 | element alignment in bytes (0: byte messages) |
//! | 40 | 8 | element type tag (FNV-1a 64 of the type's name; 0: bytes) |
//! | 48 | 4 | flags (bit 0: reliable mode) |
//! | 52 | 4 | history offered, in messages |
//! | 56 | 8 | the subscriber's id at the publisher |
//!
//! Descriptors, in order: the data memfd (sealed `F_SEAL_FUTURE_WRITE |
//! F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`), this subscriber's control
//! memfd (4096 bytes, read-write), the eventfd shared by all subscribers.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::error::BroadcastError;
use crate::error::HandshakeError;
use crate::setup::transport::{Deadline, Incoming, Received, FD_SLOTS};

pub(crate) const OFFER_LEN: usize = 64;
pub(crate) const OFFER_MAGIC: u64 = u64::from_le_bytes(*b"shrdbofr");
pub(crate) const VERSION: u32 = 1;
pub(crate) const FLAG_RELIABLE: u32 = 1;
pub(crate) const FDS: usize = 3;

/// The values of an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offer {
    pub slots: u32,
    pub max_msg: u32,
    pub region_len: u64,
    pub elem_size: u32,
    pub elem_align: u32,
    pub type_tag: u64,
    pub flags: u32,
    pub history: u32,
    pub id: u64,
}

fn u32_at(b: &[u8; OFFER_LEN], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8; OFFER_LEN], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Offer {
    pub(crate) fn encode(&self) -> [u8; OFFER_LEN] {
        let mut b = [0u8; OFFER_LEN];
        b[0..8].copy_from_slice(&OFFER_MAGIC.to_ne_bytes());
        b[8..12].copy_from_slice(&VERSION.to_ne_bytes());
        b[12..16].copy_from_slice(&spsc_core::broadcast::KIND_BROADCAST.to_ne_bytes());
        b[16..20].copy_from_slice(&self.slots.to_ne_bytes());
        b[20..24].copy_from_slice(&self.max_msg.to_ne_bytes());
        b[24..32].copy_from_slice(&self.region_len.to_ne_bytes());
        b[32..36].copy_from_slice(&self.elem_size.to_ne_bytes());
        b[36..40].copy_from_slice(&self.elem_align.to_ne_bytes());
        b[40..48].copy_from_slice(&self.type_tag.to_ne_bytes());
        b[48..52].copy_from_slice(&self.flags.to_ne_bytes());
        b[52..56].copy_from_slice(&self.history.to_ne_bytes());
        b[56..64].copy_from_slice(&self.id.to_ne_bytes());
        b
    }

    /// Decodes, checking the fields that need no context.
    pub(crate) fn decode(b: &[u8; OFFER_LEN]) -> Result<Self, BroadcastError> {
        let check = |field, expected: u64, found: u64| {
            if expected == found {
                Ok(())
            } else {
                Err(BroadcastError::Refused {
                    field,
                    expected,
                    found,
                })
            }
        };
        check("magic", OFFER_MAGIC, u64_at(b, 0))?;
        check("version", VERSION.into(), u32_at(b, 8).into())?;
        check(
            "kind",
            spsc_core::broadcast::KIND_BROADCAST.into(),
            u32_at(b, 12).into(),
        )?;
        Ok(Self {
            slots: u32_at(b, 16),
            max_msg: u32_at(b, 20),
            region_len: u64_at(b, 24),
            elem_size: u32_at(b, 32),
            elem_align: u32_at(b, 36),
            type_tag: u64_at(b, 40),
            flags: u32_at(b, 48),
            history: u32_at(b, 52),
            id: u64_at(b, 56),
        })
    }
}

/// Sends the offer and its three descriptors in one non-blocking
/// `sendmsg`. A fresh socket always has room for 64 bytes; a full one
/// (a peer that wrote to us first and never reads is no reason to wait)
/// is an error.
pub(crate) fn send_offer(
    sock: BorrowedFd<'_>,
    offer: &Offer,
    fds: [BorrowedFd<'_>; FDS],
) -> Result<(), BroadcastError> {
    let bytes = offer.encode();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let pushed = control.push(SendAncillaryMessage::ScmRights(&fds));
    debug_assert!(pushed, "cmsg space is sized for the protocol's descriptors");
    loop {
        match sendmsg(
            sock,
            &[IoSlice::new(&bytes)],
            &mut control,
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
        ) {
            Ok(n) if n == OFFER_LEN => return Ok(()),
            Ok(n) => {
                return Err(BroadcastError::Io(std::io::Error::other(format!(
                    "the subscriber's socket took only {n} of the offer's {OFFER_LEN} bytes"
                ))))
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives the offer and its descriptors, within `timeout` in total
/// (a publisher that sends one byte at a time cannot stretch it): the
/// handshake's own resumable receive and deadline (`setup::transport`),
/// so a descriptor the kernel could not install because *we* are out of
/// them is reported as ours (`EMFILE`), not as the publisher's fault.
pub(crate) fn recv_offer(
    sock: BorrowedFd<'_>,
    timeout: Duration,
) -> Result<(Offer, [OwnedFd; FDS]), BroadcastError> {
    let deadline = Deadline::after(Some(timeout));
    let mut incoming = Incoming::<OFFER_LEN>::new();
    loop {
        match incoming.recv(sock).map_err(from_handshake)? {
            Received::Complete => break,
            Received::Pending => deadline.wait(sock, PollFlags::IN).map_err(from_handshake)?,
            Received::Closed => return Err(BroadcastError::PeerGone),
        }
    }
    let (bytes, fds) = incoming.into_parts();
    let offer = Offer::decode(&bytes)?;
    let count = fds.len();
    let fds: [OwnedFd; FDS] = fds
        .try_into()
        .map_err(|_| BroadcastError::DescriptorCount {
            expected: FDS,
            got: count,
        })?;
    Ok((offer, fds))
}

/// A failure of the shared receive, as the broadcast reports it.
fn from_handshake(e: HandshakeError) -> BroadcastError {
    match e {
        HandshakeError::TimedOut => BroadcastError::HandshakeTimedOut,
        HandshakeError::PeerClosed | HandshakeError::ShortMessage { .. } => {
            BroadcastError::PeerGone
        }
        HandshakeError::DescriptorsTruncated => BroadcastError::DescriptorCount {
            expected: FDS,
            got: FD_SLOTS + 1,
        },
        HandshakeError::Io(e) => BroadcastError::Io(e),
        other => BroadcastError::Io(std::io::Error::other(other)),
    }
}

/// Whether the socket says the other side is gone: hung up, at end of
/// file, in error, or readable at all (nothing is ever sent after the
/// offer, so data there is a breach and treated the same). Never blocks.
pub(crate) fn gone(sock: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(
        &sock,
        PollFlags::IN | PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR,
    )];
    matches!(poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(n) if n > 0)
}

/// The sockets among `socks` that say their peer is gone, in one `poll`.
pub(crate) fn gone_many(socks: &[BorrowedFd<'_>]) -> Vec<usize> {
    let mut fds: Vec<PollFd<'_>> = socks
        .iter()
        .map(|s| {
            PollFd::new(
                s,
                PollFlags::IN | PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR,
            )
        })
        .collect();
    match poll(
        &mut fds,
        Some(&Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    ) {
        Ok(n) if n > 0 => fds
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.revents().is_empty())
            .map(|(i, _)| i)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_round_trips_and_rejects_bad_magic_version_and_kind() {
        let o = Offer {
            slots: 64,
            max_msg: 4096,
            region_len: 1 << 20,
            elem_size: 8,
            elem_align: 8,
            type_tag: 0xabc,
            flags: FLAG_RELIABLE,
            history: 3,
            id: 7,
        };
        let mut b = o.encode();
        assert_eq!(Offer::decode(&b).unwrap(), o);
        for (at, field) in [(12, "kind"), (8, "version"), (0, "magic")] {
            b[at] ^= 0xff;
            match Offer::decode(&b) {
                Err(BroadcastError::Refused { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }
}
