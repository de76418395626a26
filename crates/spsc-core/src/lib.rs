//! A single-producer single-consumer ring over a raw region of memory that
//! may be shared with a process you do not trust.
//!
//! `spsc-core` is the algorithm at the heart of `sharedring`: lock-free and
//! wait-free, no allocation, no OS calls, `#![no_std]`. It works over any
//! region you can hand it as a pointer and a length: a shared memfd
//! mapping, a device buffer, a hypervisor page, or a test buffer.
//!
//! What it promises, whatever the peer writes into the region at any time:
//!
//! - **Memory safety.** No access outside the region. Every slot index is
//!   masked with *our* capacity; the header is validated against what *we*
//!   expect before anything else is trusted.
//! - **No double fetch.** Every shared value is loaded once into a local,
//!   validated, and only the local is used. Each side keeps its own
//!   position privately and only publishes it.
//! - **No references into shared memory** in the safe API: control words
//!   are atomics, payload moves with volatile copies, and in-place access
//!   goes through [`SharedSlice`]/[`SharedSliceMut`] accessors.
//! - **No panic on peer behaviour.** A peer caught publishing an impossible
//!   position yields a [`Corruption`] error that names the field and the
//!   values seen, and the handle refuses further use.
//!
//! Element types must accept every bit pattern, because the peer chooses
//! the bits: `T: zerocopy::FromBytes + IntoBytes + Immutable`.
//!
//! # Example
//!
//! ```
//! use core::ptr::NonNull;
//! use spsc_core::{Consumer, Producer, RawRegion, RingLayout};
//!
//! // Any region aligned for the element type (8 bytes at least) will do;
//! // here a heap buffer stands in for a shared mapping.
//! let layout = RingLayout::new::<u64>(1024)?;
//! let mut buf = vec![0u64; layout.region_size() / 8];
//! let ptr = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
//! // SAFETY: `buf` outlives the handles and is not touched through
//! // references while they exist.
//! let region = unsafe { RawRegion::new(ptr, layout.region_size()) };
//!
//! let mut tx = Producer::<u64>::create(region, 1024)?;
//! let mut rx = Consumer::<u64>::attach(region, 1024)?;
//!
//! tx.push(1)?;
//! assert_eq!(tx.push_slice(&[2, 3, 4])?, 3);
//! if tx.needs_wake() {
//!     // The consumer announced it sleeps: wake it (eventfd, futex, ...).
//! }
//! let mut out = [0u64; 8];
//! assert_eq!(rx.pop_slice(&mut out)?, 4);
//! assert_eq!(out[..4], [1, 2, 3, 4]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Message rings
//!
//! [`MsgProducer`] and [`MsgConsumer`] carry variable-size byte messages
//! over the same header, positions and wait words (header `kind` 2, see
//! [`MsgLayout`]). [`MsgProducer::reserve`] hands out one contiguous region
//! of exactly the requested length to write in place, and
//! [`MsgConsumer::read`] hands out the next message as one contiguous
//! region: records never wrap (a skip marker fills the tail of the ring
//! when needed). The maximum message size is fixed at creation, at most
//! half the ring, and both sides check it in the header. Every record
//! header word the peer wrote is loaded once, with one atomic load, and
//! its sequence tag checked against the position and its length against
//! that maximum and the end of the ring; a bad one is a [`Corruption`],
//! never an access outside the ring. [`MsgConsumer::recv_many`] and
//! [`MsgProducer::push_many`] move a batch with one position store and one
//! wake-up check.
//!
//! ```
//! # let (mut tx, mut rx) = spsc_core::__doc_msg_pair!(4096, 1024);
//! let mut frame = tx.reserve(12)?;
//! frame.write_at(0, b"frame header");
//! if frame.commit() {
//!     // wake the consumer
//! }
//! let record = rx.read()?;
//! let mut buf = vec![0u8; record.len()];
//! record.copy_to_slice(&mut buf);
//! let _wake_producer = record.release();
//! assert_eq!(buf, b"frame header");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Sleeping and waking
//!
//! A side that finds the ring empty (or full) and wants to block calls
//! `prepare_wait`, which announces the sleep in its wait word and re-checks
//! the ring; after a `WaitCheck::Sleep` it blocks on whatever wake-up
//! mechanism the application uses, then calls `finish_wait`. The other side
//! calls `needs_wake` after publishing (chunk commits do it for you) and
//! wakes the sleeper only when it returns `true`. A consumer that keeps up
//! never announces sleep, so it never costs the producer a syscall. The
//! fences and the argument that no wake-up is lost are in the source of
//! the `wake` module and are model-checked with loom.
//!
//! # End of stream
//!
//! [`Producer::close`] (and [`MsgProducer::close`]) stores 1 in the
//! header's "closed" word ([`PRODUCER_CLOSED_OFFSET`]) after the last
//! publication and returns whether the consumer must be woken, like a
//! publication. A consumer that finds the ring empty asks
//! [`Consumer::end_of_stream`] (or [`MsgConsumer::end_of_stream`]): the
//! word is set and, looked at once more, the ring is still empty.
//! `prepare_wait` does not sleep on a closed, empty ring.
//!
//! # Layout
//!
//! The shared layout (version 2) is specified in `docs/LAYOUT.md` at the
//! root of the repository, precisely enough to write a compatible peer in
//! C. Offsets are pinned at compile time. Version 2 changed the message
//! ring's records (a sequence-tagged header word that the consumer waits
//! on, so a small message costs one cache-line transfer); element rings of
//! version 1 are still accepted.
//!
//! # Loom
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p spsc-core --release --test loom`
//! model-checks publication, consumption and the sleep/wake protocol.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod broadcast;
mod chunk;
mod consumer;
mod copy;
mod error;
mod layout;
mod msg;
mod producer;
mod region;
mod sync;
mod wake;

pub use chunk::{ReadChunk, SharedSlice, SharedSliceMut, WriteChunk};
pub use consumer::Consumer;
pub use error::{Corruption, Field, LayoutError, PopError, PushError, SetupError};
pub use layout::{
    RingLayout, CONSUMER_BARRIER_OFFSET, DATA_OFFSET, INLINE_BYTES, INLINE_COUNT_OFFSET,
    INLINE_DATA_OFFSET, INLINE_END_OFFSET, KIND_ELEMENTS, LINE, MAGIC, PRODUCER_BARRIER_OFFSET,
    PRODUCER_CLOSED_OFFSET, SLEEPER_BARRIER, VERSION, VERSION_ELEMENTS_V1,
};
pub use msg::{
    Batch, MsgConsumer, MsgLayout, MsgPopError, MsgProducer, MsgPushError, Record, Reservation,
    KIND_MESSAGES, MAX_MSG_CAPACITY, MIN_MSG_CAPACITY, PENDING_MARKER, RECORD_ALIGN, RECORD_HEADER,
    SKIP_MARKER,
};
pub use producer::Producer;
pub use region::RawRegion;
pub use wake::WaitCheck;

/// Builds an in-process pair over a leaked heap buffer, for the examples
/// in these docs. It expands in the caller's crate, which has `std`.
#[doc(hidden)]
#[macro_export]
macro_rules! __doc_pair {
    ($t:ty, $cap:expr) => {{
        let layout = $crate::RingLayout::new::<$t>($cap).unwrap();
        let words = ::std::vec![0u128; layout.region_size().div_ceil(16)].leak();
        let ptr = ::core::ptr::NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the buffer is leaked, so it outlives the handles, and it
        // is never accessed except through them.
        let region = unsafe { $crate::RawRegion::new(ptr, layout.region_size()) };
        (
            $crate::Producer::<$t>::create(region, $cap).unwrap(),
            $crate::Consumer::<$t>::attach(region, $cap).unwrap(),
        )
    }};
}
