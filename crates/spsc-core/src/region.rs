//! The raw region a ring lives in, and private access to its header.

use core::ptr::{addr_of, NonNull};

use crate::layout::{self, Header, RingLayout};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::SetupError;

/// A raw byte region that may be shared with an untrusted peer.
///
/// This is the one place where the caller makes a promise; everything built
/// on it is safe to use, whatever the peer writes into the region.
#[derive(Debug, Clone, Copy)]
pub struct RawRegion {
    ptr: NonNull<u8>,
    len: usize,
}

impl RawRegion {
    /// Wraps `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// For as long as any handle built from this region (or a copy of it)
    /// exists:
    /// - `ptr` is valid for reads and writes of `len` bytes;
    /// - the memory is neither unmapped nor remapped;
    /// - nothing in this process holds a Rust reference (`&`, `&mut`) into
    ///   it, except those the `unsafe` trusted APIs of this crate hand out.
    ///
    /// Other processes (or threads using their own handles) may read and
    /// write any byte of it at any time; that is what the crate defends
    /// against.
    pub const unsafe fn new(ptr: NonNull<u8>, len: usize) -> Self {
        Self { ptr, len }
    }

    /// The start of the region.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length of the region in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that the region can hold `layout` for elements aligned to
    /// `align`.
    pub(crate) fn check_fits(&self, layout: &RingLayout, align: usize) -> Result<(), SetupError> {
        // The header's atomics need 8-byte alignment, and every slot sits
        // at a multiple of the element size from a 128-byte aligned data
        // offset, so aligning the base to the element's alignment aligns
        // every slot.
        let required = align.max(8);
        let addr = self.ptr.as_ptr() as usize;
        if addr % required != 0 {
            return Err(SetupError::Misaligned { addr, required });
        }
        if self.len < layout.region_size() {
            return Err(SetupError::RegionTooSmall {
                needed: layout.region_size(),
                len: self.len,
            });
        }
        Ok(())
    }
}

/// A reference to one atomic field of the header at `$base`.
///
/// `addr_of!` projects to the field without an intermediate reference to
/// the header (whose padding the peer may write).
macro_rules! field {
    ($shared:expr, $name:ident) => {{
        let h = $shared.header();
        // SAFETY: `check_fits` guaranteed that the region holds a whole
        // header at a base aligned for its atomics; the fields are atomics,
        // which tolerate the peer's concurrent writes.
        unsafe { &*addr_of!((*h).$name) }
    }};
}

/// A checked view of a region holding a ring: base pointer plus the
/// geometry *we* decided on (never the peer's numbers).
#[derive(Debug)]
pub(crate) struct Shared {
    base: NonNull<u8>,
    data: NonNull<u8>,
    mask: u64,
    capacity: u64,
    elem_size: usize,
}

// SAFETY: `Shared` is a pointer into a region that the `RawRegion` contract
// keeps valid; all access through it is atomic or volatile, so moving it to
// another thread is sound.
unsafe impl Send for Shared {}

impl Shared {
    /// Builds the view. The caller has run `check_fits` for `layout`.
    pub(crate) fn new(region: RawRegion, layout: &RingLayout) -> Self {
        // SAFETY: `check_fits` guaranteed the region holds the header and
        // the data area, so the data offset is inside it.
        let data = unsafe { region.ptr.add(layout.data_offset()) };
        Self {
            base: region.ptr,
            data,
            mask: layout.capacity() as u64 - 1,
            capacity: layout.capacity() as u64,
            elem_size: layout.elem_size(),
        }
    }

    #[inline]
    fn header(&self) -> *const Header {
        self.base.as_ptr().cast::<Header>()
    }

    /// Our capacity (private, never re-read from the header).
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    #[inline]
    pub(crate) fn write_pos(&self) -> &AtomicU64 {
        field!(self, write_pos)
    }

    #[inline]
    pub(crate) fn read_pos(&self) -> &AtomicU64 {
        field!(self, read_pos)
    }

