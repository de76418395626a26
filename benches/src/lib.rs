//! Support code shared by the benchmarks in `benches/`.

use core::ptr::NonNull;

use spsc_core::{RawRegion, RingLayout};

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
