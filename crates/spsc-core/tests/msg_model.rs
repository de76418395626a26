//! Model-based tests of the message ring: random sequences of every
//! operation (reserve with partial writes, truncation and abandonment,
//! push, read with partial reads and abandonment, pop into buffers too
//! small or big enough, wait/wake), over random capacities and maximum
//! message sizes, checked against a `VecDeque<Vec<u8>>` and against the
//! record format of `docs/LAYOUT.md`: after every commit the test reads
//! the record header word (and skip marker) from the region's raw bytes at
//! the offsets the document prescribes, with its sequence tag, and the
//! pending word where the next header goes.

mod common;

use std::collections::VecDeque;

use proptest::prelude::*;
use spsc_core::{
    MsgConsumer, MsgLayout, MsgPopError, MsgProducer, MsgPushError, PopError, WaitCheck,
    DATA_OFFSET, PENDING_MARKER, SKIP_MARKER,
};

/// A message length: 0, the maximum, one past it, or anything in between.
#[derive(Debug, Clone, Copy)]
enum Len {
    Zero,
    Max,
    TooLarge,
    /// A fraction (in 1/256) of the maximum.
    Part(u8),
}

impl Len {
    fn of(self, max: usize) -> usize {
        match self {
            Self::Zero => 0,
            Self::Max => max,
            Self::TooLarge => max + 1,
            Self::Part(p) => max * p as usize / 255,
        }
    }
}

#[derive(Debug, Clone)]
enum Write {
    /// One `copy_from_slice`.
    Whole,
    /// Pieces with `write_at`, last piece first.
    Pieces,
    /// The trusted `&mut [u8]`.
    Slice,
}

#[derive(Debug, Clone)]
enum Op {
    Push(Len),
    /// Reserve, write, maybe truncate to a fraction, then commit or drop.
    Reserve {
        len: Len,
        write: Write,
        truncate: Option<u8>,
        commit: bool,
    },
    /// Pop into a buffer of the given length (maybe too small).
    Pop(Len),
    /// Read in place (three ways), then release or drop.
    Read {
        release: bool,
    },
    /// Receive up to this many messages in one batch.
    RecvMany(u8),
    /// `try_recv_into` a buffer of the given length.
    TryRecvInto(Len),
    /// Push these in one batch.
    PushMany(Vec<Len>),
    ConsumerWaits,
    ConsumerChecks,
    ProducerWaits(Len),
    ProducerChecks,
}

fn len() -> impl Strategy<Value = Len> {
    prop_oneof![
        1 => Just(Len::Zero),
        1 => Just(Len::Max),
        1 => Just(Len::TooLarge),
        5 => any::<u8>().prop_map(Len::Part),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let write = prop_oneof![Just(Write::Whole), Just(Write::Pieces), Just(Write::Slice)];
    prop_oneof![
        4 => len().prop_map(Op::Push),
        4 => (len(), write, prop::option::of(any::<u8>()), prop::bool::weighted(0.85)).prop_map(
            |(len, write, truncate, commit)| Op::Reserve { len, write, truncate, commit }
        ),
        4 => len().prop_map(Op::Pop),
        4 => prop::bool::weighted(0.85).prop_map(|release| Op::Read { release }),
        2 => (0u8..5).prop_map(Op::RecvMany),
        2 => len().prop_map(Op::TryRecvInto),
        2 => prop::collection::vec(len(), 0..5).prop_map(Op::PushMany),
        1 => Just(Op::ConsumerWaits),
        1 => Just(Op::ConsumerChecks),
        1 => len().prop_map(Op::ProducerWaits),
        1 => Just(Op::ProducerChecks),
    ]
}

/// Message number `seq` of length `len`: bytes derived from both, so any
/// misplaced, truncated or stale byte shows.
fn message(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (seq.wrapping_mul(0x9e37_79b9).wrapping_add(k as u64 * 131) >> (k % 7)) as u8)
        .collect()
}

/// The format of `docs/LAYOUT.md`, computed independently of the crate:
/// where a record of `len` bytes goes from write position `w`, and how many
/// ring bytes it takes with its skip.
fn placement(capacity: u64, w: u64, len: usize) -> (u64 /* skip */, u64 /* at */, u64 /* need */) {
    let size = 8 + (len as u64).div_ceil(8) * 8;
    let index = w % capacity;
    if index + size <= capacity {
        (0, index, size)
    } else {
        let to_end = capacity - index;
        (to_end, 0, to_end + size)
    }
}

