//! Broadcast: one publisher, many subscribers it does not trust, and that
//! do not trust it.
//!
//! A ring of `slots` fixed-size slots in a **data region** that only the
//! publisher writes (the facade seals it with `F_SEAL_FUTURE_WRITE`, so
//! the kernel refuses every subscriber write), plus one small **control
//! region** per subscriber, which that subscriber writes (its cursor and
//! wait word) and the publisher only reads.
//!
//! - [`BcastPublisher::publish`] writes each message once, whatever the
//!   number of subscribers, and never waits: the oldest slot is
//!   overwritten (lossy). It stamps the slot `2s+1` (being written),
//!   writes length and payload, stamps `2s+2` (complete, Release), then
//!   advances the head.
//! - [`BcastSubscriber::try_recv`] loads the stamp, copies the message
//!   out with volatile reads, fences, and re-loads the stamp: a changed
//!   stamp means the publisher lapped us mid-copy, and the copy is
//!   discarded ([`BcastRecvError::Lagged`], resuming at the oldest message
//!   that may still be intact). A torn message is never returned.
//! - Sleeping: a subscriber announces sleep in its control region and
//!   waits on the **wake word**, a futex word in the read-only data region
//!   (`FUTEX_WAIT` needs only read access). [`BcastPublisher::wake_scan`]
//!   reads every control region's wait word once, after a SeqCst fence or
//!   (with [`WakeOrder::SleeperBarrier`]) after none, the sleeper having
//!   run `membarrier` instead, and asks for at most one `FUTEX_WAKE` of all
//!   waiters (and one signal of a shared eventfd for event-loop
//!   subscribers): wake-up syscalls do not grow with the number of
//!   subscribers.
//!
//! Every value read from shared memory is loaded once and validated; a
//! publisher's lie is a [`BcastCorruption`], never an access outside the
//! region nor a loop: each call is O(1), and each `Lagged` moves the
//! cursor forward by at least one.
//!
//! ```
//! use core::ptr::NonNull;
//! use spsc_core::broadcast::*;
//! use spsc_core::RawRegion;
//!
//! #[repr(C, align(64))]
//! struct Line([u8; 64]);
//! fn region(lines: &mut Vec<Line>) -> RawRegion {
//!     // SAFETY: the vector outlives the handles and is not touched otherwise.
//!     unsafe { RawRegion::new(NonNull::new(lines.as_mut_ptr().cast()).unwrap(), lines.len() * 64) }
//! }
//! let layout = BcastLayout::new(8, 64)?;
//! let mut data: Vec<Line> = (0..layout.region_size().div_ceil(64)).map(|_| Line([0; 64])).collect();
//! let mut ctl: Vec<Line> = (0..control::SIZE / 64).map(|_| Line([0; 64])).collect();
//!
//! let mut publisher = BcastPublisher::create(region(&mut data), layout)?;
//! let watch = SubscriberWatch::create(region(&mut ctl), publisher.head())?;
//! let mut sub = BcastSubscriber::attach(region(&mut data), layout, region(&mut ctl), StartAt::Newest)?;
//!
//! publisher.publish(b"hello")?;
//! let mut buf = [0u8; 64];
//! let n = sub.try_recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! assert_eq!(watch.cursor(publisher.head()), Ok(1));
//!
//! for i in 0..20u8 {
//!     publisher.publish(&[i])?;
//! }
//! assert_eq!(sub.try_recv(&mut buf), Err(BcastRecvError::Lagged { missed: 12 }));
//! assert_eq!(sub.try_recv(&mut buf)?, 1);
//! assert_eq!(buf[0], 12); // the oldest message still in the ring
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod layout;
mod publisher;
mod subscriber;
mod view;

pub use error::{
    BcastCorruption, BcastLayoutError, BcastPublishError, BcastRecvError, BcastSetupError,
};
pub use layout::{
    control, header, slot, BcastLayout, BCAST_DATA_OFFSET, BCAST_MAGIC, BCAST_VERSION,
    KIND_BROADCAST, MAX_BCAST_MSG, MAX_SLOTS, SLOT_ALIGN,
};
pub use publisher::{BcastPublisher, CursorAhead, SubscriberWatch, WakeNeed, WakeOrder};
pub use subscriber::{BcastSubscriber, BcastWait, StartAt, WaitHow};
