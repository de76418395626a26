//! Every way a subscriber process could try to write a broadcast data
//! memfd it received, each tried for real. Used by the seal test
//! (`broadcast_seal.rs`) and by the hostile subscriber of the facade tests
//! (`broadcast_hostile.rs`).

#![allow(dead_code)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use rustix::fs::{fallocate, ftruncate, open, FallocateFlags, Mode, OFlags};
use rustix::io::{pwrite, write, Errno};
use rustix::mm::{madvise, mmap, mprotect, munmap, Advice, MapFlags, MprotectFlags, ProtFlags};

/// One write attempt's outcome: `Err(errno)` is the kernel's refusal;
/// `Ok(())` means the write went through (a failure of the guarantee).
pub type Attempt = (&'static str, Result<(), Errno>);

/// Byte written by every attempt.
pub const EVIL: u8 = 0xEE;

/// Tries every way to write byte 0 of the memfd `fd` (of `len` bytes,
/// mapped read-only at `ro_map` by the caller), and returns each outcome.
/// The private-mapping attempt is reported as a refusal when the write
/// stayed private (copy-on-write), which is the kernel's answer to it.
pub fn try_every_write(fd: BorrowedFd<'_>, len: usize, ro_map: *const u8) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = Vec::new();
    let page = 4096.min(len);
    // 1. A new writable shared mapping.
    // SAFETY: a fresh mapping chosen by the kernel; unmapped if made.
    out.push(("mmap(PROT_WRITE, MAP_SHARED)", unsafe {
        mmap(
            std::ptr::null_mut(),
            page,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
        .map(|p| {
            p.cast::<u8>().write_volatile(EVIL);
            let _ = munmap(p, page);
        })
    }));
    // 2. A read-only shared mapping, then mprotect to writable.
    // SAFETY: as above; the mapping is ours alone.
    out.push(("mprotect(read-only MAP_SHARED -> PROT_WRITE)", unsafe {
        match mmap(
            std::ptr::null_mut(),
            page,
            ProtFlags::READ,
            MapFlags::SHARED,
            fd,
            0,
        ) {
            Ok(p) => {
                let r = mprotect(p, page, MprotectFlags::READ | MprotectFlags::WRITE)
                    .map(|()| p.cast::<u8>().write_volatile(EVIL));
                let _ = munmap(p, page);
                r
            }
            Err(e) => Err(e),
        }
    }));
    // 3, 4. write() and pwrite() on the descriptor as received.
    out.push(("write()", write(fd, &[EVIL]).map(|_| ())));
    out.push(("pwrite()", pwrite(fd, &[EVIL], 0).map(|_| ())));
    // 5. Reopen through /proc/self/fd with O_RDWR, then write, pwrite and
    //    map it writable.
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
        Ok(rw) => {
            out.push(("reopen O_RDWR + write()", write(&rw, &[EVIL]).map(|_| ())));
            out.push((
                "reopen O_RDWR + pwrite()",
                pwrite(&rw, &[EVIL], 0).map(|_| ()),
            ));
            // SAFETY: as in 1.
            out.push(("reopen O_RDWR + mmap(PROT_WRITE, MAP_SHARED)", unsafe {
                mmap(
                    std::ptr::null_mut(),
                    page,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED,
                    &rw,
                    0,
                )
                .map(|p| {
                    p.cast::<u8>().write_volatile(EVIL);
                    let _ = munmap(p, page);
                })
            }));
            out.push((
                "reopen O_RDWR + fallocate(PUNCH_HOLE)",
                fallocate(
                    &rw,
                    FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                    0,
                    page as u64,
                ),
            ));
            out.push(("reopen O_RDWR + ftruncate(0)", ftruncate(&rw, 0)));
        }
        // A refused reopen is a refusal too.
        Err(e) => out.push(("reopen O_RDWR", Err(e))),
    }
    // 6. Hole punching and resizing on the descriptor as received.
    out.push((
        "fallocate(PUNCH_HOLE)",
        fallocate(
            fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            0,
            page as u64,
        ),
    ));
    out.push(("ftruncate(0)", ftruncate(fd, 0)));
    out.push(("ftruncate(grow)", ftruncate(fd, 2 * len as u64)));
    // 7. madvise(MADV_REMOVE) on our read-only mapping (frees the pages
    //    of a writable shared mapping, like a hole punch).
    // SAFETY: `ro_map` is the caller's mapping of at least `page` bytes;
    // MADV_REMOVE would zero it, which is what must fail.
    out.push(("madvise(MADV_REMOVE)", unsafe {
        madvise(ro_map.cast_mut().cast(), page, Advice::LinuxRemove)
    }));
    // 8. /proc/self/mem, which can write through read-only private
    //    mappings (FOLL_FORCE), at our read-only shared mapping.
    out.push(("pwrite(/proc/self/mem) at the mapping", {
        match open(
            "/proc/self/mem",
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(mem) => pwrite(&mem, &[EVIL], ro_map as u64).map(|_| ()),
            Err(e) => Err(e),
        }
    }));
    // 9. A private writable mapping: allowed, but copy-on-write, so the
    //    write must not reach the shared bytes (checked by the caller);
    //    reported as refused if the shared byte did not change.
    // SAFETY: as in 1.
    let private = unsafe {
        mmap(
            std::ptr::null_mut(),
            page,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
            fd,
            0,
        )
    };
    out.push(
        ("mmap(PROT_WRITE, MAP_PRIVATE) reaching the shared bytes", {
            match private {
                Ok(p) => {
                    // SAFETY: our private mapping of `page` bytes.
                    unsafe { p.cast::<u8>().write_volatile(EVIL) };
                    // SAFETY: the caller's read-only mapping.
                    let shared = unsafe { ro_map.read_volatile() };
                    // SAFETY: unmapping our own mapping.
                    let _ = unsafe { munmap(p, page) };
                    if shared == EVIL {
                        Ok(())
                    } else {
                        Err(Errno::ACCESS)
                    }
                }
                Err(e) => Err(e),
            }
        }),
    );
    let _ = fd.as_fd();
    out
}

/// Formats the outcomes, one per line: `name: refused (errno)` or
/// `name: WROTE`.
pub fn report(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|(name, r)| match r {
            Ok(()) => format!("{name}: WROTE\n"),
            Err(e) => format!("{name}: refused ({e})\n"),
        })
        .collect()
}
