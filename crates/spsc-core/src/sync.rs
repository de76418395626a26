//! The atomics the ring uses: `core`'s normally, loom's under `--cfg loom`,
//! so that the loom model checks run the very same algorithm.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};

pub(crate) use core::sync::atomic::Ordering;
