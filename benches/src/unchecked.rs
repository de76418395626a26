//! The unchecked ring: the hardware's limit for moving bytes between two
//! processes through shared memory.
//!
//! A plain single-producer single-consumer byte ring in a memfd mapped by
//! both processes: a head (written by the producer) and a tail (written by
//! the consumer) as atomic `u64` positions on their own 128-byte lines,
//! and the slots at the same page offset as sharedring's. A position
//! becomes a slot offset by a mask when the capacity is a power of two
//! (every bench's ring), as in sharedring; a 64-bit division per call
//! made the reference slower than the ring it bounds (8-byte messages in
//! place on the 2-vCPU VM: 10-21 ns per message with the division, 7.4-11.6
//! ns with the mask; 12 and 21 set-ups). Each side caches the other's
//! position and reloads it only when the cached one shows less room
//! (data) than it wants. Nothing is validated, nobody is woken: both
//! sides spin.
//! [`UncheckedProducer::send`] and [`UncheckedConsumer::recv`] copy in
//! steps of [`STEP`] bytes (at most a quarter of the ring), publishing
//! after each step, as sharedring's `send`/`recv` do: a copying ring's
//! best policy, not a check (one copy per call makes a big message's
//! receiver wait for all of it). It is
//! correct for two cooperating processes (the slots handed to a side are
//! never touched by the other side until published with a release store
//! and observed with an acquire load), which is all a reference needs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::shared_page::SharedMap;

/// The head's offset in the map.
const HEAD: usize = 0;
/// The tail's offset, on another 128-byte line.
const TAIL: usize = 128;
/// Where the slots start: the page offset of sharedring's slots.
const DATA: usize = crate::RING_SLOT_PAGE_OFFSET;

/// The most `send` and `recv` copy between two publications: 64 KiB, or
/// a quarter of a smaller ring (sharedring's step for bytes).
pub const STEP: usize = 64 * 1024;

/// The shared mapping of an unchecked ring of `cap` bytes.
pub struct UncheckedRing {
    map: SharedMap,
    cap: usize,
}

impl UncheckedRing {
    fn map_len(cap: usize) -> usize {
        (DATA + cap).div_ceil(4096) * 4096
    }

    /// A fresh ring of `cap` bytes.
    pub fn new(cap: usize) -> std::io::Result<Self> {
        assert!(cap > 0);
        Ok(Self {
            map: SharedMap::new(Self::map_len(cap))?,
            cap,
        })
    }

    /// Maps a ring of `cap` bytes received from the parent.
    pub fn map(fd: OwnedFd, cap: usize) -> std::io::Result<Self> {
        assert!(cap > 0);
        Ok(Self {
            map: SharedMap::map(fd, Self::map_len(cap))?,
            cap,
        })
    }

    fn head(&self) -> &'static AtomicU64 {
        self.map.atomic_u64(HEAD)
    }

    fn tail(&self) -> &'static AtomicU64 {
        self.map.atomic_u64(TAIL)
    }

    /// The producing end. Only one process may hold it.
    pub fn producer(self) -> UncheckedProducer {
        let head = self.head().load(Ordering::Relaxed);
        let tail = self.tail().load(Ordering::Acquire);
        UncheckedProducer {
            ring: self,
            head,
            tail_cache: tail,
        }
    }

    /// The consuming end. Only one process may hold it.
    pub fn consumer(self) -> UncheckedConsumer {
        let tail = self.tail().load(Ordering::Relaxed);
        let head = self.head().load(Ordering::Acquire);
        UncheckedConsumer {
            ring: self,
            tail,
            head_cache: head,
        }
    }

    /// The up to two runs of `len` slots from position `pos`, as
    /// (offset, length) in the slot area.
    #[inline]
    fn runs(&self, pos: u64, len: usize) -> [(usize, usize); 2] {
        // A mask for a power-of-two ring (every bench's), as sharedring
        // does; no division on the fast path.
        let cap = self.cap as u64;
        let start = if cap.is_power_of_two() {
            (pos & (cap - 1)) as usize
        } else {
            (pos % cap) as usize
        };
        let first = len.min(self.cap - start);
        [(start, first), (0, len - first)]
    }

    fn slot_ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset <= self.cap);
        // SAFETY: `DATA + offset <= DATA + cap <= map.len()`.
        unsafe { self.map.as_ptr().add(DATA + offset) }
    }
}

