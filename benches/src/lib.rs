//! Support code shared by the benchmarks in `benches/`.
//!
//! - [`HeapRegion`]: a heap buffer standing in for a shared mapping.
//! - [`pin_to_cpu`]: every cross-process and cross-thread bench runs its
//!   two sides on CPUs 0 and 1.
//! - [`peer`]: peers are this same bench binary, re-executed with a role
//!   in the environment, so a bench may spawn one per row at any time
//!   (also after criterion or a thread has started).
//! - [`SharedPage`], [`SharedMap`]: memfd mappings shared by two
//!   processes, for the raw atomic, futex and validated one-line
//!   references and the probe; [`unchecked`]: the unchecked ring, the
//!   reference for streaming.
//! - [`probe`]: the raw cross-core atomic ping-pong run before and after
//!   every row, and [`harness`]: criterion rows wrapped with that probe,
//!   rerun in the slow mode, and recorded in `target/bench-report/`, with
//!   the latency percentiles of round-trip rows.

use core::ptr::NonNull;

use spsc_core::{RawRegion, RingLayout};

pub mod harness;
pub mod peer;
pub mod probe;
mod shared_page;
pub mod unchecked;

pub use shared_page::{SharedMap, SharedPage};

/// A heap buffer standing in for a shared mapping in in-process benches,
/// aligned to 128 bytes like a mapping's start.
pub struct HeapRegion {
    lines: Box<[Line]>,
    len: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Line([u8; 128]);

impl HeapRegion {
    /// A zeroed buffer big enough for a ring of `capacity` elements of `T`.
    pub fn for_ring<T>(capacity: usize) -> Self {
        let len = RingLayout::new::<T>(capacity)
            .expect("valid bench geometry")
            .region_size();
        Self {
            lines: vec![Line([0; 128]); len.div_ceil(128)].into_boxed_slice(),
            len,
        }
    }

    /// The region. The buffer must outlive every handle built on it and
    /// must not be touched otherwise meanwhile.
    pub fn region(&mut self) -> RawRegion {
        let ptr = NonNull::new(self.lines.as_mut_ptr().cast::<u8>()).expect("non-null box");
        // SAFETY: the buffer is valid for `len` bytes while `self` lives;
        // callers keep `self` alive for as long as their handles.
        unsafe { RawRegion::new(ptr, self.len) }
    }
}

/// Pins the calling thread to `cpu`, if the machine has two CPUs or more;
/// returns whether it did. The parent (or main thread) of every bench runs
/// on CPU 0 and its peer on CPU 1: without pinning, the scheduler sometimes
/// puts both sides on one CPU, where spinning cannot help and every figure
/// changes.
///
/// (Not `available_parallelism`: it counts the CPUs of the caller's
/// affinity mask, which a peer inherits pinned to CPU 0.)
pub fn pin_to_cpu(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

/// A buffer of `len` bytes whose start is at `offset` modulo 4096, so that
/// a bench controls how caller buffers sit relative to ring slots (glibc's
/// `rep movsb` copies are far slower when the destination is 8 or 16 bytes
/// ahead of the source modulo 4096).
pub struct PlacedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl PlacedBuf {
    /// `len` bytes filled with `fill`, starting at `offset % 4096` within a
    /// page.
    pub fn new(len: usize, offset: usize, fill: u8) -> Self {
        let storage = vec![fill; len + 8192];
        let base = storage.as_ptr() as usize;
        let start = (offset % 4096 + 4096 - base % 4096) % 4096;
        Self {
            storage,
            start,
            len,
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// The page offset of the first slot of a ring mapped at a page boundary.
pub const RING_SLOT_PAGE_OFFSET: usize = spsc_core::DATA_OFFSET % 4096;

/// How caller buffers sit relative to the ring's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Same offset modulo 4096 as the ring's slots.
    Aligned,
    /// The copy's destination is 8 bytes ahead of its source modulo 4096,
    /// in both directions (glibc memcpy's 4K-aliasing cliff).
    Skew8,
}

impl Placement {
    /// The page offset of a buffer we copy *from* into the ring.
    pub fn source_offset(self) -> usize {
        match self {
            Placement::Aligned => RING_SLOT_PAGE_OFFSET,
            Placement::Skew8 => RING_SLOT_PAGE_OFFSET + 4096 - 8,
        }
    }

    /// The page offset of a buffer we copy *into* out of the ring.
    pub fn dest_offset(self) -> usize {
        match self {
            Placement::Aligned => RING_SLOT_PAGE_OFFSET,
            Placement::Skew8 => RING_SLOT_PAGE_OFFSET + 8,
        }
    }

    /// A short name used in row ids.
    pub fn suffix(self) -> &'static str {
        match self {
            Placement::Aligned => "",
            Placement::Skew8 => "-skew8",
        }
    }
}
