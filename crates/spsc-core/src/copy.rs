//! Copies between private memory and memory the peer can write.
//!
//! The shared side is only ever touched with volatile accesses: the peer
//! may write those bytes while we copy them, and a plain copy (or a
//! reference) would let the compiler assume they cannot change, for
//! example by reading a byte twice and getting two answers. Volatile
//! accesses happen exactly once each, in program order, which is the
//! current advice of the unsafe-code-guidelines discussion on memory shared
//! with untrusted parties. The private side uses ordinary (unaligned)
//! accesses.
//!
//! Volatile accesses cannot be merged or vectorised by the compiler, so we
//! use the widest register that a single instruction moves: 16 bytes of
//! SSE2 on x86-64 (part of the baseline), 8 bytes elsewhere.
//!
//! From [`REP_MOVSB_MIN`] bytes on, x86-64 copies with one `rep movsb` in
//! inline assembly instead. The compiler knows nothing of what an `asm!`
//! block touches, so, like a volatile access, it can neither repeat nor
//! elide nor reorder those accesses against the block; the instruction
//! reads each source byte and writes each destination byte once, within
//! the two ranges we hand it. It is also what makes a cross-core copy
//! fast: with fast strings (ERMS) the processor writes whole lines without
//! first reading them from the other core's cache, and moves a line per
//! step where the SSE2 loop needs four loads and four stores (measured on
//! the streaming bench; `docs/ARCHITECTURE.md`, "The data path").
//!
//! Exactly 8 bytes at an 8-aligned shared address (a `u64` element, an
//! 8-byte message's payload) move as one volatile 8-byte access: one
//! access, so still exactly once, and about 50 instructions fewer than
//! the byte loop of the ends (the other lengths keep their byte ends; see
//! `docs/ARCHITECTURE.md` for why).
//!

use core::ptr::{read_unaligned, read_volatile, write_unaligned, write_volatile};

#[cfg(target_arch = "x86_64")]
type Word = core::arch::x86_64::__m128i;
#[cfg(not(target_arch = "x86_64"))]
type Word = u64;

const WORD: usize = core::mem::size_of::<Word>();

/// From this length on, x86-64 copies with `rep movsb` (below it, the
/// instruction's start-up cost exceeds the SSE2 loop's).
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
pub(crate) const REP_MOVSB_MIN: usize = 2048;

/// Copies `len` bytes with one `rep movsb`.
///
/// # Safety
///
/// `src` is valid for reads and `dst` for writes of `len` bytes, and the
/// ranges do not overlap.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
#[inline(always)]
unsafe fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract; `rep movsb` with the direction flag
    // clear (the Rust ABI guarantees it on entry to `asm!`) copies exactly
    // `rcx` bytes forward from `rsi` to `rdi`, touches nothing else, and
    // leaves the flags alone.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Copies `len` bytes from private `src` to shared `dst`.
///
/// # Safety
///
/// `src` is valid for reads of `len` bytes; `dst` is valid for writes of
/// `len` bytes (the peer may access it concurrently); they do not overlap.
#[inline]
pub(crate) unsafe fn to_shared(dst: *mut u8, src: *const u8, len: usize) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    if len >= REP_MOVSB_MIN {
        // SAFETY: the caller's contract.
        return unsafe { rep_movsb(dst, src, len) };
    }
    if len == 8 && dst.align_offset(8) == 0 {
        // One aligned 8-byte store: an 8-byte message's payload or a
        // `u64` element, instead of eight byte stores (module docs).
        // SAFETY: the caller's contract; `dst` is 8-aligned.
        unsafe { write_volatile(dst.cast::<u64>(), read_unaligned(src.cast::<u64>())) };
        return;
    }
    let mut i = 0;
    // Bytes up to the first word boundary of the shared side.
    let head = dst.align_offset(WORD).min(len);
    while i < head {
        // SAFETY: `i < len`; the caller's contract covers both ranges.
        unsafe { write_volatile(dst.add(i), *src.add(i)) };
        i += 1;
    }
    while i + 4 * WORD <= len {
        // SAFETY: `dst + i` is word-aligned (we passed the head) and the
        // four words lie inside both ranges.
        unsafe {
            let w0 = read_unaligned(src.add(i).cast::<Word>());
            let w1 = read_unaligned(src.add(i + WORD).cast::<Word>());
            let w2 = read_unaligned(src.add(i + 2 * WORD).cast::<Word>());
            let w3 = read_unaligned(src.add(i + 3 * WORD).cast::<Word>());
            write_volatile(dst.add(i).cast::<Word>(), w0);
            write_volatile(dst.add(i + WORD).cast::<Word>(), w1);
            write_volatile(dst.add(i + 2 * WORD).cast::<Word>(), w2);
            write_volatile(dst.add(i + 3 * WORD).cast::<Word>(), w3);
        }
        i += 4 * WORD;
    }
    while i + WORD <= len {
        // SAFETY: as above, for one word.
        unsafe {
            let w = read_unaligned(src.add(i).cast::<Word>());
            write_volatile(dst.add(i).cast::<Word>(), w);
        }
        i += WORD;
    }
    while i < len {
        // SAFETY: `i < len`.
        unsafe { write_volatile(dst.add(i), *src.add(i)) };
        i += 1;
    }
}

