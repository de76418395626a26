//! Ring options: capacity, memory, waiting.

use std::time::Duration;

use shmem_seal::HugePageSize;

use crate::error::Error;

/// Default ring size in bytes when no capacity is given: big enough to
/// absorb scheduling hiccups at memory speed, small enough to stay in the
/// L2/L3 caches (a ring far bigger than the cache is DRAM-bound).
pub const DEFAULT_RING_BYTES: usize = 1 << 20;

/// Default spin budget of blocking calls before they park: 100 µs.
///
/// A park is only worth it if the peer stays away longer than a park and
/// its wake-up cost; spinning for about that long first is the classic
/// 2-competitive choice. The budget must also cover the peer's own
/// wake-up latency, because a park is catching: once one side parks, the
/// other waits for that side's wake-up, may run past its own budget and
/// park too. On the project's 2-vCPU VM a futex wake-up takes 35-40 µs
/// (a futex ping-pong round trip 70-76 µs), and the 20 µs budget of
/// earlier versions made 1 MiB messages through the default ring park
/// in bursts whenever the caches were cold: 0.56-0.85x the unchecked ring,
/// measured interleaved, against 0.97-1.00x with 100 µs (and 0.94-1.00x
/// with 200 µs); smaller messages did not change. A receiver that stays
/// blocked spins once per call and then uses no CPU (0.005 % over 2 s).
/// Set [`Options::spin`] lower to trade latency for CPU, or to zero to
/// park at once.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(100);

/// Default handshake timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default largest ring an accepting side maps, and a creating side
/// makes: 1 GiB of data (the ring's 512-byte header comes on top, so a
/// ring of exactly 1 GiB fits).
pub const DEFAULT_MAX_REGION: usize = 1 << 30;

/// Default largest message of a message ring: what a creating side fixes
/// when [`Options::max_msg`] is unset (or less, if the capacity allows
/// less), and the largest an accepting side agrees to.
pub const DEFAULT_MAX_MSG: usize = 1 << 20;

/// Options of a ring: how it is created, accepted, and waited on.
///
/// ```
/// use std::time::Duration;
/// let opts = sharedring::Options::new()
///     .capacity_elements(1 << 16)
///     .spin(Duration::ZERO) // park at once
///     .mlock(false);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) capacity: Option<Capacity>,
    pub(crate) hugetlb: Option<HugePageSize>,
    pub(crate) mlock: bool,
    pub(crate) spin: Duration,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) max_region: usize,
    pub(crate) allow_hugetlb: bool,
    pub(crate) max_msg: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            capacity: None,
            hugetlb: None,
            mlock: false,
            spin: DEFAULT_SPIN,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            max_region: DEFAULT_MAX_REGION,
            allow_hugetlb: false,
            max_msg: None,
        }
    }
}

