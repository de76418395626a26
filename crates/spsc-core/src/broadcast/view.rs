//! Raw access to a broadcast data region and to a control region.
//!
//! Every word the other side may write is reached as an atomic built from
//! a raw pointer (never a reference to a struct in shared memory), and
//! payload bytes move with the volatile copies of `crate::copy`. Under
//! `--cfg loom` the hot words and the payload are loom atomics in a
//! [`LoomRegion`] (payload as relaxed 8-byte atomics: the seqlock's data
//! race, expressed in a form the model checker understands).

use core::ptr::NonNull;

#[cfg(not(loom))]
use super::layout::{control, slot};
use super::layout::{header, BcastLayout, BCAST_DATA_OFFSET};
use crate::region::RawRegion;
use crate::sync::{AtomicU32, AtomicU64};

/// Loom only: the words the model checker tracks, placed at offset 128 of
/// a loom test region.
#[cfg(loom)]
#[repr(C)]
pub(crate) struct LoomRegion {
    pub(crate) head: AtomicU64,
    pub(crate) wake: AtomicU32,
    pub(crate) closed: AtomicU32,
    pub(crate) stamps: [AtomicU64; LOOM_SLOTS],
    pub(crate) lens: [AtomicU32; LOOM_SLOTS],
    pub(crate) payload: [[AtomicU64; LOOM_WORDS]; LOOM_SLOTS],
}

/// Loom models use rings of at most this many slots...
#[cfg(loom)]
pub(crate) const LOOM_SLOTS: usize = 4;
/// ...of at most this many 8-byte payload words.
#[cfg(loom)]
pub(crate) const LOOM_WORDS: usize = 2;

/// Loom only: a control region's words.
#[cfg(loom)]
#[repr(C)]
pub(crate) struct LoomControl {
    pub(crate) cursor: AtomicU64,
    pub(crate) wait: AtomicU32,
    pub(crate) wait_how: AtomicU32,
}

/// Checks a region's alignment (64) and length.
pub(crate) fn check_region(
    region: &RawRegion,
    needed: usize,
) -> Result<(), super::error::BcastSetupError> {
    let addr = region.as_ptr() as usize;
    if addr % 64 != 0 {
        return Err(super::error::BcastSetupError::Misaligned { addr });
    }
    if region.len() < needed {
        return Err(super::error::BcastSetupError::RegionTooSmall {
            needed,
            len: region.len(),
        });
    }
    Ok(())
}

/// A checked view of a data region: the base and *our* geometry.
#[derive(Debug)]
pub(crate) struct DataView {
    base: NonNull<u8>,
    layout: BcastLayout,
    mask: u64,
}

// SAFETY: a pointer into a region the `RawRegion` contract keeps valid;
// every access through it is atomic or volatile.
unsafe impl Send for DataView {}

impl DataView {
    /// The caller has run `check_region` for `layout.region_size()`.
    pub(crate) fn new(region: RawRegion, layout: BcastLayout) -> Self {
        Self {
            // SAFETY: `RawRegion` holds a non-null pointer.
            base: unsafe { NonNull::new_unchecked(region.as_ptr()) },
            layout,
            mask: layout.slots() as u64 - 1,
        }
    }

    pub(crate) fn layout(&self) -> &BcastLayout {
        &self.layout
    }

    /// The slot index of message `seq`, masked with *our* slot count.
    #[inline(always)]
    pub(crate) fn index(&self, seq: u64) -> usize {
        (seq & self.mask) as usize
    }