/// Copies `len` bytes from shared `src` to private `dst`.
///
/// # Safety
///
/// `src` is valid for reads of `len` bytes (the peer may write it
/// concurrently); `dst` is valid for writes of `len` bytes; they do not
/// overlap.
#[inline]
pub(crate) unsafe fn from_shared(dst: *mut u8, src: *const u8, len: usize) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    if len >= REP_MOVSB_MIN {
        // SAFETY: the caller's contract.
        return unsafe { rep_movsb(dst, src, len) };
    }
    if len == 8 && src.align_offset(8) == 0 {
        // One aligned 8-byte load, instead of eight byte loads (module
        // docs).
        // SAFETY: the caller's contract; `src` is 8-aligned.
        unsafe { write_unaligned(dst.cast::<u64>(), read_volatile(src.cast::<u64>())) };
        return;
    }
    let mut i = 0;
    let head = src.align_offset(WORD).min(len);
    while i < head {
        // SAFETY: `i < len`; the caller's contract covers both ranges.
        unsafe { *dst.add(i) = read_volatile(src.add(i)) };
        i += 1;
    }
    while i + 4 * WORD <= len {
        // SAFETY: `src + i` is word-aligned (we passed the head) and the
        // four words lie inside both ranges.
        unsafe {
            let w0 = read_volatile(src.add(i).cast::<Word>());
            let w1 = read_volatile(src.add(i + WORD).cast::<Word>());
            let w2 = read_volatile(src.add(i + 2 * WORD).cast::<Word>());
            let w3 = read_volatile(src.add(i + 3 * WORD).cast::<Word>());
            write_unaligned(dst.add(i).cast::<Word>(), w0);
            write_unaligned(dst.add(i + WORD).cast::<Word>(), w1);
            write_unaligned(dst.add(i + 2 * WORD).cast::<Word>(), w2);
            write_unaligned(dst.add(i + 3 * WORD).cast::<Word>(), w3);
        }
        i += 4 * WORD;
    }
    while i + WORD <= len {
        // SAFETY: as above, for one word.
        unsafe {
            let w = read_volatile(src.add(i).cast::<Word>());
            write_unaligned(dst.add(i).cast::<Word>(), w);
        }
        i += WORD;
    }
    while i < len {
        // SAFETY: `i < len`.
        unsafe { *dst.add(i) = read_volatile(src.add(i)) };
        i += 1;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Long copies (the `rep movsb` path from 2 KiB on, and the word loop
    /// below it) of every misalignment, checked byte by byte, with the
    /// bytes around the destination untouched.
    #[test]
    fn copies_long_runs_exactly() {
        extern crate std;
        use std::vec::Vec;
        let src: Vec<u8> = (0..9000).map(|i| (i * 13 + 5) as u8).collect();
        for len in [1000, 2047, 2048, 2049, 4096, 5000, 8191] {
            for src_off in [0, 1, 8, 15] {
                for dst_off in [0, 3, 8, 16] {
                    let mut shared = std::vec![0xAAu8; 9000];
                    // SAFETY: offsets + len stay within both buffers.
                    unsafe {
                        to_shared(
                            shared.as_mut_ptr().add(dst_off),
                            src.as_ptr().add(src_off),
                            len,
                        )
                    };
                    assert_eq!(shared[dst_off..dst_off + len], src[src_off..src_off + len]);
                    assert!(shared[..dst_off].iter().all(|&b| b == 0xAA));
                    assert!(shared[dst_off + len..].iter().all(|&b| b == 0xAA));
                    let mut private = std::vec![0x55u8; 9000];
                    // SAFETY: as above.
                    unsafe {
                        from_shared(
                            private.as_mut_ptr().add(dst_off),
                            src.as_ptr().add(src_off),
                            len,
                        )
                    };
                    assert_eq!(private[dst_off..dst_off + len], src[src_off..src_off + len]);
                    assert!(private[..dst_off].iter().all(|&b| b == 0x55));
                    assert!(private[dst_off + len..].iter().all(|&b| b == 0x55));
                }
            }
        }
    }

    #[test]
    fn copies_every_length_and_misalignment_exactly() {
        let src: [u8; 200] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for len in 0..150 {
            for src_off in 0..17 {
                for dst_off in 0..17 {
                    let mut shared = [0xAAu8; 200];
                    // SAFETY: offsets + len stay within the 200-byte arrays.
                    unsafe {
                        to_shared(
                            shared.as_mut_ptr().add(dst_off),
                            src.as_ptr().add(src_off),
                            len,
                        )
                    };
                    assert_eq!(
                        &shared[dst_off..dst_off + len],
                        &src[src_off..src_off + len]
                    );
                    assert!(shared[..dst_off].iter().all(|&b| b == 0xAA));
                    assert!(shared[dst_off + len..].iter().all(|&b| b == 0xAA));

                    let mut private = [0x55u8; 200];
                    // SAFETY: as above.
                    unsafe {
                        from_shared(
                            private.as_mut_ptr().add(dst_off),
                            src.as_ptr().add(src_off),
                            len,
                        )
                    };
                    assert_eq!(
                        &private[dst_off..dst_off + len],
                        &src[src_off..src_off + len]
                    );
                    assert!(private[..dst_off].iter().all(|&b| b == 0x55));
                    assert!(private[dst_off + len..].iter().all(|&b| b == 0x55));
                }
            }
        }
    }
}
