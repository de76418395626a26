//! Broadcast: one publisher, many subscriber processes it does not trust
//! (and that do not trust it).
//!
//! - [`MsgPublisher`] / [`MsgSubscriber`] carry byte messages of up to
//!   `max_msg` bytes; [`Publisher<T>`] / [`Subscriber<T>`] carry one
//!   [`Element`] type per message (both ends check its size, alignment and
//!   type tag).
//! - The publisher writes each message once into a memfd it sealed with
//!   `F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`:
//!   the kernel refuses every write by any other process (writable
//!   `mmap`, `mprotect`, `write`, a reopen through `/proc`, hole
//!   punching, resizing). Subscribers check those seals and map it
//!   read-only. What a subscriber writes (its cursor and wait word) is in
//!   a control memfd shared only with the publisher, which validates every
//!   value it reads there.
//! - Lossy ([`Delivery::Lossy`], the default): the publisher never waits;
//!   a subscriber a lap behind gets [`BroadcastError::Lagged`] with the
//!   number it missed and resumes at the oldest intact message. Reliable
//!   ([`Delivery::Reliable`]): the publisher waits for the slowest
//!   subscriber up to a timeout, then drops those still behind.
//! - Membership: subscribers join at any time through a [`Listener`]
//!   (see [`MsgPublisher::accept_from`]), with or without history; they
//!   leave or die at any time; [`MsgPublisher::subscribers`] lists them
//!   with credentials and lag.
//! - A latest-value cell ([`BroadcastOptions::latest_value`],
//!   [`Subscriber::latest`]): readers take the newest value, whether or
//!   not they read it before.
//! - Wake-ups: at most one `FUTEX_WAKE` (and one eventfd write for
//!   event-loop subscribers) per published message, however many
//!   subscribers sleep. A lossy publisher does not fence per message: a
//!   subscriber about to sleep calls `membarrier` instead
//!   ([`BroadcastOptions::publisher_fence`] says why and how to opt out).
//!
//! The algorithm is in [`spsc_core::broadcast`]; the layout and handshake
//! are specified in `docs/LAYOUT.md` ("Broadcast rings").
//!
//! ```
//! use sharedring::broadcast::{BroadcastOptions, Publisher, SubscribeOptions, Subscriber};
//! let mut publisher = Publisher::<u64>::new(&BroadcastOptions::new().slots(64))?;
//! let mut subs = Vec::new();
//! for _ in 0..3 {
//!     let (a, b) = std::os::unix::net::UnixStream::pair()?;
//!     publisher.add_subscriber(a)?;
//!     subs.push(Subscriber::<u64>::join(b, &SubscribeOptions::new())?);
//! }
//! publisher.publish(&42)?;
//! for s in &mut subs {
//!     assert_eq!(s.recv()?, 42);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Listener`]: crate::Listener
//! [`Element`]: crate::Element

#[cfg(feature = "tokio")]
mod async_sub;
mod error;
mod options;
mod publisher;
mod subscriber;
mod wire;

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[cfg(feature = "tokio")]
pub use async_sub::{AsyncMsgSubscriber, AsyncSubscriber};
pub use error::BroadcastError;
pub use options::{BroadcastOptions, Delivery, SubscribeOptions};
pub use publisher::{MsgPublisher, SubscriberInfo};
pub use spsc_core::broadcast::WakeOrder;
pub use subscriber::MsgSubscriber;

/// How long a blocking subscriber re-checks before it sleeps, and how
/// long a reliable publisher spins on a lagging subscriber before it
/// yields: 20 µs, the SPSC ends' default of earlier versions. Broadcast
/// keeps it: its wake-up benchmarks and targets were measured with it,
/// and a subscriber's sleep costs the publisher one scan entry, not a
/// stalled stream (the SPSC ends moved to [`crate::DEFAULT_SPIN`], whose
/// documentation says why).
pub(crate) const BROADCAST_SPIN: Duration = Duration::from_micros(20);

/// Registers this process for `MEMBARRIER_CMD_GLOBAL_EXPEDITED`, so that a
/// publisher may leave the wake-up ordering to its subscribers. Falls back
/// to the publisher's fence where the kernel (or a seccomp filter) says no.
fn register_sleeper_barrier() -> WakeOrder {
    if crate::barrier::registered() {
        WakeOrder::SleeperBarrier
    } else {
        WakeOrder::PublisherFence
    }
}

use crate::Element;

/// A typed subscriber's check of one message's length.
fn contract_size<T>(n: usize) -> Result<(), BroadcastError> {
    if n != std::mem::size_of::<T>() {
        return Err(BroadcastError::WrongSize {
            expected: std::mem::size_of::<T>(),
            found: n,
        });
    }
    Ok(())
}

