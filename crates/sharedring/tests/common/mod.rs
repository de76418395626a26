//! Plumbing shared by the hostile-peer tests: the handshake's wire format
//! encoded by hand (as a peer written in C would), real descriptors of
//! every kind, descriptor counting, and a small random generator.
//!
//! Nothing here uses sharedring's own encoder: a test that encoded the
//! hostile messages with the code under test could not catch a mismatch
//! between that code and the documented format.

#![allow(dead_code)] // Each test binary uses a different part.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::event::{eventfd, EventfdFlags};
use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};

/// The setup message's size, magic and version (`wire.rs`, documented).
pub const SETUP_LEN: usize = 64;
pub const SETUP_MAGIC: [u8; 8] = *b"shrdhand";
pub const VERSION: u32 = 2;
/// Ring kind 1: fixed-size elements.
pub const KIND_ELEMENTS: u32 = 1;
/// Role codes in the setup message.
pub const ROLE_SENDER: u32 = 1;
pub const ROLE_RECEIVER: u32 = 2;
/// The answer: 16 bytes, magic, u32 status, 4 zero bytes.
pub const ACK_LEN: usize = 16;
pub const ACK_MAGIC: [u8; 8] = *b"shrdack\0";

/// The ring header (`docs/LAYOUT.md`): magic, version, kind, element size,
/// reserved, capacity, data offset; then the control words.
pub const RING_MAGIC: [u8; 8] = *b"shrdring";
pub const DATA_OFFSET: u64 = 512;
pub const WRITE_POS: usize = 128;
pub const PRODUCER_WAIT: usize = 388;
pub const READ_POS: usize = 256;
pub const CONSUMER_WAIT: usize = 384;

/// The values of a setup message, as a hostile peer chooses them.
#[derive(Debug, Clone, Copy)]
pub struct SetupFields {
    pub magic: [u8; 8],
    pub version: u32,
    pub kind: u32,
    pub creator: u32,
    pub elem_size: u32,
    pub capacity: u64,
    pub region_len: u64,
    pub flags: u32,
    pub elem_align: u32,
    pub type_tag: u64,
}

/// FNV-1a 64 of `name`: the element type tag (`docs/LAYOUT.md`), computed
/// here by hand rather than with the crate's own code.
pub fn type_tag(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl SetupFields {
    /// What an honest creator of a `u64` ring of `capacity` elements that
    /// keeps the sending end would send.
    pub fn honest_u64_sender(capacity: u64) -> Self {
        Self {
            magic: SETUP_MAGIC,
            version: VERSION,
            kind: KIND_ELEMENTS,
            creator: ROLE_SENDER,
            elem_size: 8,
            capacity,
            region_len: DATA_OFFSET + capacity * 8,
            flags: 0,
            elem_align: 8,
            type_tag: type_tag("u64"),
        }
    }

    /// The 64 bytes on the wire, native byte order.
    pub fn encode(&self) -> [u8; SETUP_LEN] {
        let mut b = [0u8; SETUP_LEN];
        b[0..8].copy_from_slice(&self.magic);
        b[8..12].copy_from_slice(&self.version.to_ne_bytes());
        b[12..16].copy_from_slice(&self.kind.to_ne_bytes());
        b[16..20].copy_from_slice(&self.creator.to_ne_bytes());
        b[20..24].copy_from_slice(&self.elem_size.to_ne_bytes());
        b[24..32].copy_from_slice(&self.capacity.to_ne_bytes());
        b[32..40].copy_from_slice(&self.region_len.to_ne_bytes());
        b[40..44].copy_from_slice(&self.flags.to_ne_bytes());
        b[48..52].copy_from_slice(&self.elem_align.to_ne_bytes());
        b[56..64].copy_from_slice(&self.type_tag.to_ne_bytes());
        b
    }
}

/// An answer with `status` (0 accepts).
pub fn ack(status: u32) -> [u8; ACK_LEN] {
    let mut b = [0u8; ACK_LEN];
    b[0..8].copy_from_slice(&ACK_MAGIC);
    b[8..12].copy_from_slice(&status.to_ne_bytes());
    b
}

/// What the hostile side heard back after its offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// The socket closed without a byte.
    Nothing,
    /// A well-formed answer with this status.
    Ack(u32),
    /// Something else.
    Garbage,
}

