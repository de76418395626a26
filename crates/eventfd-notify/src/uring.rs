//! A one-entry io_uring whose only job is to signal an eventfd.
//!
//! An io_uring with a registered eventfd (`IORING_REGISTER_EVENTFD`) calls
//! the kernel's `eventfd_signal()` each time it posts a completion. That
//! in-kernel signal never blocks and never looks at the eventfd's file
//! flags: it adds 1 to the counter (stopping at `u64::MAX`) and wakes the
//! waiters. Submitting an `IORING_OP_NOP` completes inline, inside
//! `io_uring_enter`, so one `io_uring_enter` is one wake-up, and no state
//! the peer can reach (the counter, `O_NONBLOCK` on the shared open file
//! description) can make it wait. This is the whole reason this module
//! exists: see the crate docs for the argument.
//!
//! The ring has one submission entry, which holds a NOP forever; each
//! signal only advances the submission tail and enters the kernel, then
//! reaps the completion by moving the completion head to the tail.

use std::ffi::c_void;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::io::Errno;
use rustix::io_uring::{
    io_uring_cqe, io_uring_enter, io_uring_params, io_uring_register, io_uring_setup, io_uring_sqe,
    IoringEnterFlags, IoringFeatureFlags, IoringOp, IoringRegisterOp, IORING_OFF_SQES,
    IORING_OFF_SQ_RING,
};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