struct Model {
    capacity: u64,
    max: usize,
    /// Published messages and the ring bytes each one frees.
    queue: VecDeque<(Vec<u8>, u64)>,
    write: u64,
    read: u64,
    seq: u64,
}

impl Model {
    fn free(&self) -> u64 {
        self.capacity - (self.write - self.read)
    }

    /// Whether a reservation of `len` must succeed now.
    fn fits(&self, len: usize) -> bool {
        placement(self.capacity, self.write, len).2 <= self.free()
    }
}

/// Reads a native `u64` header word from the region's data area, as a C
/// peer would, and splits it into (tag, length).
fn peek_header(base: *mut u8, offset: u64) -> (u32, u32) {
    // SAFETY: the offsets come from the layout, are 8-aligned and lie in
    // the data area; the handles only access it atomically or volatilely.
    let word =
        unsafe { core::ptr::read_volatile(base.add(DATA_OFFSET + offset as usize).cast::<u64>()) };
    ((word >> 32) as u32, word as u32)
}

/// The sequence tag of docs/LAYOUT.md for a header at position `pos`.
fn tag(pos: u64) -> u32 {
    (pos / 8) as u32
}

fn run(capacity: usize, max_frac: u8, ops: &[Op]) -> Result<(), TestCaseError> {
    let max = MsgLayout::max_msg_limit(capacity) * max_frac as usize / 255;
    let layout = MsgLayout::new(capacity, max).unwrap();
    let mut buf = common::Buffer::new(layout.region_size(), 2);
    let region = buf.region();
    let base = region.as_ptr();
    let mut tx = MsgProducer::create(region, capacity, max).unwrap();
    let mut rx = MsgConsumer::attach(region, capacity, max).unwrap();
    let mut m = Model {
        capacity: capacity as u64,
        max,
        queue: VecDeque::new(),
        write: 0,
        read: 0,
        seq: 0,
    };
    // Wait announcements: (announced and not withdrawn, already reported).
    let (mut rx_asleep, mut rx_woken) = (false, false);
    let (mut tx_asleep, mut tx_woken) = (false, false);

    for op in ops {
        // A side that acts is awake.
        let producer_op = matches!(
            op,
            Op::Push(_)
                | Op::Reserve { .. }
                | Op::PushMany(_)
                | Op::ProducerWaits(_)
                | Op::ProducerChecks
        );
        if tx_asleep && producer_op {
            tx.finish_wait();
            tx_asleep = false;
        }
        if rx_asleep
            && matches!(
                op,
                Op::Pop(_)
                    | Op::Read { .. }
                    | Op::RecvMany(_)
                    | Op::TryRecvInto(_)
                    | Op::ConsumerWaits
                    | Op::ConsumerChecks
            )
        {
            rx.finish_wait();
            rx_asleep = false;
        }
        match *op {
            Op::Push(len) | Op::Reserve { len, .. } => {
                let len = len.of(m.max);
                m.seq += 1;
                let msg = message(m.seq, len);
                let fits = m.fits(len);
                let (skip, at, _) = placement(m.capacity, m.write, len);
                let mut published = None;
                if let Op::Reserve {
                    ref write,
                    truncate,
                    commit,
                    ..
                } = *op
                {
                    match tx.reserve(len) {
                        Ok(mut r) => {
                            prop_assert!(fits, "reserved {len} B with {} B free", m.free());
                            prop_assert_eq!(r.len(), len);
                            prop_assert_eq!(r.as_mut_ptr() as usize % 8, 0);
                            match write {
                                Write::Whole => r.copy_from_slice(&msg),
                                Write::Pieces => {
                                    let half = len / 2;
                                    r.write_at(half, &msg[half..]);
                                    r.write_at(0, &msg[..half]);
                                }
                                // SAFETY: the consumer is ours and never
                                // touches unpublished bytes.
                                Write::Slice => unsafe { r.as_mut_slice() }.copy_from_slice(&msg),
                            }
                            let kept = truncate.map_or(len, |t| len * t as usize / 255);
                            r.truncate(kept);
                            prop_assert_eq!(r.len(), kept);
                            if commit {
                                let wake = r.commit();
                                prop_assert_eq!(wake, rx_asleep && !rx_woken);
                                rx_woken |= wake;
                                published = Some(msg[..kept].to_vec());
                            }
                        }
                        Err(MsgPushError::TooLarge { len: l, max: mx }) => {
                            prop_assert!(len > m.max);
                            prop_assert_eq!((l, mx), (len, m.max));
                        }
                        Err(MsgPushError::Full) => prop_assert!(!fits && len <= m.max),
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                } else {
                    match tx.push(&msg) {
                        Ok(()) => {
                            prop_assert!(fits);
                            published = Some(msg);
                        }
                        Err(MsgPushError::TooLarge { .. }) => prop_assert!(len > m.max),
                        Err(MsgPushError::Full) => prop_assert!(!fits && len <= m.max),
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                }
                if let Some(msg) = published {
                    // The bytes in the region follow docs/LAYOUT.md.
                    if skip > 0 {
                        prop_assert_eq!(
                            peek_header(base, m.write % m.capacity),
                            (tag(m.write), SKIP_MARKER)
                        );
                    }
                    prop_assert_eq!(
                        peek_header(base, at),
                        (tag(m.write + skip), msg.len() as u32)
                    );
                    let advance = skip + 8 + (msg.len() as u64).div_ceil(8) * 8;
                    m.write += advance;
                    // Where the next header goes: the pending word, or (if
                    // the producer's cache said the ring is full to the
                    // last byte) the header of the previous lap.
                    let next = peek_header(base, m.write % m.capacity);
                    prop_assert!(
                        next == (tag(m.write), PENDING_MARKER)
                            || next.0 == tag(m.write.wrapping_sub(m.capacity)),
                        "{:?} at position {} (read {})",
                        next,
                        m.write,
                        m.read
                    );
                    m.queue.push_back((msg, advance));
                }
            }
            Op::Pop(buf_len) => {
                let mut out = vec![0xEE; buf_len.of(m.max)];
                match rx.pop(&mut out) {
                    Ok(n) => {
                        let (msg, advance) = m.queue.pop_front().unwrap();
                        prop_assert_eq!(&out[..n], &msg[..]);
                        m.read += advance;
                    }
                    Err(MsgPopError::Empty) => prop_assert!(m.queue.is_empty()),
                    Err(MsgPopError::BufferTooSmall { len, buf }) => {
                        prop_assert_eq!(len, m.queue[0].0.len());
                        prop_assert_eq!(buf, out.len());
                        prop_assert!(len > buf);
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::Read { release } => match rx.read() {
                Ok(record) => {
                    let (msg, advance) = m.queue.front().cloned().unwrap();
                    prop_assert_eq!(record.len(), msg.len());
                    prop_assert_eq!(record.as_ptr() as usize % 8, 0);
                    let mut whole = vec![0; msg.len()];
                    record.copy_to_slice(&mut whole);
                    prop_assert_eq!(&whole, &msg);
                    let half = msg.len() / 2;
                    let mut tail = vec![0; msg.len() - half];
                    record.read_at(half, &mut tail);
                    prop_assert_eq!(&tail[..], &msg[half..]);
                    // SAFETY: the producer is ours and never writes
                    // published bytes.
                    prop_assert_eq!(unsafe { record.as_slice() }, &msg[..]);
                    if release {
                        let wake = record.release();
                        prop_assert_eq!(wake, tx_asleep && !tx_woken);
                        tx_woken |= wake;
                        m.queue.pop_front();
                        m.read += advance;
                    }
                }
                Err(PopError::Empty) => prop_assert!(m.queue.is_empty()),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            },
            Op::RecvMany(max) => {
                let mut got = Vec::new();
                let batch = rx
                    .recv_many(max as usize, |record| {
                        let mut out = vec![0; record.len()];
                        record.copy_to_slice(&mut out);
                        got.push(out);
                    })
                    .unwrap();
                prop_assert_eq!(batch.messages, got.len());
                prop_assert_eq!(got.len(), m.queue.len().min(max as usize));
                for out in got {
                    let (msg, advance) = m.queue.pop_front().unwrap();
                    prop_assert_eq!(out, msg);
                    m.read += advance;
                }
                // One wake-up check, only if something was released.
                let expect = batch.messages > 0 && tx_asleep && !tx_woken;
                prop_assert_eq!(batch.wake, expect);
                tx_woken |= batch.wake;
            }
            Op::TryRecvInto(buf_len) => {
                let mut out = vec![0xEE; buf_len.of(m.max)];
                match rx.try_recv_into(&mut out) {
                    Ok(Some(n)) => {
                        let (msg, advance) = m.queue.pop_front().unwrap();
                        prop_assert_eq!(&out[..n], &msg[..]);
                        m.read += advance;
                    }
                    Ok(None) => prop_assert!(m.queue.is_empty()),
                    Err(MsgPopError::BufferTooSmall { len, buf }) => {
                        prop_assert_eq!(len, m.queue[0].0.len());
                        prop_assert!(len > buf);
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::PushMany(ref lens) => {
                // What the model says: messages in order while they fit;
                // a too-large one stops the batch (an error if first).
                let mut msgs = Vec::new();
                let mut expect = 0;
                let mut stopped = false;
                let mut first_too_large = false;
                let mut w = m.write;
                for (k, l) in lens.iter().enumerate() {
                    let len = l.of(m.max);
                    m.seq += 1;
                    msgs.push(message(m.seq, len));
                    if stopped {
                        continue;
                    }
                    if len > m.max {
                        first_too_large = k == 0;
                        stopped = true;
                        continue;
                    }
                    let (_, _, need) = placement(m.capacity, w, len);
                    if need > m.capacity - (w - m.read) {
                        stopped = true;
                        continue;
                    }
                    w += need;
                    expect += 1;
                }
                match tx.push_many(&msgs) {
                    Ok(batch) => {
                        prop_assert!(!first_too_large);
                        prop_assert_eq!(batch.messages, expect);
                        let wake = expect > 0 && rx_asleep && !rx_woken;
                        prop_assert_eq!(batch.wake, wake);
                        rx_woken |= batch.wake;
                        for msg in msgs.into_iter().take(expect) {
                            let (skip, _, need) = placement(m.capacity, m.write, msg.len());
                            prop_assert!(need >= skip);
                            m.write += need;
                            m.queue.push_back((msg, need));
                        }
                    }
                    Err(MsgPushError::TooLarge { .. }) => prop_assert!(first_too_large),
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::ConsumerWaits => match rx.prepare_wait().unwrap() {
                WaitCheck::Ready => prop_assert!(!m.queue.is_empty()),
                WaitCheck::Sleep => {
                    prop_assert!(m.queue.is_empty());
                    rx_asleep = true;
                    rx_woken = false;
                }
            },
            Op::ConsumerChecks => {
                let wake = rx.needs_wake();
                prop_assert_eq!(wake, tx_asleep && !tx_woken);
                tx_woken |= wake;
            }
            Op::ProducerWaits(len) => {
                let len = len.of(m.max).min(m.max);
                match tx.prepare_wait(len).unwrap() {
                    WaitCheck::Ready => prop_assert!(m.fits(len)),
                    WaitCheck::Sleep => {
                        prop_assert!(!m.fits(len));
                        tx_asleep = true;
                        tx_woken = false;
                    }
                }
            }
            Op::ProducerChecks => {
                let wake = tx.needs_wake();
                prop_assert_eq!(wake, rx_asleep && !rx_woken);
                rx_woken |= wake;
            }
        }
        prop_assert_eq!(tx.free_bytes().unwrap() as u64, m.free());
        prop_assert_eq!(rx.pending_bytes().unwrap() as u64, m.write - m.read);
        // Whatever happened, an empty ring takes a message of the maximum.
        if m.queue.is_empty() {
            prop_assert!(m.fits(m.max));
        }
    }
    prop_assert_eq!(tx.corruption(), None);
    prop_assert_eq!(rx.corruption(), None);
    prop_assert!(buf.guards_intact());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn message_ring_matches_vecdeque_and_layout(
        cap_log in 4u32..11,
        max_frac in any::<u8>(),
        ops in prop::collection::vec(op(), 0..200),
    ) {
        run(1 << cap_log, max_frac, &ops)?;
    }

    #[test]
    fn message_ring_with_largest_messages_matches_vecdeque(
        cap_log in 4u32..8,
        ops in prop::collection::vec(op(), 0..200),
    ) {
        run(1 << cap_log, 255, &ops)?;
    }
}