/// Reads until 16 bytes or end of file, and says what they were.
pub fn read_ack(sock: &UnixStream) -> Heard {
    let mut b = [0u8; ACK_LEN];
    let mut got = 0;
    let mut r = sock;
    while got < ACK_LEN {
        match r.read(&mut b[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    if got == 0 {
        Heard::Nothing
    } else if got == ACK_LEN && b[0..8] == ACK_MAGIC && b[12..16] == [0; 4] {
        Heard::Ack(u32::from_ne_bytes(b[8..12].try_into().unwrap()))
    } else {
        Heard::Garbage
    }
}

/// Blocks until the other end hangs up.
pub fn wait_for_hangup(sock: &UnixStream) {
    let mut rest = Vec::new();
    let _ = (&mut &*sock).read_to_end(&mut rest);
}

/// A memfd of `len` bytes. `sealable`: made with `MFD_ALLOW_SEALING`.
pub fn memfd(len: u64, sealable: bool) -> OwnedFd {
    let mut flags = MemfdFlags::CLOEXEC;
    if sealable {
        flags |= MemfdFlags::ALLOW_SEALING;
    }
    let fd = memfd_create("hostile", flags).expect("memfd_create");
    ftruncate(&fd, len).expect("ftruncate");
    fd
}

/// A sealable memfd of `len` bytes, sealed against shrinking and growing.
pub fn sealed_memfd(len: u64) -> OwnedFd {
    let fd = memfd(len, true);
    fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).expect("seal");
    fd
}

/// Writes a ring header (layout v1) for `capacity` elements of
/// `elem_size` bytes into `fd`, with `magic` as the first word.
pub fn write_header(fd: impl AsFd, magic: [u8; 8], elem_size: u32, capacity: u64) {
    let mut h = [0u8; 40];
    h[0..8].copy_from_slice(&magic);
    h[8..12].copy_from_slice(&1u32.to_ne_bytes());
    h[12..16].copy_from_slice(&KIND_ELEMENTS.to_ne_bytes());
    h[16..20].copy_from_slice(&elem_size.to_ne_bytes());
    h[24..32].copy_from_slice(&capacity.to_ne_bytes());
    h[32..40].copy_from_slice(&DATA_OFFSET.to_ne_bytes());
    let n = rustix::io::pwrite(fd, &h, 0).expect("pwrite header");
    assert_eq!(n, h.len());
}

/// A fresh eventfd (not in semaphore mode).
pub fn eventfd_fd() -> OwnedFd {
    eventfd(0, EventfdFlags::CLOEXEC).expect("eventfd")
}

/// The read end of a fresh pipe (the write end is closed).
pub fn pipe_fd() -> OwnedFd {
    let (r, _w) = nix::unistd::pipe().expect("pipe");
    r
}

/// One end of a fresh socket pair.
pub fn socket_fd() -> OwnedFd {
    let (a, _b) = UnixStream::pair().expect("socketpair");
    a.into()
}

/// xorshift64*: reproducible from its seed, which the tests print.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A seed from the clock and the process id.
    pub fn seed() -> u64 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        t ^ (u64::from(std::process::id()) << 32)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `Timespec` of a duration.
fn timespec(d: std::time::Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// `epoll_wait` for at most `timeout`, resumed with the time left when
/// interrupted. A sleep can be interrupted without any signal: a thread
/// that submitted to an io_uring (the notifier of a ring end, or of a
/// broadcast publisher) gets task work when that io_uring closes, which
/// ends its next wait with `EINTR` (ARCHITECTURE, "EINTR"). Returns how
/// many events arrived (0 at the timeout).
pub fn epoll_wait_for(
    ep: impl AsFd,
    events: &mut Vec<rustix::event::epoll::Event>,
    timeout: std::time::Duration,
) -> usize {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        events.clear();
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rustix::event::epoll::wait(
            &ep,
            rustix::buffer::spare_capacity(events),
            Some(&timespec(left)),
        ) {
            Ok(_) => return events.len(),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("epoll_wait: {e}"),
        }
    }
}

/// `poll` for at most `timeout`, resumed with the time left when
/// interrupted (see [`epoll_wait_for`]). Returns how many descriptors are
/// ready (0 at the timeout).
pub fn poll_for(fds: &mut [rustix::event::PollFd<'_>], timeout: std::time::Duration) -> usize {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rustix::event::poll(fds, Some(&timespec(left))) {
            Ok(n) => return n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}