fn contract<T: Element>() -> (u32, u32, u64) {
    (
        std::mem::size_of::<T>() as u32,
        std::mem::align_of::<T>() as u32,
        T::TAG.hash(),
    )
}

/// The publishing end of a broadcast of `T` values: a [`MsgPublisher`]
/// whose messages are exactly one `T`.
#[derive(Debug)]
pub struct Publisher<T: Element> {
    inner: MsgPublisher,
    _t: std::marker::PhantomData<fn(T)>,
}

impl<T: Element> Publisher<T> {
    /// Creates the ring (`max_msg` in `opts` is replaced by `T`'s size).
    pub fn new(opts: &BroadcastOptions) -> Result<Self, BroadcastError> {
        let opts = opts.clone().max_msg(std::mem::size_of::<T>());
        Ok(Self {
            inner: MsgPublisher::with_contract(&opts, contract::<T>())?,
            _t: std::marker::PhantomData,
        })
    }

    /// Publishes one value; see [`MsgPublisher::publish`].
    pub fn publish(&mut self, value: &T) -> Result<u64, BroadcastError> {
        self.inner.publish(value.as_bytes())
    }

    /// Offers the ring to a subscriber; see [`MsgPublisher::add_subscriber`].
    pub fn add_subscriber(&mut self, stream: UnixStream) -> Result<u64, BroadcastError> {
        self.inner.add_subscriber(stream)
    }

    /// The byte-level publisher, for listing and removing subscribers.
    pub fn inner(&mut self) -> &mut MsgPublisher {
        &mut self.inner
    }
}

/// The subscribing end of a broadcast of `T` values.
#[derive(Debug)]
pub struct Subscriber<T: Element> {
    inner: MsgSubscriber,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element> Subscriber<T> {
    /// Joins over a connected socket, refusing a publisher of another
    /// type (size, alignment or type tag).
    pub fn join(stream: UnixStream, opts: &SubscribeOptions) -> Result<Self, BroadcastError> {
        Ok(Self {
            inner: MsgSubscriber::join_with_contract(stream, opts, contract::<T>())?,
            _t: std::marker::PhantomData,
        })
    }

    /// Connects to a publisher's listening socket and joins.
    pub fn connect(
        path: impl AsRef<Path>,
        opts: &SubscribeOptions,
    ) -> Result<Self, BroadcastError> {
        Self::join(UnixStream::connect(path)?, opts)
    }

    fn one(
        &mut self,
        f: impl FnOnce(&mut MsgSubscriber, &mut [u8]) -> Result<usize, BroadcastError>,
    ) -> Result<T, BroadcastError> {
        let mut value = T::new_zeroed();
        let n = f(&mut self.inner, value.as_mut_bytes())?;
        contract_size::<T>(n)?;
        Ok(value)
    }

    /// The next value, without blocking; see [`MsgSubscriber::try_recv`].
    pub fn try_recv(&mut self) -> Result<T, BroadcastError> {
        self.one(|s, b| s.try_recv(b))
    }

    /// The next value, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<T, BroadcastError> {
        self.one(|s, b| s.recv(b))
    }

    /// The next value, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, BroadcastError> {
        self.one(|s, b| s.recv_timeout(b, Some(timeout)))
    }

    /// The newest value and its sequence number, even if read before (a
    /// latest-value cell; see [`BroadcastOptions::latest_value`]).
    ///
    /// ```
    /// use sharedring::broadcast::{BroadcastOptions, Publisher, SubscribeOptions, Subscriber};
    /// let mut state = Publisher::<[f32; 4]>::new(&BroadcastOptions::latest_value())?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// state.add_subscriber(a)?;
    /// let mut reader = Subscriber::<[f32; 4]>::join(b, &SubscribeOptions::new())?;
    /// for x in 0..100 {
    ///     state.publish(&[x as f32, 0.0, 0.0, 1.0])?;
    /// }
    /// assert_eq!(reader.latest()?, (99, [99.0, 0.0, 0.0, 1.0]));
    /// assert_eq!(reader.latest()?.0, 99); // still the newest
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn latest(&mut self) -> Result<(u64, T), BroadcastError> {
        let mut seq = 0;
        let value = self.one(|s, b| {
            let (q, n) = s.latest(b)?;
            seq = q;
            Ok(n)
        })?;
        Ok((seq, value))
    }

    /// The byte-level subscriber (event-loop descriptors, lag, id).
    pub fn inner(&mut self) -> &mut MsgSubscriber {
        &mut self.inner
    }

    /// The byte-level subscriber, taken out.
    pub fn into_inner(self) -> MsgSubscriber {
        self.inner
    }
}