    /// The producer's "closed" word (offset 136): 0 while open.
    #[inline]
    pub(crate) fn producer_closed(&self) -> &AtomicU32 {
        field!(self, producer_closed)
    }

    /// The inline copy's element count (offset 140).
    #[inline]
    pub(crate) fn inline_count(&self) -> &AtomicU32 {
        field!(self, inline_count)
    }

    /// The inline copy's tag (offset 144): the write position after it.
    #[inline]
    pub(crate) fn inline_end(&self) -> &AtomicU64 {
        field!(self, inline_end)
    }

    /// Copies `len <= INLINE_BYTES` private bytes into the inline copy.
    ///
    /// # Safety
    ///
    /// `src` is valid for reads of `len` bytes.
    #[inline]
    pub(crate) unsafe fn inline_write(&self, src: *const u8, len: usize) {
        assert!(len <= layout::INLINE_BYTES);
        #[cfg(not(loom))]
        {
            // SAFETY: the inline bytes lie in the header, which the region
            // holds (`check_fits`); `len` fits them, and `src` is the
            // caller's. The copy touches the shared side only with
            // volatile accesses, and no reference to it is made.
            unsafe {
                let dst = addr_of!((*self.header()).inline_data);
                crate::copy::to_shared(dst.cast::<u8>().cast_mut(), src, len);
            }
        }
        #[cfg(loom)]
        {
            assert!(len % 4 == 0);
            for (i, word) in field!(self, inline_data)[..len / 4].iter().enumerate() {
                // SAFETY: `src` is valid for `len` bytes.
                let v = unsafe { src.add(4 * i).cast::<u32>().read_unaligned() };
                word.store(v, Ordering::Relaxed);
            }
        }
    }

    /// Copies `len <= INLINE_BYTES` bytes of the inline copy out.
    ///
    /// # Safety
    ///
    /// `dst` is valid for writes of `len` bytes.
    #[inline]
    pub(crate) unsafe fn inline_read(&self, dst: *mut u8, len: usize) {
        assert!(len <= layout::INLINE_BYTES);
        #[cfg(not(loom))]
        {
            // SAFETY: as in `inline_write`, the other way round.
            unsafe {
                let src = addr_of!((*self.header()).inline_data);
                crate::copy::from_shared(dst, src.cast::<u8>(), len);
            }
        }
        #[cfg(loom)]
        {
            assert!(len % 4 == 0);
            for (i, word) in field!(self, inline_data)[..len / 4].iter().enumerate() {
                let v = word.load(Ordering::Relaxed);
                // SAFETY: `dst` is valid for `len` bytes.
                unsafe { dst.add(4 * i).cast::<u32>().write_unaligned(v) };
            }
        }
    }

    #[inline]
    pub(crate) fn producer_wait(&self) -> &AtomicU32 {
        field!(self, producer_wait)
    }

    #[inline]
    pub(crate) fn consumer_wait(&self) -> &AtomicU32 {
        field!(self, consumer_wait)
    }

    /// The consumer's sleeper-barrier declaration (offset 392).
    #[inline]
    pub(crate) fn consumer_barrier(&self) -> &AtomicU32 {
        field!(self, consumer_barrier)
    }

    /// The producer's sleeper-barrier declaration (offset 396).
    #[inline]
    pub(crate) fn producer_barrier(&self) -> &AtomicU32 {
        field!(self, producer_barrier)
    }

    /// Pointer to the slot of `pos`, always inside the data area because
    /// the index is masked with our own capacity.
    #[inline]
    pub(crate) fn slot(&self, pos: u64) -> *mut u8 {
        let index = (pos & self.mask) as usize;
        // SAFETY: `index < capacity`, and the data area holds `capacity`
        // elements of `elem_size` bytes (`check_fits`).
        unsafe { self.data.as_ptr().add(index * self.elem_size) }
    }

    /// The slots of `n` positions from `pos`, as at most two contiguous
    /// runs `(first_pointer, first_len, second_len)`; the second run starts
    /// at the data area's start.
    #[inline]
    pub(crate) fn runs(&self, pos: u64, n: usize) -> (*mut u8, usize, usize) {
        let index = (pos & self.mask) as usize;
        let to_end = self.capacity as usize - index;
        let first = n.min(to_end);
        (self.slot(pos), first, n - first)
    }