/// A mapping we own and unmap on drop.
struct Mapping {
    /// Start of the mapping, as returned by `mmap`; never null.
    ptr: *mut c_void,
    /// Its length in bytes, as passed to `mmap`.
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, offset: u64) -> Result<Self, (&'static str, Errno)> {
        // SAFETY: we ask for a fresh mapping (null hint, no MAP_FIXED), so no
        // existing memory is replaced; the kernel checks `len` and `offset`
        // against the ring it created.
        let ptr = unsafe {
            mmap(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::POPULATE,
                fd,
                offset,
            )
        }
        .map_err(|e| ("mmap(io_uring)", e))?;
        Ok(Self { ptr, len })
    }

    /// A pointer to the `u32` at byte `offset`, checked to lie inside.
    fn u32_at(&self, offset: u32) -> Result<*mut u32, (&'static str, Errno)> {
        let offset = offset as usize;
        if offset % 4 != 0 || offset + 4 > self.len {
            return Err(("io_uring ring offsets", Errno::INVAL));
        }
        // SAFETY: `offset + 4 <= len`, so the result stays inside the mapping.
        Ok(unsafe { self.ptr.cast::<u8>().add(offset) }.cast::<u32>())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping we made and nobody else
        // holds a pointer into it once its owner (`NopRing`) is dropped.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

/// The io_uring that signals one eventfd per [`NopRing::signal`].
pub(crate) struct NopRing {
    /// Kernel-written: how far the kernel has consumed submissions.
    sq_head: *const AtomicU32,
    /// Written by us only: how many NOPs we have queued in all.
    sq_tail: *const AtomicU32,
    /// Written by us only: how many completions we have reaped in all.
    cq_head: *const AtomicU32,
    /// Kernel-written: how many completions the kernel has posted in all.
    cq_tail: *const AtomicU32,
    /// The rings (submission and completion share one mapping, as
    /// `IORING_FEAT_SINGLE_MMAP` promises). Kept alive for the pointers above.
    _rings: Mapping,
    /// The submission entries. Kept alive: the kernel reads our NOP from it.
    _sqes: Mapping,
    /// The ring itself. Dropped after the mappings (field order), which
    /// also unregisters the eventfd.
    ring: OwnedFd,
}

// SAFETY: the raw pointers point into mappings owned by this struct, and
// the struct is only used through `&mut self` (the notifier keeps it in a
// mutex), so moving it to another thread moves sole access with it.
unsafe impl Send for NopRing {}

impl NopRing {
    /// Sets up the ring and registers `eventfd` with it.
    ///
    /// Fails where io_uring is unavailable (`ENOSYS`, or `EPERM` when
    /// `kernel.io_uring_disabled` or a seccomp filter forbids it).
    pub(crate) fn new(eventfd: BorrowedFd<'_>) -> Result<Self, (&'static str, Errno)> {
        let mut params = io_uring_params::default();
        // SAFETY: `params` is a valid, zeroed `io_uring_params` that the
        // kernel fills in.
        let ring = unsafe { io_uring_setup(1, &mut params) }.map_err(|e| ("io_uring_setup", e))?;
        if !params.features.contains(IoringFeatureFlags::SINGLE_MMAP) {
            return Err(("io_uring_setup (no IORING_FEAT_SINGLE_MMAP)", Errno::NOSYS));
        }
        let sq_entries = params.sq_entries as usize;
        let sq_len = params.sq_off.array as usize + sq_entries * 4;
        let cq_len = params.cq_off.cqes as usize
            + params.cq_entries as usize * std::mem::size_of::<io_uring_cqe>();
        let rings = Mapping::new(ring.as_fd(), sq_len.max(cq_len), IORING_OFF_SQ_RING)?;
        let sqes = Mapping::new(
            ring.as_fd(),
            sq_entries * std::mem::size_of::<io_uring_sqe>(),
            IORING_OFF_SQES,
        )?;

        // Fill every submission slot with a NOP and point every array entry
        // at slot 0. The kernel never writes these, so they stay a NOP.
        let sqe = sqes.ptr.cast::<io_uring_sqe>();
        let nop = io_uring_sqe {
            opcode: IoringOp::Nop,
            ..Default::default()
        };
        for i in 0..sq_entries {
            // SAFETY: `sqes` holds `sq_entries` entries, and `i` is below that.
            unsafe { sqe.add(i).write(nop) };
        }
        for i in 0..sq_entries {
            let entry = rings.u32_at(params.sq_off.array + 4 * i as u32)?;
            // SAFETY: `u32_at` checked the entry lies inside the mapping and
            // is aligned; the kernel reads it only when we submit.
            unsafe { entry.write(0) };
        }

        let efd: RawFd = eventfd.as_raw_fd();
        // SAFETY: IORING_REGISTER_EVENTFD takes a pointer to one `int`; `efd`
        // lives across the call. The kernel checks it is an eventfd.
        unsafe {
            io_uring_register(
                ring.as_fd(),
                IoringRegisterOp::RegisterEventfd,
                (&efd as *const RawFd).cast::<c_void>(),
                1,
            )
        }
        .map_err(|e| ("io_uring_register(IORING_REGISTER_EVENTFD)", e))?;

        Ok(Self {
            sq_head: rings.u32_at(params.sq_off.head)?.cast::<AtomicU32>(),
            sq_tail: rings.u32_at(params.sq_off.tail)?.cast::<AtomicU32>(),
            cq_head: rings.u32_at(params.cq_off.head)?.cast::<AtomicU32>(),
            cq_tail: rings.u32_at(params.cq_off.tail)?.cast::<AtomicU32>(),
            _rings: rings,
            _sqes: sqes,
            ring,
        })
    }

    /// Signals the registered eventfd once. Never blocks: it submits one NOP
    /// without asking to wait for completions (`min_complete == 0`).
    pub(crate) fn signal(&mut self) -> Result<(), Errno> {
        // SAFETY: the four pointers were checked to be aligned and inside
        // `_rings`, which lives as long as `self`; the kernel accesses these
        // words atomically too, so `AtomicU32` views of them are sound.
        let (sq_head, sq_tail, cq_head, cq_tail) = unsafe {
            (
                &*self.sq_head,
                &*self.sq_tail,
                &*self.cq_head,
                &*self.cq_tail,
            )
        };

        // Acquire: pairs with the kernel's release of the head after it has
        // read our entry, so the slot is free for reuse.
        let head = sq_head.load(Ordering::Acquire);
        // Relaxed: only we write the tail.
        let tail = sq_tail.load(Ordering::Relaxed);
        if head == tail {
            // Release: the kernel must see the (unchanging) NOP entry and
            // array slot before it sees the new tail.
            sq_tail.store(tail.wrapping_add(1), Ordering::Release);
        }
        // Otherwise a NOP from an earlier, failed enter is still queued:
        // submitting it now is the wake-up we want.

        // SAFETY: no pointers are passed; `min_complete == 0` and no
        // GETEVENTS flag means the call does not wait for anything.
        let submitted =
            unsafe { io_uring_enter(self.ring.as_fd(), 1, 0, IoringEnterFlags::empty()) };

        // Reap whatever completions are there, so the completion queue never
        // fills. Acquire/Release pair with the kernel's tail store / head load.
        let done = cq_tail.load(Ordering::Acquire);
        cq_head.store(done, Ordering::Release);

        match submitted {
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
