//! The sleeper's barrier: `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`,
//! run by a side about to sleep so that its peer's wake-up checks need no
//! fence (`spsc_core::SLEEPER_BARRIER`; broadcast's
//! `WakeOrder::SleeperBarrier`).
//!
//! A waker may skip its fence only if its process registered with
//! `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` (the barrier reaches only
//! registered processes). The registration belongs to the address space:
//! `fork` keeps it and `exec` clears it (the kernel's
//! `membarrier_exec_mmap`), and this module's cache lives in that same
//! memory, so it is right in a forked child and starts afresh after an
//! exec.

use std::sync::OnceLock;

use rustix::thread::{membarrier, membarrier_query, MembarrierCommand, MembarrierQuery};

/// Registers this process for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (once) and
/// says whether it is registered. `false` where the kernel (or a seccomp
/// filter) says no: our wake-up checks then keep their fence.
pub(crate) fn registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let need = MembarrierQuery::GLOBAL_EXPEDITED | MembarrierQuery::REGISTER_GLOBAL_EXPEDITED;
        membarrier_query().contains(need)
            && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
    })
}

/// Whether this process may run the sleeper's barrier.
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| membarrier_query().contains(MembarrierQuery::GLOBAL_EXPEDITED))
}

/// The sleeper's barrier: every running thread of every registered
/// process passes a full memory barrier before this returns. `false` if
/// the call failed.
pub(crate) fn run() -> bool {
    membarrier(MembarrierCommand::GlobalExpedited).is_ok()
}
