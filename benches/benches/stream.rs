//! Cross-process streaming throughput: a peer process (CPU 1) sends
//! messages with one send call each; this process (CPU 0) receives them,
//! at most one message per receive call. Side by side, per message size
//! (8 B, 64 B, 1 KiB, 4 KiB, 64 KiB, 1 MiB), in the groups
//! `stream_<size>`:
//!
//! - `sharedring-copy`: `Sender<u8>::send` / `Receiver<u8>::recv`, default
//!   options (1 MiB ring, spin then park), caller buffers at the ring
//!   slots' offset modulo 4096; `sharedring-copy-skew8`: the same with the
//!   caller buffers 8 bytes off (the glibc memcpy 4K-aliasing cliff);
//! - `sharedring-inplace`: `write_chunk` filled in place (a memset stands
//!   for the producer's work) / `read_chunk` read in place (a checksum),
//!   at most 64 KiB per chunk (`INPLACE_STEP`);
//! - `unix-socket`, `pipe`: `write_all` / `read`, blocking;
//! - `shmem-ipc`: the original crate 0.3, busy-polling its ring (its
//!   fastest mode: no eventfd write or read at all), same ring size;
//! - `unchecked-copy`: the limit of the copying rows: a plain SPSC byte
//!   ring of the same size between the same two pinned processes over a
//!   shared memfd ([`sharedring_benches::unchecked`]: atomic positions,
//!   nothing validated, no wake-ups, both sides spinning), memcpy in and
//!   out with the same buffer placement as `sharedring-copy`;
//! - `unchecked-inplace`: the limit of the in-place row: the same ring,
//!   its slots filled in place by the same memset and read in place by
//!   the same checksum, in the same steps;
//! - `memcpy`, `memcpy-skew8`: one thread copying each message into a
//!   1 MiB ring-sized buffer (single-thread memcpy: no cross-core transfer
//!   can reach it; shown for scale, no target refers to it).
//!
//! The group `ring_capacity_64KiB` streams 64 KiB messages through rings of
//! 64 KiB to 16 MiB, beside memcpy into buffers of those sizes: how the
//! default capacity was chosen.
//!
//! `stream --wakeups N SIZE` and `stream --idle SECS` are not criterion
//! runs: `cargo xtask bench` runs them under `perf stat`/`strace` to count
//! syscalls per message, and to measure an idle receiver's CPU use.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use criterion::Throughput;
use sharedring::{Options, Receiver, Sender};
use sharedring_benches::harness::{Group, Harness, Mode, Ratio};
use sharedring_benches::peer::{Peer, PeerEnv};
use sharedring_benches::unchecked::{UncheckedConsumer, UncheckedRing};
use sharedring_benches::{probe, PlacedBuf, Placement};

const SIZES: [usize; 6] = [8, 64, 1 << 10, 4 << 10, 64 << 10, 1 << 20];
const RING_BYTES: usize = sharedring::DEFAULT_RING_BYTES;
const SHMEM_IPC_SLOT_PAGE_OFFSET: usize = 64;
/// The most an in-place row (ours and the unchecked ring's alike) writes or
/// reads per chunk: the copying rows' step (64 KiB, a quarter of the
/// ring). With one chunk per 1 MiB message the two sides take turns (one
/// fills the whole ring while the other waits, then the reverse), and a
/// wait longer than the spin budget parks: measured interleaved on the
/// 2-vCPU VM, 1 MiB in place went from 0.09-0.11x the unchecked ring to
/// 0.97-0.99x when the spin budget was raised to 1 ms, so the row measured
/// the wake-up, not the ring. In steps the sides overlap, as `send`/`recv`
/// make them.
const INPLACE_STEP: usize = 64 << 10;

fn size_name(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{}MiB", b >> 20),
        b if b >= 1 << 10 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
    }
}

fn placement_arg(p: Placement) -> String {
    match p {
        Placement::Aligned => "aligned".into(),
        Placement::Skew8 => "skew8".into(),
    }
}

fn parse_placement(s: &str) -> Placement {
    match s {
        "skew8" => Placement::Skew8,
        _ => Placement::Aligned,
    }
}

// ---------------------------------------------------------------- peers

