//! The handshake's wire format: one fixed-size setup message with the
//! descriptors attached, and a fixed-size answer. All integers in native
//! byte order (both ends run on one machine).
//!
//! Setup message, 64 bytes, with exactly three descriptors attached by
//! `SCM_RIGHTS`, in this order: the memfd, the eventfd the receiver waits
//! on ("data"), the eventfd the sender waits on ("room").
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 8 | magic `"shrdhand"` |
//! | 8 | 4 | version, 2 |
//! | 12 | 4 | ring kind (1: fixed-size elements, 2: messages) |
//! | 16 | 4 | the creator's role (1: sender, 2: receiver) |
//! | 20 | 4 | element size in bytes (1 for messages) |
//! | 24 | 8 | capacity in elements (bytes for messages) |
//! | 32 | 8 | region length in bytes |
//! | 40 | 4 | flags (bit 0: hugetlb) |
//! | 44 | 4 | maximum message size in bytes (messages; 0 otherwise) |
//! | 48 | 4 | element alignment in bytes (1 for messages) |
//! | 52 | 4 | zero |
//! | 56 | 8 | element type tag (FNV-1a 64 of the type's name; 0 for messages) |
//!
//! Version 1 had zeros at 48..64 and no type contract; a version-1 peer is
//! refused as `UnsupportedVersion`.
//!
//! Answer, 16 bytes: magic `"shrdack\0"`, then a u32 status (0: accepted,
//! otherwise a refusal reason), then 4 zero bytes.

use crate::error::HandshakeError;

pub(crate) const SETUP_LEN: usize = 64;
pub(crate) const ACK_LEN: usize = 16;
pub(crate) const SETUP_MAGIC: u64 = u64::from_le_bytes(*b"shrdhand");
pub(crate) const ACK_MAGIC: u64 = u64::from_le_bytes(*b"shrdack\0");
pub(crate) const VERSION: u32 = 2;
pub(crate) const FLAG_HUGETLB: u32 = 1;
/// Descriptors in a setup message.
pub(crate) const FDS: usize = 3;

/// Which end of the ring a side holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Sender = 1,
    Receiver = 2,
}

/// The values of a setup message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setup {
    pub kind: u32,
    pub creator: u32,
    pub elem_size: u32,
    pub capacity: u64,
    pub region_len: u64,
    pub flags: u32,
    pub max_msg: u32,
    pub elem_align: u32,
    pub type_tag: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Setup {
    pub(crate) fn encode(&self) -> [u8; SETUP_LEN] {
        let mut b = [0u8; SETUP_LEN];
        b[0..8].copy_from_slice(&SETUP_MAGIC.to_ne_bytes());
        b[8..12].copy_from_slice(&VERSION.to_ne_bytes());
        b[12..16].copy_from_slice(&self.kind.to_ne_bytes());
        b[16..20].copy_from_slice(&self.creator.to_ne_bytes());
        b[20..24].copy_from_slice(&self.elem_size.to_ne_bytes());
        b[24..32].copy_from_slice(&self.capacity.to_ne_bytes());
        b[32..40].copy_from_slice(&self.region_len.to_ne_bytes());
        b[40..44].copy_from_slice(&self.flags.to_ne_bytes());
        b[44..48].copy_from_slice(&self.max_msg.to_ne_bytes());
        b[48..52].copy_from_slice(&self.elem_align.to_ne_bytes());
        b[56..64].copy_from_slice(&self.type_tag.to_ne_bytes());
        b
    }

    /// Decodes and checks the fields that need no context.
    pub(crate) fn decode(b: &[u8; SETUP_LEN]) -> Result<Self, HandshakeError> {
        let magic = u64_at(b, 0);
        if magic != SETUP_MAGIC {
            return Err(HandshakeError::BadMagic { found: magic });
        }
        let version = u32_at(b, 8);
        if version != VERSION {
            return Err(HandshakeError::UnsupportedVersion { found: version });
        }
        Ok(Self {
            kind: u32_at(b, 12),
            creator: u32_at(b, 16),
            elem_size: u32_at(b, 20),
            capacity: u64_at(b, 24),
            region_len: u64_at(b, 32),
            flags: u32_at(b, 40),
            max_msg: u32_at(b, 44),
            elem_align: u32_at(b, 48),
            type_tag: u64_at(b, 56),
        })
    }
}

pub(crate) fn encode_ack(status: u32) -> [u8; ACK_LEN] {
    let mut b = [0u8; ACK_LEN];
    b[0..8].copy_from_slice(&ACK_MAGIC.to_ne_bytes());
    b[8..12].copy_from_slice(&status.to_ne_bytes());
    b
}

/// The status of an answer, or `BadAck`. A setup message where the
/// answer should be means the peer created a ring too.
pub(crate) fn decode_ack(b: &[u8; ACK_LEN]) -> Result<u32, HandshakeError> {
    match u64_at(b, 0) {
        ACK_MAGIC => {}
        SETUP_MAGIC => return Err(HandshakeError::BothCreated),
        _ => return Err(HandshakeError::BadAck),
    }
    Ok(u32_at(b, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_message_round_trips_and_rejects_bad_magic_and_version() {
        let s = Setup {
            kind: 1,
            creator: 2,
            elem_size: 8,
            capacity: 1024,
            region_len: 512 + 8192,
            flags: 0,
            max_msg: 0,
            elem_align: 8,
            type_tag: 0x1234,
        };
        let mut b = s.encode();
        assert_eq!(Setup::decode(&b).unwrap(), s);
        b[8] = 9;
        assert!(matches!(
            Setup::decode(&b),
            Err(HandshakeError::UnsupportedVersion { .. })
        ));
        b[0] = 0;
        assert!(matches!(
            Setup::decode(&b),
            Err(HandshakeError::BadMagic { .. })
        ));
        assert_eq!(decode_ack(&encode_ack(3)).unwrap(), 3);
        assert!(decode_ack(&[0; ACK_LEN]).is_err());
    }
}