impl AsFd for UncheckedRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.as_fd()
    }
}

/// Spins, panicking if the peer has not moved for ten seconds (it died).
fn spin(spins: &mut u32, since: &mut Option<Instant>) {
    std::hint::spin_loop();
    *spins = spins.wrapping_add(1);
    if *spins % (1 << 22) == 0 {
        let t = since.get_or_insert_with(Instant::now);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "unchecked ring: the peer stopped"
        );
    }
}

/// The producing end of an [`UncheckedRing`].
pub struct UncheckedProducer {
    ring: UncheckedRing,
    head: u64,
    tail_cache: u64,
}

impl UncheckedProducer {
    /// Waits until at least one slot is free, hands `fill` the free slots
    /// (up to `max` bytes, in one or two runs), then publishes them all.
    /// Returns how many bytes were published.
    pub fn write_runs(&mut self, max: usize, mut fill: impl FnMut(&mut [u8])) -> usize {
        let cap = self.ring.cap as u64;
        let (mut spins, mut since) = (0, None);
        while self.head - self.tail_cache == cap {
            self.tail_cache = self.ring.tail().load(Ordering::Acquire);
            if self.head - self.tail_cache == cap {
                spin(&mut spins, &mut since);
            }
        }
        self.fill(max, &mut fill)
    }

    /// Hands `fill` the free slots known from the cached tail (refreshed
    /// first if that shows fewer than `max`), up to `max` bytes, and
    /// publishes them.
    fn fill(&mut self, max: usize, fill: &mut impl FnMut(&mut [u8])) -> usize {
        let cap = self.ring.cap as u64;
        if cap - (self.head - self.tail_cache) < max as u64 {
            self.tail_cache = self.ring.tail().load(Ordering::Acquire);
        }
        let k = max.min((cap - (self.head - self.tail_cache)) as usize);
        if k == 0 {
            return 0;
        }
        for (off, len) in self.ring.runs(self.head, k) {
            if len > 0 {
                // SAFETY: slots [head, tail_cache + cap) are free: the
                // consumer released them (its release store of the tail,
                // which our acquire load observed, comes after its last
                // access) and will not touch them until we publish a head
                // past them. The run lies inside the slot area.
                let run = unsafe { std::slice::from_raw_parts_mut(self.ring.slot_ptr(off), len) };
                fill(run);
            }
        }
        self.head += k as u64;
        self.ring.head().store(self.head, Ordering::Release);
        k
    }

    /// Copies all of `msg` into the ring, in steps, publishing after each
    /// (waiting for room only when the ring is full).
    pub fn send(&mut self, msg: &[u8]) {
        let step = STEP.min(self.ring.cap / 4).max(1);
        let mut off = 0;
        while off < msg.len() {
            let rest = &msg[off..(off + step).min(msg.len())];
            let mut at = 0;
            let mut copy = |run: &mut [u8]| {
                run.copy_from_slice(&rest[at..at + run.len()]);
                at += run.len();
            };
            let k = self.fill(rest.len(), &mut copy);
            off += if k == 0 {
                self.write_runs(rest.len(), copy)
            } else {
                k
            };
        }
    }
}

/// The consuming end of an [`UncheckedRing`].
pub struct UncheckedConsumer {
    ring: UncheckedRing,
    tail: u64,
    head_cache: u64,
}