fn peer_main(env: PeerEnv) {
    match env.role.as_str() {
        probe::ROLE => probe::run_peer(env),
        "ring-copy" => peer_ring_copy(env),
        "ring-inplace" => peer_ring_inplace(env),
        "ring-idle" => peer_ring_idle(env),
        "socket" => peer_fd_writer(env, true),
        "pipe" => peer_fd_writer(env, false),
        "shmem-ipc" => peer_shmem_ipc(env),
        "unchecked-copy" => peer_unchecked(env, false),
        "unchecked-inplace" => peer_unchecked(env, true),
        other => panic!("unknown peer role {other}"),
    }
}

fn peer_ring_copy(mut env: PeerEnv) {
    let size: usize = env.arg(0);
    let placement = parse_placement(&env.args[1]);
    let sock = UnixStream::from(env.take_fd());
    let mut tx = Sender::<u8>::accept(sock).expect("accept ring");
    let msg = PlacedBuf::new(size, placement.source_offset(), 0xA5);
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            tx.send(msg.as_slice(), None).expect("send");
        }
    }
}

fn peer_ring_inplace(mut env: PeerEnv) {
    let size: usize = env.arg(0);
    let sock = UnixStream::from(env.take_fd());
    let mut tx = Sender::<u8>::accept(sock).expect("accept ring");
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            let mut left = size;
            while left > 0 {
                let mut chunk = tx.write_chunk(left.min(INPLACE_STEP)).expect("write_chunk");
                let k = chunk.len();
                if k == 0 {
                    tx.wait_writable(1, None).expect("wait_writable");
                    continue;
                }
                let (mut a, mut b) = chunk.runs();
                // Empty runs skipped, as the unchecked ring's producer
                // skips them: the same work per run on both rows.
                for run in [&mut a, &mut b].into_iter().filter(|r| !r.is_empty()) {
                    // SAFETY: the run's pointer is valid for `len()` bytes
                    // of free slots that are ours until the commit; this
                    // stands for a producer generating its data in place.
                    unsafe { std::ptr::write_bytes(run.as_mut_ptr(), 0xA5, run.len()) };
                }
                chunk.commit_all().expect("commit");
                left -= k;
            }
        }
    }
}

fn peer_ring_idle(mut env: PeerEnv) {
    let sock = UnixStream::from(env.take_fd());
    let _tx = Sender::<u8>::accept(sock).expect("accept ring");
    // Hold the ring open, sending nothing, until the parent hangs up.
    while env.next_command().is_some() {}
}

fn peer_fd_writer(mut env: PeerEnv, socket: bool) {
    let size: usize = env.arg(0);
    let fd = env.take_fd();
    let mut out: Box<dyn Write> = if socket {
        Box::new(UnixStream::from(fd))
    } else {
        Box::new(std::fs::File::from(fd))
    };
    let msg = vec![0xA5u8; size];
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            out.write_all(&msg).expect("write");
        }
    }
}