    /// A header word of line 0 (written once before anyone attaches;
    /// plain core atomics even under loom, since loom models write it
    /// before their threads start).
    fn line0_u64(&self, offset: usize) -> &core::sync::atomic::AtomicU64 {
        debug_assert!(offset % 8 == 0 && offset < 128);
        // SAFETY: the region holds the whole header (`check_region`), the
        // base is 64-aligned, and `offset` is a multiple of 8; atomics
        // tolerate the other side's concurrent writes.
        unsafe { core::sync::atomic::AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    fn line0_u32(&self, offset: usize) -> &core::sync::atomic::AtomicU32 {
        debug_assert!(offset % 4 == 0 && offset < 128);
        // SAFETY: as for `line0_u64`, 4-aligned.
        unsafe { core::sync::atomic::AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    /// Writes the header's line 0 (the publisher, before anyone attaches).
    pub(crate) fn write_header(&self, flags: u32) {
        use core::sync::atomic::Ordering::{Relaxed, Release};
        let l = &self.layout;
        // SAFETY: the region holds line 0; nobody maps it yet.
        unsafe {
            for i in 0..128 {
                core::ptr::write_volatile(self.base.as_ptr().add(i), 0);
            }
        }
        self.line0_u32(header::VERSION)
            .store(super::layout::BCAST_VERSION, Relaxed);
        self.line0_u32(header::KIND)
            .store(super::layout::KIND_BROADCAST, Relaxed);
        self.line0_u32(header::SLOTS)
            .store(l.slots() as u32, Relaxed);
        self.line0_u32(header::SLOT_SIZE)
            .store(l.slot_size() as u32, Relaxed);
        self.line0_u32(header::MAX_MSG)
            .store(l.max_msg() as u32, Relaxed);
        self.line0_u64(header::DATA_OFFSET)
            .store(BCAST_DATA_OFFSET as u64, Relaxed);
        self.line0_u32(header::FLAGS).store(flags, Relaxed);
        // Magic last, with Release: a reader that loads it with Acquire
        // sees the rest.
        self.line0_u64(header::MAGIC)
            .store(super::layout::BCAST_MAGIC, Release);
    }

    /// Loads a line-0 `u64` once (the subscriber's validation); the magic
    /// with Acquire.
    pub(crate) fn load_header_u64(&self, offset: usize) -> u64 {
        let ord = if offset == header::MAGIC {
            core::sync::atomic::Ordering::Acquire
        } else {
            core::sync::atomic::Ordering::Relaxed
        };
        self.line0_u64(offset).load(ord)
    }

    /// Loads a line-0 `u32` once.
    pub(crate) fn load_header_u32(&self, offset: usize) -> u32 {
        self.line0_u32(offset)
            .load(core::sync::atomic::Ordering::Relaxed)
    }

    /// Zeroes the hot words and every slot's stamp (the publisher, before
    /// anyone attaches).
    pub(crate) fn init_hot(&self) {
        #[cfg(not(loom))]
        {
            // SAFETY: the region holds `region_size()` bytes; nobody else
            // maps it yet, and we write with volatile stores only.
            unsafe {
                for i in 128..BCAST_DATA_OFFSET {
                    core::ptr::write_volatile(self.base.as_ptr().add(i), 0);
                }
                for i in 0..self.layout.slots() {
                    let s = self.slot_ptr(i);
                    for b in 0..slot::PAYLOAD {
                        core::ptr::write_volatile(s.add(b), 0);
                    }
                }
            }
        }
        #[cfg(loom)]
        {
            assert!(self.layout.slots() <= LOOM_SLOTS && self.layout.max_msg() <= 8 * LOOM_WORDS);
            // SAFETY: loom regions hold a `LoomRegion` at offset 128; the
            // test wrote nothing there yet, and loom atomics must be
            // constructed, not stored.
            unsafe {
                self.loom().cast_mut().write(LoomRegion {
                    head: AtomicU64::new(0),
                    wake: AtomicU32::new(0),
                    closed: AtomicU32::new(0),
                    stamps: core::array::from_fn(|_| AtomicU64::new(0)),
                    lens: core::array::from_fn(|_| AtomicU32::new(0)),
                    payload: core::array::from_fn(|_| core::array::from_fn(|_| AtomicU64::new(0))),
                });
            }
        }
    }

    #[cfg(loom)]
    fn loom(&self) -> *const LoomRegion {
        // SAFETY: loom regions are at least 128 + size_of::<LoomRegion>().
        unsafe { self.base.as_ptr().add(128).cast::<LoomRegion>() }
    }

    /// A `u32` or `u64` word at `offset` of the region.
    #[cfg(not(loom))]
    #[inline(always)]
    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: every caller passes an 8-aligned offset inside the
        // region (fixed header offsets, or slot offsets computed from a
        // masked index and our own slot size); the base is 64-aligned.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    #[cfg(not(loom))]
    #[inline(always)]
    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: as for `u64_at`, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    /// Pointer to slot `index` (already masked).
    #[cfg(not(loom))]
    #[inline(always)]
    fn slot_ptr(&self, index: usize) -> *mut u8 {
        debug_assert!(index < self.layout.slots());
        // SAFETY: `index < slots`, and the region holds `slots` slots of
        // `slot_size` bytes from `BCAST_DATA_OFFSET` (`check_region`).
        unsafe {
            self.base
                .as_ptr()
                .add(BCAST_DATA_OFFSET + index * self.layout.slot_size())
        }
    }

    #[inline(always)]
    pub(crate) fn head(&self) -> &AtomicU64 {
        #[cfg(not(loom))]
        return self.u64_at(header::HEAD);
        // SAFETY: see `loom`.
        #[cfg(loom)]
        return unsafe { &(*self.loom()).head };
    }

    #[inline(always)]
    pub(crate) fn wake(&self) -> &AtomicU32 {
        #[cfg(not(loom))]
        return self.u32_at(header::WAKE);
        // SAFETY: see `loom`.
        #[cfg(loom)]
        return unsafe { &(*self.loom()).wake };
    }

    /// The wake word's address, for `futex(2)`.
    pub(crate) fn wake_ptr(&self) -> *const u32 {
        // SAFETY: the offset is inside the region's header.
        unsafe { self.base.as_ptr().add(header::WAKE).cast::<u32>() }
    }

    #[inline(always)]
    pub(crate) fn closed(&self) -> &AtomicU32 {
        #[cfg(not(loom))]
        return self.u32_at(header::CLOSED);
        // SAFETY: see `loom`.
        #[cfg(loom)]
        return unsafe { &(*self.loom()).closed };
    }

    #[inline(always)]
    pub(crate) fn stamp(&self, index: usize) -> &AtomicU64 {
        #[cfg(not(loom))]
        return self.u64_at(BCAST_DATA_OFFSET + index * self.layout.slot_size() + slot::STAMP);
        // SAFETY: see `loom`; `index < slots <= LOOM_SLOTS`.
        #[cfg(loom)]
        return unsafe { &(*self.loom()).stamps[index] };
    }

    #[inline(always)]
    pub(crate) fn len(&self, index: usize) -> &AtomicU32 {
        #[cfg(not(loom))]
        return self.u32_at(BCAST_DATA_OFFSET + index * self.layout.slot_size() + slot::LEN);
        // SAFETY: see `loom`.
        #[cfg(loom)]
        return unsafe { &(*self.loom()).lens[index] };
    }

    /// Copies `src` into slot `index`'s payload. `src.len() <= max_msg`.
    #[inline(always)]
    pub(crate) fn write_payload(&self, index: usize, src: &[u8]) {
        debug_assert!(src.len() <= self.layout.max_msg());
        #[cfg(not(loom))]
        // SAFETY: the payload area holds `max_msg >= src.len()` bytes of
        // slot `index`; private `src` does not overlap the region.
        unsafe {
            crate::copy::to_shared(
                self.slot_ptr(index).add(slot::PAYLOAD),
                src.as_ptr(),
                src.len(),
            )
        };
        #[cfg(loom)]
        {
            use crate::sync::Ordering;
            for (w, chunk) in src.chunks(8).enumerate() {
                let mut b = [0u8; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                // SAFETY: see `loom`.
                unsafe { &(*self.loom()).payload[index][w] }
                    .store(u64::from_le_bytes(b), Ordering::Relaxed);
            }
        }
    }

    /// Copies slot `index`'s first `dst.len()` payload bytes out.
    /// `dst.len() <= max_msg`.
    #[inline(always)]
    pub(crate) fn read_payload(&self, index: usize, dst: &mut [u8]) {
        debug_assert!(dst.len() <= self.layout.max_msg());
        #[cfg(not(loom))]
        // SAFETY: as for `write_payload`, reading.
        unsafe {
            crate::copy::from_shared(
                dst.as_mut_ptr(),
                self.slot_ptr(index).add(slot::PAYLOAD),
                dst.len(),
            )
        };
        #[cfg(loom)]
        {
            use crate::sync::Ordering;
            for (w, chunk) in dst.chunks_mut(8).enumerate() {
                // SAFETY: see `loom`.
                let v = unsafe { &(*self.loom()).payload[index][w] }.load(Ordering::Relaxed);
                chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
            }
        }
    }
}

/// A view of one subscriber's control region.
#[derive(Debug)]
pub(crate) struct ControlView {
    base: NonNull<u8>,
}

// SAFETY: as for `DataView`.
unsafe impl Send for ControlView {}

impl ControlView {
    /// The caller has run `check_region` for `control::SIZE`.
    pub(crate) fn new(region: RawRegion) -> Self {
        Self {
            // SAFETY: `RawRegion` holds a non-null pointer.
            base: unsafe { NonNull::new_unchecked(region.as_ptr()) },
        }
    }

    /// Zeroes the region (its creator, the publisher, before sending it).
    pub(crate) fn init(&self) {
        #[cfg(not(loom))]
        // SAFETY: the region holds `control::SIZE` bytes; volatile stores.
        unsafe {
            for i in 0..control::SIZE {
                core::ptr::write_volatile(self.base.as_ptr().add(i), 0);
            }
        }
        #[cfg(loom)]
        // SAFETY: loom control regions hold a `LoomControl`.
        unsafe {
            self.base.as_ptr().cast::<LoomControl>().write(LoomControl {
                cursor: AtomicU64::new(0),
                wait: AtomicU32::new(0),
                wait_how: AtomicU32::new(0),
            })
        }
    }

    #[inline(always)]
    pub(crate) fn cursor(&self) -> &AtomicU64 {
        #[cfg(not(loom))]
        // SAFETY: offset 0 of a 64-aligned region of `control::SIZE` bytes.
        return unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(control::CURSOR).cast()) };
        // SAFETY: loom control regions hold a `LoomControl`.
        #[cfg(loom)]
        return unsafe { &(*self.base.as_ptr().cast::<LoomControl>()).cursor };
    }

    #[inline(always)]
    pub(crate) fn wait(&self) -> &AtomicU32 {
        #[cfg(not(loom))]
        // SAFETY: as for `cursor`, offset `control::WAIT` (4-aligned, inside).
        return unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(control::WAIT).cast()) };
        // SAFETY: as for `cursor`.
        #[cfg(loom)]
        return unsafe { &(*self.base.as_ptr().cast::<LoomControl>()).wait };
    }

    #[inline(always)]
    pub(crate) fn wait_how(&self) -> &AtomicU32 {
        #[cfg(not(loom))]
        // SAFETY: as for `cursor`, offset `control::WAIT_HOW` (4-aligned, inside).
        return unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(control::WAIT_HOW).cast()) };
        // SAFETY: as for `cursor`.
        #[cfg(loom)]
        return unsafe { &(*self.base.as_ptr().cast::<LoomControl>()).wait_how };
    }
}
