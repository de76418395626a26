//! Test support: aligned heap regions with guard bytes around them.

#![allow(dead_code)]

use core::ptr::NonNull;
use spsc_core::RawRegion;

/// One 128-byte aligned line, the unit of allocation.
#[derive(Clone, Copy)]
#[repr(C, align(128))]
pub struct Line(pub [u8; 128]);

/// Guard byte value written around the region.
pub const GUARD: u8 = 0xA5;

/// A heap buffer holding a region of `len` bytes with `guard_lines` lines
/// of guard bytes before and after it.
pub struct Buffer {
    lines: Box<[Line]>,
    guard_lines: usize,
    len: usize,
}

impl Buffer {
    pub fn new(len: usize, guard_lines: usize) -> Self {
        let total = len.div_ceil(128) + 2 * guard_lines;
        let mut lines = vec![Line([0; 128]); total].into_boxed_slice();
        let bytes = lines.len() * 128;
        // SAFETY: the lines are plain bytes; the view ends before the box
        // is shared with any handle.
        let all =
            unsafe { core::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), bytes) };
        all.fill(GUARD);
        all[guard_lines * 128..guard_lines * 128 + len].fill(0);
        Self {
            lines,
            guard_lines,
            len,
        }
    }

    pub fn region(&mut self) -> RawRegion {
        // SAFETY: the region lies inside the box, which the test keeps alive
        // (and does not touch by reference) while handles exist.
        unsafe {
            let base = self
                .lines
                .as_mut_ptr()
                .cast::<u8>()
                .add(self.guard_lines * 128);
            RawRegion::new(NonNull::new(base).unwrap(), self.len)
        }
    }

    /// Base pointer of the region.
    pub fn base(&mut self) -> *mut u8 {
        self.region().as_ptr()
    }

    /// Whether every guard byte still holds its value. Only call this once
    /// the handles are gone.
    pub fn guards_intact(&self) -> bool {
        // SAFETY: no handle is alive any more (the caller's promise).
        let all = unsafe {
            core::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.lines.len() * 128)
        };
        let start = self.guard_lines * 128;
        let end = start + self.len;
        all[..start].iter().all(|&b| b == GUARD) && all[end..].iter().all(|&b| b == GUARD)
    }
}

/// Buffer plus region sized for `T` rings of `capacity`.
pub fn buffer_for<T>(capacity: usize) -> Buffer {
    let layout = spsc_core::RingLayout::new::<T>(capacity).unwrap();
    Buffer::new(layout.region_size(), 2)
}