    /// The 8-byte word at byte `offset` of the data area, as an atomic: a
    /// message record's header word.
    ///
    /// The caller keeps `offset` a multiple of 8 and at least 8 bytes
    /// before the end of the data area (message positions are multiples
    /// of 8, masked with our capacity); this is asserted in debug builds.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn record_word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset % 8 == 0 && offset as u64 + 8 <= self.capacity);
        // SAFETY: the word lies inside the data area (the caller's
        // contract) and is 8-aligned: the region's base is 8-aligned
        // (`check_fits`) and the data area starts at a multiple of 128.
        // An atomic tolerates the peer's concurrent writes; no
        // non-atomic reference to these bytes is ever created.
        unsafe { AtomicU64::from_ptr(self.data.as_ptr().add(offset).cast::<u64>()) }
    }

    /// Loom only: the loom atomic standing for the header word at byte
    /// `offset` of the data area.
    #[cfg(loom)]
    pub(crate) fn record_word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset / 8 < layout::LOOM_SLOTS);
        // SAFETY: loom regions hold a whole loom header.
        unsafe { &*addr_of!((*self.header()).record_words[offset / 8]) }
    }

    /// Start of the data area.
    #[inline]
    pub(crate) fn data(&self) -> *mut u8 {
        self.data.as_ptr()
    }

    /// Writes a fresh header: the creator's job, before the peer attaches.
    pub(crate) fn init(&self, kind: u32, elem_size: u32) {
        self.init_with(kind, elem_size, 0);
    }

    /// Writes a fresh header whose reserved word at offset 20 holds
    /// `reserved` (message rings keep their maximum message size there).
    pub(crate) fn init_with(&self, kind: u32, elem_size: u32, reserved: u32) {
        #[cfg(not(loom))]
        {
            // SAFETY: the region holds a header (`check_fits`). Padding is
            // zeroed with volatile writes; the peer may already map the
            // region, so we never create a reference to it.
            unsafe {
                for i in 0..layout::DATA_OFFSET {
                    core::ptr::write_volatile(self.base.as_ptr().add(i), 0);
                }
            }
            field!(self, capacity).store(self.capacity, Ordering::Relaxed);
            field!(self, data_offset).store(layout::DATA_OFFSET as u64, Ordering::Relaxed);
            field!(self, elem_size).store(elem_size, Ordering::Relaxed);
            field!(self, reserved0).store(reserved, Ordering::Relaxed);
            field!(self, kind).store(kind, Ordering::Relaxed);
            field!(self, version).store(layout::VERSION, Ordering::Relaxed);
            // Magic last, with Release: a peer that loads the magic with
            // Acquire sees the rest of the header.
            field!(self, magic).store(layout::MAGIC, Ordering::Release);
        }
        #[cfg(loom)]
        {
            // SAFETY: under loom the region is a private test buffer that
            // holds a header; loom atomics must be constructed, not stored.
            unsafe {
                self.header().cast_mut().write(Header {
                    magic: AtomicU64::new(layout::MAGIC),
                    version: AtomicU32::new(layout::VERSION),
                    kind: AtomicU32::new(kind),
                    elem_size: AtomicU32::new(elem_size),
                    reserved0: AtomicU32::new(reserved),
                    capacity: AtomicU64::new(self.capacity),
                    data_offset: AtomicU64::new(layout::DATA_OFFSET as u64),
                    _pad0: [0; layout::LINE - 40],
                    write_pos: AtomicU64::new(0),
                    producer_closed: AtomicU32::new(0),
                    inline_count: AtomicU32::new(0),
                    inline_end: AtomicU64::new(0),
                    inline_data: core::array::from_fn(|_| AtomicU32::new(0)),
                    read_pos: AtomicU64::new(0),
                    _pad2: [0; layout::LINE - 8],
                    consumer_wait: AtomicU32::new(0),
                    producer_wait: AtomicU32::new(0),
                    consumer_barrier: AtomicU32::new(0),
                    producer_barrier: AtomicU32::new(0),
                    track: core::array::from_fn(|_| loom::cell::UnsafeCell::new(())),
                    record_words: core::array::from_fn(|_| AtomicU64::new(0)),
                });
            }
        }
    }

    /// Reads the creator's header once and checks it against what *we*
    /// expect. Every value is loaded exactly once.
    pub(crate) fn validate(&self, kind: u32, elem_size: u32) -> Result<(), SetupError> {
        let magic = field!(self, magic).load(Ordering::Acquire);
        if magic != layout::MAGIC {
            return Err(SetupError::BadMagic { found: magic });
        }
        let version = field!(self, version).load(Ordering::Relaxed);
        // Version 2 changed only the message ring's records: an element
        // ring of version 1 follows the same protocol.
        let known = version == layout::VERSION
            || (kind == layout::KIND_ELEMENTS && version == layout::VERSION_ELEMENTS_V1);
        if !known {
            return Err(SetupError::UnsupportedVersion { found: version });
        }
        let found_kind = field!(self, kind).load(Ordering::Relaxed);
        if found_kind != kind {
            return Err(SetupError::WrongKind {
                expected: kind,
                found: found_kind,
            });
        }
        let found_size = field!(self, elem_size).load(Ordering::Relaxed);
        if found_size != elem_size {
            return Err(SetupError::ElementSizeMismatch {
                expected: elem_size,
                found: found_size,
            });
        }
        let capacity = field!(self, capacity).load(Ordering::Relaxed);
        if capacity != self.capacity {
            return Err(SetupError::CapacityMismatch {
                expected: self.capacity,
                found: capacity,
            });
        }
        let offset = field!(self, data_offset).load(Ordering::Relaxed);
        if offset != layout::DATA_OFFSET as u64 {
            return Err(SetupError::DataOffsetMismatch {
                expected: layout::DATA_OFFSET as u64,
                found: offset,
            });
        }
        Ok(())
    }

    /// The reserved word at offset 20, loaded once. Call it after
    /// `validate`, whose Acquire load of the magic orders it.
    pub(crate) fn reserved(&self) -> u32 {
        field!(self, reserved0).load(Ordering::Relaxed)
    }

    /// Loom only: records an access to the bytes `[pos, pos + n)` of a ring
    /// whose capacity counts bytes, one tracking cell per 8-byte unit.
    #[cfg(loom)]
    pub(crate) fn track_bytes(&self, pos: u64, n: u64, write: bool) {
        let units = self.capacity / 8;
        assert!(
            units as usize <= layout::LOOM_SLOTS,
            "loom models use tiny rings"
        );
        let first = pos / 8;
        let end = if n == 0 { first } else { (pos + n).div_ceil(8) };
        for unit in first..end {
            self.touch((unit & (units - 1)) as usize, write);
        }
    }

    /// Without loom, tracking costs nothing.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn track_bytes(&self, _pos: u64, _n: u64, _write: bool) {}

    /// Loom only: records an access to the slots of `n` positions from
    /// `pos`, so the model checker can prove it is ordered by the protocol.
    #[cfg(loom)]
    pub(crate) fn track(&self, pos: u64, n: usize, write: bool) {
        for i in 0..n as u64 {
            self.touch(((pos + i) & self.mask) as usize, write);
        }
    }

    /// Loom only: one access to tracking cell `index`.
    #[cfg(loom)]
    fn touch(&self, index: usize, write: bool) {
        // SAFETY: loom regions hold a whole loom header; the tracking
        // cells are only touched through `with`/`with_mut`.
        let cell = unsafe { &*addr_of!((*self.header()).track[index]) };
        if write {
            cell.with_mut(|_| ());
        } else {
            cell.with(|_| ());
        }
    }

    /// Without loom, tracking costs nothing.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn track(&self, _pos: u64, _n: usize, _write: bool) {}
}
