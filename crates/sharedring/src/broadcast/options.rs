//! What a publisher offers and what a subscriber accepts.

use std::time::Duration;

use spsc_core::broadcast::BcastLayout;

use super::error::BroadcastError;
use crate::options::{DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_REGION};

/// What happens when a subscriber falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The publisher never waits: the oldest message is overwritten, and a
    /// subscriber that fell a lap behind gets
    /// [`BroadcastError::Lagged`] with the number it missed.
    Lossy,
    /// Before publishing, the publisher waits until every subscriber is
    /// less than `max_lag` messages behind (at most `slots`), for at most
    /// `timeout`; subscribers still that far behind then are dropped
    /// (their socket is shut down: they see
    /// [`BroadcastError::PeerGone`]). A slow or hostile subscriber delays
    /// the others by at most `timeout`, once.
    Reliable {
        /// The most messages a subscriber may be behind (1 to `slots`).
        max_lag: u64,
        /// How long to wait for the slowest subscriber.
        timeout: Duration,
    },
}

/// A publisher's settings. The defaults: 256 slots of 4 KiB messages,
/// lossy, no history for new subscribers.
///
/// ```
/// use std::time::Duration;
/// use sharedring::broadcast::{BroadcastOptions, Delivery};
///
/// let opts = BroadcastOptions::new()
///     .slots(1024)
///     .max_msg(64)
///     .history(16)
///     .delivery(Delivery::Reliable { max_lag: 512, timeout: Duration::from_millis(50) });
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct BroadcastOptions {
    pub(crate) slots: usize,
    pub(crate) max_msg: usize,
    pub(crate) delivery: Delivery,
    pub(crate) history: u32,
    /// `None`: chosen by the delivery mode.
    pub(crate) publisher_fence: Option<bool>,
}

impl Default for BroadcastOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl BroadcastOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self {
            slots: 256,
            max_msg: 4096,
            delivery: Delivery::Lossy,
            history: 0,
            publisher_fence: None,
        }
    }

    /// A latest-value cell (the blackboard pattern: one writer, many
    /// readers of the newest state): a small lossy ring (4 slots) whose
    /// subscribers read with [`MsgSubscriber::latest`](super::MsgSubscriber::latest)
    /// / [`Subscriber::latest`](super::Subscriber::latest). Four slots
    /// rather than one so that reading the newest value does not race
    /// with writing the next.
    pub fn latest_value() -> Self {
        Self::new().slots(4)
    }

    /// How many messages the ring holds (a power of two, 2 to 2^24).
    pub fn slots(mut self, slots: usize) -> Self {
        self.slots = slots;
        self
    }

    /// The largest message in bytes (typed publishers set it to the
    /// type's size).
    pub fn max_msg(mut self, max_msg: usize) -> Self {
        self.max_msg = max_msg;
        self
    }

    /// Whether the publisher orders its wake-ups with a full fence after
    /// every publication (`true`), or leaves that to the subscribers about
    /// to sleep (`false`). Default: `false` in lossy mode, `true` in
    /// reliable mode.
    ///
    /// With `false` the publisher registers its process for
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` (Linux 4.16 or later,
    /// unless a seccomp filter refuses it) and then publishes without a
    /// fence: a subscriber about to sleep calls `membarrier`, which makes
    /// the publisher's CPU pass a barrier. The fence is what grows with the
    /// number of subscribers (the loads of their wait words after it), so
    /// this keeps a publication's cost nearly flat in that number; a
    /// subscriber pays one `membarrier` call (a few microseconds) per
    /// sleep, and the publisher, if it is running, an interruption. That is
    /// why reliable mode fences by default: there subscribers keep up and
    /// sleep often, and with 4 or 16 of them the interruptions cost the
    /// publisher more than the fence (on the project's 2-vCPU host, 64 B:
    /// 0.5 against 0.75 µs per message with 4, 2.1 against 2.5 µs with 16;
    /// with one subscriber the fence costs more, 130 against 97 ns). If
    /// the registration fails, the publisher fences anyway
    /// ([`MsgPublisher::wake_order`](super::MsgPublisher::wake_order) says
    /// which). Set `true` when subscribers may run where `membarrier` is
    /// refused: they cannot join a ring that needs it
    /// ([`BroadcastError::SleeperBarrierUnavailable`](super::BroadcastError::SleeperBarrierUnavailable)).
    ///
    /// ```
    /// use sharedring::broadcast::{BroadcastOptions, MsgPublisher, WakeOrder};
    ///
    /// let publisher = MsgPublisher::new(&BroadcastOptions::new().publisher_fence(true))?;
    /// assert_eq!(publisher.wake_order(), WakeOrder::PublisherFence);
    /// # Ok::<(), sharedring::broadcast::BroadcastError>(())
    /// ```
    pub fn publisher_fence(mut self, fence: bool) -> Self {
        self.publisher_fence = Some(fence);
        self
    }

    /// Lossy (the default) or reliable.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// How many already-published messages a new subscriber may ask for
    /// (capped at `slots - 1`). Default 0: subscribers start with the next
    /// message.
    pub fn history(mut self, history: u32) -> Self {
        self.history = history;
        self
    }

    pub(crate) fn layout(&self) -> Result<BcastLayout, BroadcastError> {
        let layout = BcastLayout::new(self.slots, self.max_msg)?;
        if let Delivery::Reliable { max_lag, .. } = self.delivery {
            if max_lag == 0 || max_lag > self.slots as u64 {
                return Err(BroadcastError::Refused {
                    field: "max_lag (Delivery::Reliable; must be 1..=slots)",
                    expected: self.slots as u64,
                    found: max_lag,
                });
            }
        }
        Ok(layout)
    }
}

/// What a subscriber accepts from a publisher's offer, and where it
/// starts.
///
/// ```
/// use sharedring::broadcast::SubscribeOptions;
/// let opts = SubscribeOptions::new().history(8).max_region(16 << 20);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    pub(crate) max_region: usize,
    pub(crate) history: u64,
    pub(crate) handshake_timeout: Duration,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SubscribeOptions {
    /// The defaults: regions up to 1 GiB, no history, a 10 s handshake.
    pub fn new() -> Self {
        Self {
            max_region: DEFAULT_MAX_REGION,
            history: 0,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The largest data region we agree to map.
    pub fn max_region(mut self, bytes: usize) -> Self {
        self.max_region = bytes;
        self
    }

    /// Start with up to this many already-published messages (as many as
    /// the publisher offers and its ring still holds).
    pub fn history(mut self, messages: u64) -> Self {
        self.history = messages;
        self
    }

    /// The deadline for receiving the publisher's offer.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}