impl Options {
    /// The defaults: about [`DEFAULT_RING_BYTES`] of elements, normal pages,
    /// no mlock, a [`DEFAULT_SPIN`] spin budget, a
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`], and regions up to
    /// [`DEFAULT_MAX_REGION`] accepted.
    ///
    /// ```
    /// let opts = sharedring::Options::new();
    /// let (tx, _rx) = sharedring::channel_with::<u64>(&opts)?;
    /// assert_eq!(tx.capacity_elements(), sharedring::DEFAULT_RING_BYTES / 8);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Capacity of an element ring, in elements (a power of two), for the
    /// side that creates it. A message ring refuses this: size it with
    /// [`capacity_bytes`](Self::capacity_bytes).
    ///
    /// ```
    /// let opts = sharedring::Options::new().capacity_elements(1 << 10);
    /// let (tx, _rx) = sharedring::channel_with::<u64>(&opts)?;
    /// assert_eq!(tx.capacity_elements(), 1 << 10);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn capacity_elements(mut self, elements: usize) -> Self {
        self.capacity = Some(Capacity::Elements(elements));
        self
    }

    /// Capacity of a message ring, in bytes (a power of two), for the side
    /// that creates it. An element ring refuses this: size it with
    /// [`capacity_elements`](Self::capacity_elements).
    ///
    /// ```
    /// let opts = sharedring::Options::new().capacity_bytes(1 << 16);
    /// let (tx, _rx) = sharedring::msg_channel(&opts)?;
    /// assert_eq!(tx.capacity_bytes(), 1 << 16);
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn capacity_bytes(mut self, bytes: usize) -> Self {
        self.capacity = Some(Capacity::Bytes(bytes));
        self
    }

    /// Back the ring with huge pages of this size (creating side). The
    /// kernel must have huge pages reserved. The accepting side must allow
    /// it with [`allow_hugetlb`](Self::allow_hugetlb).
    ///
    /// ```
    /// use sharedring::shmem_seal::HugePageSize;
    /// let opts = sharedring::Options::new().hugetlb(HugePageSize::Size2MiB);
    /// // Fails clearly where no huge pages are reserved:
    /// if let Err(e) = sharedring::channel_with::<u64>(&opts) {
    ///     println!("{e}");
    /// }
    /// ```
    pub fn hugetlb(mut self, size: HugePageSize) -> Self {
        self.hugetlb = Some(size);
        self
    }

    /// Lock the ring's pages in memory (creating side).
    ///
    /// ```
    /// let opts = sharedring::Options::new().capacity_elements(64).mlock(true);
    /// // Fails clearly where RLIMIT_MEMLOCK is too low:
    /// if let Err(e) = sharedring::channel_with::<u64>(&opts) {
    ///     println!("{e}");
    /// }
    /// ```
    pub fn mlock(mut self, lock: bool) -> Self {
        self.mlock = lock;
        self
    }

    /// How long blocking calls spin on the ring before they park on the
    /// wake-up descriptor. A peer that answers within the budget costs no
    /// wake-up at all; `Duration::ZERO` parks at once. Once the budget is
    /// spent, a blocked call uses no CPU.
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = sharedring::Options::new().capacity_elements(64).spin(Duration::ZERO);
    /// let (_tx, mut rx) = sharedring::channel_with::<u64>(&opts)?;
    /// // Parks at once, without spinning, then times out.
    /// assert!(rx.recv(&mut [0; 4], Some(Duration::from_millis(1))).is_err());
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn spin(mut self, budget: Duration) -> Self {
        self.spin = budget;
        self
    }

    /// How long a handshake waits for the peer (`None`: forever).
    ///
    /// The deadline is a total for the whole handshake (the setup message
    /// and the answer), however the peer paces its bytes.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, _silent_peer) = std::os::unix::net::UnixStream::pair()?;
    /// let opts = sharedring::Options::new().handshake_timeout(Some(Duration::from_millis(50)));
    /// let err = sharedring::Receiver::<u64>::accept_with(a, &opts).unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     sharedring::Error::Handshake(sharedring::HandshakeError::TimedOut)
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest ring this side makes or maps, in bytes of data (the
    /// 512-byte header comes on top). The accepting side refuses a larger
    /// offer before it maps anything; the creating side refuses to create
    /// one ([`Error::RingTooLarge`]).
    ///
    /// ```
    /// let opts = sharedring::Options::new().max_region(1 << 12).capacity_elements(1 << 10);
    /// let err = sharedring::channel_with::<u64>(&opts).unwrap_err(); // 8 KiB of data
    /// assert!(matches!(err, sharedring::Error::RingTooLarge { .. }));
    /// ```
    pub fn max_region(mut self, bytes: usize) -> Self {
        self.max_region = bytes;
        self
    }

    /// Accept a ring backed by huge pages (accepting side).
    ///
    /// A peer can punch a hole in a hugetlb memfd while the huge page pool
    /// is empty, and our next touch of that spot raises SIGBUS; seals do not
    /// prevent it. Allow this only with a peer you trust not to.
    ///
    /// ```
    /// let opts = sharedring::Options::new().allow_hugetlb(true); // a trusted peer only
    /// # let _ = opts;
    /// ```
    pub fn allow_hugetlb(mut self, allow: bool) -> Self {
        self.allow_hugetlb = allow;
        self
    }

    /// For message rings: the largest message, in bytes.
    ///
    /// The creating side fixes it in the ring (default: [`DEFAULT_MAX_MSG`],
    /// or the most the capacity allows if that is less, see
    /// [`spsc_core::MsgLayout::max_msg_limit`]). The accepting side refuses
    /// a ring whose maximum is larger (default: [`DEFAULT_MAX_MSG`]).
    ///
    /// On the receiving side this is also the most that one message from
    /// the peer can make us allocate: [`MsgReceiver::recv`] grows the
    /// caller's `Vec` to the message's length. Raise it only as far as you
    /// are willing to allocate per message for that peer.
    ///
    /// [`MsgReceiver::recv`]: crate::MsgReceiver::recv
    ///
    /// ```
    /// let opts = sharedring::Options::new().capacity_bytes(1 << 16).max_msg(512);
    /// let (mut tx, _rx) = sharedring::msg_channel(&opts)?;
    /// assert!(matches!(
    ///     tx.send(&[0; 513], None),
    ///     Err(sharedring::Error::MessageTooLarge { len: 513, max: 512 })
    /// ));
    /// # Ok::<(), sharedring::Error>(())
    /// ```
    pub fn max_msg(mut self, bytes: usize) -> Self {
        self.max_msg = Some(bytes);
        self
    }

    /// The capacity to create an element ring of `T` with.
    pub(crate) fn elements_for<T>(&self) -> Result<usize, Error> {
        match self.capacity {
            Some(Capacity::Elements(n)) => Ok(n),
            Some(Capacity::Bytes(_)) => Err(Error::CapacityUnit {
                given: "bytes",
                ring: "element",
            }),
            None => {
                let n = (DEFAULT_RING_BYTES / std::mem::size_of::<T>().max(1)).max(1);
                // Round down to a power of two.
                Ok(1 << (usize::BITS - 1 - n.leading_zeros()))
            }
        }
    }

    /// The capacity to create a message ring with, in bytes.
    pub(crate) fn bytes_for_messages(&self) -> Result<usize, Error> {
        match self.capacity {
            Some(Capacity::Bytes(n)) => Ok(n),
            Some(Capacity::Elements(_)) => Err(Error::CapacityUnit {
                given: "elements",
                ring: "message",
            }),
            None => Ok(DEFAULT_RING_BYTES),
        }
    }

    /// The creating side checks its own limit before it makes anything:
    /// a ring whose data exceeds [`max_region`](Self::max_region) would be
    /// refused by a peer with the same limit.
    pub(crate) fn check_own_region(
        &self,
        data_bytes: usize,
        region_bytes: usize,
    ) -> Result<(), Error> {
        if data_bytes > self.max_region {
            return Err(Error::RingTooLarge {
                bytes: region_bytes as u64,
                limit: self.max_region as u64,
            });
        }
        Ok(())
    }
}

/// A capacity, in the unit its setter named.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Capacity {
    Elements(usize),
    Bytes(usize),
}