impl UncheckedConsumer {
    /// Waits until at least one byte is there, hands `read` the filled
    /// slots (up to `max` bytes, in one or two runs), then releases them
    /// all. Returns how many bytes were released.
    pub fn read_runs(&mut self, max: usize, mut read: impl FnMut(&[u8])) -> usize {
        let (mut spins, mut since) = (0, None);
        while self.head_cache == self.tail {
            self.head_cache = self.ring.head().load(Ordering::Acquire);
            if self.head_cache == self.tail {
                spin(&mut spins, &mut since);
            }
        }
        self.take(max, &mut read)
    }

    /// Hands `read` the filled slots known from the cached head (refreshed
    /// first if that shows fewer than `max`), up to `max` bytes, and
    /// releases them.
    fn take(&mut self, max: usize, read: &mut impl FnMut(&[u8])) -> usize {
        if self.head_cache - self.tail < max as u64 {
            self.head_cache = self.ring.head().load(Ordering::Acquire);
        }
        let k = max.min((self.head_cache - self.tail) as usize);
        if k == 0 {
            return 0;
        }
        for (off, len) in self.ring.runs(self.tail, k) {
            if len > 0 {
                // SAFETY: slots [tail, head_cache) were filled by the
                // producer before its release store of the head, which our
                // acquire load observed; it will not write them again until
                // we publish a tail past them. The run lies inside the slot
                // area.
                let run = unsafe { std::slice::from_raw_parts(self.ring.slot_ptr(off), len) };
                read(run);
            }
        }
        self.tail += k as u64;
        self.ring.tail().store(self.tail, Ordering::Release);
        k
    }

    /// Copies up to `buf.len()` bytes out of the ring, in steps, releasing
    /// after each; waits for the first byte, then stops when the ring is
    /// empty. Returns how many bytes.
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        let step = STEP.min(self.ring.cap / 4).max(1);
        let len = buf.len();
        let mut got = 0;
        while got < len {
            let dst = &mut buf[got..(got + step).min(len)];
            let want = dst.len();
            let mut at = 0;
            let mut copy = |run: &[u8]| {
                dst[at..at + run.len()].copy_from_slice(run);
                at += run.len();
            };
            let k = if got == 0 {
                self.read_runs(want, copy)
            } else {
                self.take(want, &mut copy)
            };
            if k == 0 {
                break;
            }
            got += k;
        }
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two mappings of one ring, one end per thread: every byte arrives,
    /// in order, across wrap-arounds, for copies and for in-place runs, in
    /// a ring whose capacity is a power of two (masked positions) and in
    /// one whose capacity is not (divided).
    #[test]
    fn streams_in_order() {
        for cap in [4096, 4096 + 64] {
            streams_in_order_with(cap);
        }
    }

    fn streams_in_order_with(cap: usize) {
        let ring = UncheckedRing::new(cap).unwrap();
        let other = UncheckedRing::map(rustix::io::dup(&ring).unwrap(), cap).unwrap();
        let total: usize = 3_000_000;
        let byte = |i: usize| (i % 251) as u8;
        let producer = std::thread::spawn(move || {
            let mut tx = other.producer();
            let mut sent = 0;
            let mut size = 1;
            while sent < total {
                let n = size.min(total - sent);
                if size % 2 == 0 {
                    let msg: Vec<u8> = (sent..sent + n).map(byte).collect();
                    tx.send(&msg);
                    sent += n;
                } else {
                    let mut left = n;
                    while left > 0 {
                        left -= tx.write_runs(left, |run| {
                            for b in run.iter_mut() {
                                *b = byte(sent);
                                sent += 1;
                            }
                        });
                    }
                }
                size = size * 7 % 9973 + 1;
            }
        });
        let mut rx = ring.consumer();
        let mut got = 0;
        let mut buf = vec![0u8; 5000];
        let mut round = 0;
        while got < total {
            round += 1;
            if round % 2 == 0 {
                let n = rx.recv(&mut buf[..(round * 13) % 5000 + 1]);
                for (k, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, byte(got + k));
                }
                got += n;
            } else {
                rx.read_runs(total - got, |run| {
                    for b in run {
                        assert_eq!(*b, byte(got));
                        got += 1;
                    }
                });
            }
        }
        producer.join().unwrap();
    }
}