fn peer_shmem_ipc(mut env: PeerEnv) {
    let size: usize = env.arg(0);
    let capacity: usize = env.arg(1);
    let memfd = std::fs::File::from(env.take_fd());
    let empty = std::fs::File::from(env.take_fd());
    let full = std::fs::File::from(env.take_fd());
    let mut tx = shmem_ipc::sharedring::Sender::<u8>::open(capacity, memfd, empty, full)
        .expect("shmem-ipc open");
    let msg = PlacedBuf::new(size, SHMEM_IPC_SLOT_PAGE_OFFSET, 0xA5);
    let src = msg.as_slice().as_ptr();
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            let mut off = 0;
            while off < size {
                let mut k = 0;
                tx.sender_mut()
                    .send(|p, room| {
                        k = room.min(size - off);
                        // SAFETY: shmem-ipc hands us `room` writable slots
                        // at `p`; we write `k <= room` bytes from our
                        // private message.
                        unsafe { std::ptr::copy_nonoverlapping(src.add(off), p, k) };
                        k
                    })
                    .expect("shmem-ipc send");
                off += k;
                if k == 0 {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

/// The unchecked ring's producer: copies its message in (from a buffer
/// placed like `peer_ring_copy`'s), or fills the slots in place with the
/// same memset as `peer_ring_inplace`.
fn peer_unchecked(mut env: PeerEnv, inplace: bool) {
    let size: usize = env.arg(0);
    let placement = parse_placement(&env.args[1]);
    let cap: usize = env.arg(2);
    let ring = UncheckedRing::map(env.take_fd(), cap).expect("map unchecked ring");
    let mut tx = ring.producer();
    let msg = PlacedBuf::new(size, placement.source_offset(), 0xA5);
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            if inplace {
                let mut left = size;
                while left > 0 {
                    left -= tx.write_runs(left.min(INPLACE_STEP), |run| {
                        // SAFETY: the run is valid for `len()` bytes of free
                        // slots that are ours until published (a memset,
                        // exactly as `peer_ring_inplace` does).
                        unsafe { std::ptr::write_bytes(run.as_mut_ptr(), 0xA5, run.len()) }
                    });
                }
            } else {
                tx.send(msg.as_slice());
            }
        }
    }
}

// ---------------------------------------------------------------- parent

/// The receiving side of one row, with its peer.
trait Receive {
    /// Receives `n` messages of the row's size.
    fn receive(&mut self, n: u64);
}

struct Row<R> {
    peer: Peer,
    rx: R,
}

impl<R: Receive> Row<R> {
    /// Times `n` messages from the command to the last byte received.
    fn run(&mut self, n: u64) -> Duration {
        let start = Instant::now();
        self.peer.command(n);
        self.rx.receive(n);
        start.elapsed()
    }

    fn finish(self) {
        drop(self.rx);
        self.peer.finish();
    }
}

struct RingCopy {
    rx: Receiver<u8>,
    buf: PlacedBuf,
    size: usize,
}

impl Receive for RingCopy {
    fn receive(&mut self, n: u64) {
        let total = n * self.size as u64;
        let mut got = 0u64;
        let buf = self.buf.as_mut_slice();
        while got < total {
            let want = (total - got).min(self.size as u64) as usize;
            got += self.rx.recv(&mut buf[..want], None).expect("recv") as u64;
        }
        black_box(&buf[..8]);
    }
}

struct RingInPlace {
    rx: Receiver<u8>,
    size: usize,
}

/// Reads `len` bytes at `p` in place: a checksum of 8-byte volatile loads.
///
/// # Safety
///
/// `p` is valid for reads of `len` bytes.
unsafe fn checksum(p: *const u8, len: usize) -> u64 {
    let mut sum = 0u64;
    let mut i = 0;
    while i < len && (p as usize + i) % 8 != 0 {
        // SAFETY: `i < len`.
        sum = sum.wrapping_add(u64::from(unsafe { std::ptr::read_volatile(p.add(i)) }));
        i += 1;
    }
    while i + 8 <= len {
        // SAFETY: aligned and inside the range.
        sum ^= unsafe { std::ptr::read_volatile(p.add(i).cast::<u64>()) };
        i += 8;
    }
    while i < len {
        // SAFETY: `i < len`.
        sum = sum.wrapping_add(u64::from(unsafe { std::ptr::read_volatile(p.add(i)) }));
        i += 1;
    }
    sum
}

impl Receive for RingInPlace {
    fn receive(&mut self, n: u64) {
        let total = n * self.size as u64;
        let mut got = 0u64;
        let mut sum = 0u64;
        while got < total {
            let want = (total - got).min(self.size.min(INPLACE_STEP) as u64) as usize;
            let chunk = self.rx.read_chunk(want).expect("read_chunk");
            let k = chunk.len();
            if k == 0 {
                self.rx.wait_readable(None).expect("wait_readable");
                continue;
            }
            let (a, b) = chunk.runs();
            // Empty runs skipped, as the unchecked ring's consumer skips
            // them.
            for run in [a, b].into_iter().filter(|r| !r.is_empty()) {
                // SAFETY: each run's pointer is valid for `len()` filled
                // slots until the chunk is released.
                sum ^= unsafe { checksum(run.as_ptr(), run.len()) };
            }
            chunk.release_all().expect("release");
            got += k as u64;
        }
        black_box(sum);
    }
}

struct UncheckedCopy {
    rx: UncheckedConsumer,
    buf: PlacedBuf,
    size: usize,
}

impl Receive for UncheckedCopy {
    fn receive(&mut self, n: u64) {
        let total = n * self.size as u64;
        let mut got = 0u64;
        let buf = self.buf.as_mut_slice();
        while got < total {
            let want = (total - got).min(self.size as u64) as usize;
            got += self.rx.recv(&mut buf[..want]) as u64;
        }
        black_box(&buf[..8.min(self.size)]);
    }
}

struct UncheckedInPlace {
    rx: UncheckedConsumer,
    size: usize,
}

impl Receive for UncheckedInPlace {
    fn receive(&mut self, n: u64) {
        let total = n * self.size as u64;
        let mut got = 0u64;
        let mut sum = 0u64;
        while got < total {
            let want = (total - got).min(self.size.min(INPLACE_STEP) as u64) as usize;
            got += self.rx.read_runs(want, |run| {
                // SAFETY: the run is valid for `len()` filled bytes until
                // released (the same checksum as `RingInPlace`).
                sum ^= unsafe { checksum(run.as_ptr(), run.len()) };
            }) as u64;
        }
        black_box(sum);
    }
}

struct FdReader<R> {
    input: R,
    buf: Vec<u8>,
    size: usize,
}

impl<R: Read> Receive for FdReader<R> {
    fn receive(&mut self, n: u64) {
        let total = n * self.size as u64;
        let mut got = 0u64;
        while got < total {
            let want = (total - got).min(self.size as u64) as usize;
            let k = self.input.read(&mut self.buf[..want]).expect("read");
            assert!(k > 0, "peer closed early");
            got += k as u64;
        }
        black_box(&self.buf[..8]);
    }
}

struct ShmemIpc {
    rx: shmem_ipc::sharedring::Receiver<u8>,
    buf: PlacedBuf,
    size: usize,
}

impl Receive for ShmemIpc {
    fn receive(&mut self, n: u64) {
        let total = n * self.size as u64;
        let mut got = 0u64;
        let dst = self.buf.as_mut_slice().as_mut_ptr();
        while got < total {
            let want = (total - got).min(self.size as u64) as usize;
            let mut k = 0;
            self.rx
                .receiver_mut()
                .recv(|p, avail| {
                    k = avail.min(want);
                    // SAFETY: shmem-ipc hands us `avail` readable slots at
                    // `p`; we copy `k <= avail <= size` bytes into our
                    // buffer of `size` bytes.
                    unsafe { std::ptr::copy_nonoverlapping(p, dst, k) };
                    k
                })
                .expect("shmem-ipc recv");
            if k == 0 {
                std::hint::spin_loop();
            }
            got += k as u64;
        }
        black_box(self.buf.as_slice()[0]);
    }
}

fn ring_row(size: usize, ring_bytes: usize, placement: Placement) -> Row<RingCopy> {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let peer = Peer::spawn(
        "ring-copy",
        vec![theirs.into()],
        &[size.to_string(), placement_arg(placement)],
    )
    .expect("spawn peer");
    let rx = Receiver::<u8>::create(ours, ring_bytes).expect("create ring");
    Row {
        peer,
        rx: RingCopy {
            rx,
            buf: PlacedBuf::new(size, placement.dest_offset(), 0),
            size,
        },
    }
}

fn inplace_row(size: usize) -> Row<RingInPlace> {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let peer =
        Peer::spawn("ring-inplace", vec![theirs.into()], &[size.to_string()]).expect("spawn peer");
    let rx = Receiver::<u8>::create(ours, RING_BYTES).expect("create ring");
    Row {
        peer,
        rx: RingInPlace { rx, size },
    }
}

/// An unchecked ring of `RING_BYTES` and its producer peer.
fn unchecked_ring(size: usize, inplace: bool) -> (Peer, UncheckedConsumer) {
    let ring = UncheckedRing::new(RING_BYTES).expect("unchecked ring");
    let fd = rustix::io::dup(&ring).expect("dup");
    let role = if inplace {
        "unchecked-inplace"
    } else {
        "unchecked-copy"
    };
    let peer = Peer::spawn(
        role,
        vec![fd],
        &[
            size.to_string(),
            placement_arg(Placement::Aligned),
            RING_BYTES.to_string(),
        ],
    )
    .expect("spawn peer");
    (peer, ring.consumer())
}

fn unchecked_copy_row(size: usize) -> Row<UncheckedCopy> {
    let (peer, rx) = unchecked_ring(size, false);
    Row {
        peer,
        rx: UncheckedCopy {
            rx,
            buf: PlacedBuf::new(size, Placement::Aligned.dest_offset(), 0),
            size,
        },
    }
}

fn unchecked_inplace_row(size: usize) -> Row<UncheckedInPlace> {
    let (peer, rx) = unchecked_ring(size, true);
    Row {
        peer,
        rx: UncheckedInPlace { rx, size },
    }
}

fn socket_row(size: usize) -> Row<FdReader<UnixStream>> {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let peer = Peer::spawn("socket", vec![theirs.into()], &[size.to_string()]).expect("spawn");
    Row {
        peer,
        rx: FdReader {
            input: ours,
            buf: vec![0; size],
            size,
        },
    }
}

fn pipe_row(size: usize) -> Row<FdReader<std::fs::File>> {
    let (r, w) = rustix::pipe::pipe().expect("pipe");
    let peer = Peer::spawn("pipe", vec![w], &[size.to_string()]).expect("spawn");
    Row {
        peer,
        rx: FdReader {
            input: std::fs::File::from(r),
            buf: vec![0; size],
            size,
        },
    }
}

fn shmem_ipc_row(size: usize) -> Row<ShmemIpc> {
    let rx = shmem_ipc::sharedring::Receiver::<u8>::new(RING_BYTES).expect("shmem-ipc ring");
    let fds: Vec<OwnedFd> = vec![
        rx.memfd().as_file().try_clone().expect("dup").into(),
        rx.empty_signal().try_clone().expect("dup").into(),
        rx.full_signal().try_clone().expect("dup").into(),
    ];
    let peer = Peer::spawn(
        "shmem-ipc",
        fds,
        &[size.to_string(), RING_BYTES.to_string()],
    )
    .expect("spawn");
    Row {
        peer,
        rx: ShmemIpc {
            rx,
            buf: PlacedBuf::new(size, SHMEM_IPC_SLOT_PAGE_OFFSET, 0),
            size,
        },
    }
}

/// One thread copying `size`-byte messages into a `ring_bytes` buffer.
struct Memcpy {
    ring: PlacedBuf,
    msg: PlacedBuf,
    pos: usize,
}

impl Memcpy {
    fn new(size: usize, ring_bytes: usize, placement: Placement) -> Self {
        Self {
            ring: PlacedBuf::new(
                ring_bytes.max(size),
                sharedring_benches::RING_SLOT_PAGE_OFFSET,
                0,
            ),
            msg: PlacedBuf::new(size, placement.source_offset(), 0xA5),
            pos: 0,
        }
    }

    fn run(&mut self, n: u64) -> Duration {
        let size = self.msg.as_slice().len();
        let ring = self.ring.as_mut_slice();
        let start = Instant::now();
        for _ in 0..n {
            if self.pos + size > ring.len() {
                self.pos = 0;
            }
            ring[self.pos..self.pos + size].copy_from_slice(black_box(self.msg.as_slice()));
            self.pos += size;
        }
        black_box(&ring[..8]);
        start.elapsed()
    }
}

macro_rules! cross_process_row {
    ($g:expr, $id:expr, $make:expr) => {{
        let mut row = $make;
        $g.row($id, |b| b.iter_custom(|n| row.run(n)));
        row.finish();
    }};
}

/// The target ratios of one message size, measured again interleaved
/// ([`Group::paired`]): every row they need set up and alive side by side,
/// batches of subject and reference alternating.
fn paired_rows(g: &mut Group<'_>, size: usize) {
    let mut copy = ring_row(size, RING_BYTES, Placement::Aligned);
    let mut inplace = inplace_row(size);
    let mut unchecked_copy = unchecked_copy_row(size);
    let mut unchecked_inplace = unchecked_inplace_row(size);
    let mut shmem = shmem_ipc_row(size);
    g.paired(
        "sharedring-copy",
        "unchecked-copy",
        Ratio::Throughput,
        &[copy.peer.pid(), unchecked_copy.peer.pid()],
        |n| copy.run(n),
        |n| unchecked_copy.run(n),
    );
    g.paired(
        "sharedring-inplace",
        "unchecked-inplace",
        Ratio::Throughput,
        &[inplace.peer.pid(), unchecked_inplace.peer.pid()],
        |n| inplace.run(n),
        |n| unchecked_inplace.run(n),
    );
    g.paired(
        "sharedring-copy",
        "shmem-ipc",
        Ratio::Throughput,
        &[copy.peer.pid(), shmem.peer.pid()],
        |n| copy.run(n),
        |n| shmem.run(n),
    );
    copy.finish();
    inplace.finish();
    unchecked_copy.finish();
    unchecked_inplace.finish();
    shmem.finish();
}

fn criterion_main() {
    let mut h = Harness::new("stream");
    let mode = h.mode();
    for size in SIZES {
        let mut g = h.group(&format!("stream_{}", size_name(size)));
        g.throughput(Throughput::Bytes(size as u64));
        cross_process_row!(
            g,
            "sharedring-copy",
            ring_row(size, RING_BYTES, Placement::Aligned)
        );
        cross_process_row!(
            g,
            "sharedring-copy-skew8",
            ring_row(size, RING_BYTES, Placement::Skew8)
        );
        cross_process_row!(g, "sharedring-inplace", inplace_row(size));
        cross_process_row!(g, "unchecked-copy", unchecked_copy_row(size));
        cross_process_row!(g, "unchecked-inplace", unchecked_inplace_row(size));
        cross_process_row!(g, "shmem-ipc", shmem_ipc_row(size));
        cross_process_row!(g, "unix-socket", socket_row(size));
        cross_process_row!(g, "pipe", pipe_row(size));
        for _ in 0..mode.setups() {
            paired_rows(&mut g, size);
        }
        for p in [Placement::Aligned, Placement::Skew8] {
            let mut m = Memcpy::new(size, RING_BYTES, p);
            g.row(&format!("memcpy{}", p.suffix()), |b| {
                b.iter_custom(|n| m.run(n))
            });
        }
        g.finish();
    }

    let size = 64 << 10;
    let mut g = h.group("ring_capacity_64KiB");
    g.throughput(Throughput::Bytes(size as u64));
    let capacities: &[usize] = match mode {
        Mode::Quick => &[256 << 10, 1 << 20, 4 << 20, 16 << 20],
        Mode::Full => &[64 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20, 16 << 20],
    };
    for &cap in capacities {
        cross_process_row!(
            g,
            &format!("sharedring-{}", size_name(cap)),
            ring_row(size, cap, Placement::Aligned)
        );
        let mut m = Memcpy::new(size, cap, Placement::Aligned);
        g.row(&format!("memcpy-{}", size_name(cap)), |b| {
            b.iter_custom(|n| m.run(n))
        });
    }
    g.finish();
    h.finish();
}

// ------------------------------------------------------ counting modes

/// Streams `n` messages of `size` bytes through a default ring; prints one
/// JSON line. Run under a syscall counter by `cargo xtask bench`.
fn wakeups(n: u64, size: usize) {
    sharedring_benches::pin_to_cpu(0);
    let mut row = ring_row(size, RING_BYTES, Placement::Aligned);
    let t = row.run(n);
    let ctx = voluntary_switches();
    row.finish();
    println!(
        "{}",
        serde_json::json!({
            "messages": n,
            "size": size,
            "seconds": t.as_secs_f64(),
            "receiver_voluntary_switches": ctx,
        })
    );
}

fn voluntary_switches() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A receiver blocked in `recv` on a ring that stays empty for `secs`:
/// prints its CPU time over the wall time as one JSON line.
fn idle(secs: f64) {
    sharedring_benches::pin_to_cpu(0);
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let peer = Peer::spawn("ring-idle", vec![theirs.into()], &[]).expect("spawn peer");
    let mut rx = Receiver::<u8>::create_with(ours, &Options::new()).expect("create ring");
    let mut buf = [0u8; 64];
    let cpu = || rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let (c0, t0) = (cpu(), Instant::now());
    let r = rx.recv(&mut buf, Some(Duration::from_secs_f64(secs)));
    let (c1, wall) = (cpu(), t0.elapsed());
    assert!(
        matches!(r, Err(sharedring::Error::TimedOut { .. })),
        "{r:?}"
    );
    let cpu_ns = (c1.tv_sec - c0.tv_sec) as f64 * 1e9 + (c1.tv_nsec - c0.tv_nsec) as f64;
    drop(rx);
    peer.finish();
    println!(
        "{}",
        serde_json::json!({
            "idle_seconds": wall.as_secs_f64(),
            "cpu_seconds": cpu_ns / 1e9,
            "cpu_percent": 100.0 * cpu_ns / 1e9 / wall.as_secs_f64(),
            "spin_budget_us": sharedring::DEFAULT_SPIN.as_secs_f64() * 1e6,
        })
    );
}

fn main() {
    if let Some(env) = PeerEnv::from_env() {
        return peer_main(env);
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--wakeups") {
        let n = args[i + 1].parse().expect("message count");
        let size = args[i + 2].parse().expect("message size");
        return wakeups(n, size);
    }
    if let Some(i) = args.iter().position(|a| a == "--idle") {
        return idle(args[i + 1].parse().expect("seconds"));
    }
    criterion_main();
}
