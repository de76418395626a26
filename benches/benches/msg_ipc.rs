//! Message rings across processes (issue "message rings"): this process
//! (CPU 0) sends, the peer (CPU 1) receives; one send call per message.
//!
//! - `msg_stream_<size>`: messages of 64 B, 1 KiB and 64 KiB through
//!   `sharedring-msg` (a message ring, `send`/`recv`), `seqpacket` (a Unix
//!   `SOCK_SEQPACKET` socket pair) and `sharedring-elements` (the
//!   fixed-element ring of `u8` moving the same bytes per call), and
//!   `shmem-ipc` (the original crate 0.3, a byte ring of the same size,
//!   busy-polled: its fastest mode). The target ratios (`sharedring-msg`
//!   against `sharedring-elements`, and against `shmem-ipc` at 64 B) are
//!   then measured again interleaved (`Group::paired`).
//! - `msg_rtt_64B`: a 64-byte request and its 64-byte answer over a
//!   `Duplex` pair of message rings, against a Unix stream socket; both
//!   rows also timed round trip by round trip for their percentiles.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use criterion::Throughput;
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};
use sharedring::{Duplex, MsgSender, Options, Receiver, Sender};
use sharedring_benches::harness::{Group, Harness, Mode, Ratio};
use sharedring_benches::peer::{self, Peer, PeerEnv};
use sharedring_benches::probe;

const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (65536, "64KiB")];
const RING_BYTES: usize = 1 << 20;
const RTT_BYTES: usize = 64;

fn opts() -> Options {
    Options::new().capacity_bytes(RING_BYTES)
}

// ---------------------------------------------------------------- peers

fn peer_main(env: PeerEnv) {
    match env.role.as_str() {
        probe::ROLE => probe::run_peer(env),
        "msg" => peer::receive_messages(env),
        "seqpacket" => peer::receive_datagrams(env, 65536),
        "elements" => peer_elements(env),
        "duplex" => peer_duplex(env),
        "socket-echo" => peer_socket_echo(env),
        "shmem-ipc" => peer_shmem_ipc(env),
        other => panic!("unknown peer role {other}"),
    }
}

/// Receives `n * size` bytes per command.
fn peer_elements(mut env: PeerEnv) {
    let size: usize = env.arg(0);
    let mut rx = Receiver::<u8>::accept(UnixStream::from(env.take_fd())).unwrap();
    let mut buf = vec![0u8; size];
    while let Some(n) = env.next_command() {
        let mut left = n * size as u64;
        while left > 0 {
            let want = left.min(size as u64) as usize;
            left -= rx.recv(&mut buf[..want], None).unwrap() as u64;
        }
        env.answer(n);
    }
}

/// Receives `n * size` bytes per command from shmem-ipc's ring,
/// busy-polling it.
fn peer_shmem_ipc(mut env: PeerEnv) {
    let size: usize = env.arg(0);
    let memfd = std::fs::File::from(env.take_fd());
    let empty = std::fs::File::from(env.take_fd());
    let full = std::fs::File::from(env.take_fd());
    let mut rx = shmem_ipc::sharedring::Receiver::<u8>::open(RING_BYTES, memfd, empty, full)
        .expect("shmem-ipc open");
    let mut buf = vec![0u8; size];
    let dst = buf.as_mut_ptr();
    while let Some(n) = env.next_command() {
        let mut left = n * size as u64;
        while left > 0 {
            let want = left.min(size as u64) as usize;
            let mut k = 0;
            rx.receiver_mut()
                .recv(|p, avail| {
                    k = avail.min(want);
                    // SAFETY: shmem-ipc hands us `avail` readable slots at
                    // `p`; we copy `k <= want <= size` bytes into our
                    // buffer of `size` bytes.
                    unsafe { std::ptr::copy_nonoverlapping(p, dst, k) };
                    k
                })
                .expect("shmem-ipc recv");
            if k == 0 {
                std::hint::spin_loop();
            }
            left -= k as u64;
        }
        std::hint::black_box(&buf);
        env.answer(n);
    }
}

fn peer_duplex(mut env: PeerEnv) {
    let mut d = Duplex::accept(UnixStream::from(env.take_fd())).unwrap();
    let mut req = Vec::new();
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            d.rx.recv(&mut req, None).unwrap();
            d.tx.send(&req, None).unwrap();
        }
    }
}

fn peer_socket_echo(mut env: PeerEnv) {
    let mut s = UnixStream::from(env.take_fd());
    let mut b = [0u8; RTT_BYTES];
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
        }
    }
}

// ---------------------------------------------------------------- parent

/// Sends `n` messages with `send`, and waits until the peer has them all.
fn streamed(peer: &mut Peer, n: u64, mut send: impl FnMut()) -> Duration {
    peer.command(n);
    let start = Instant::now();
    for _ in 0..n {
        send();
    }
    assert_eq!(peer.answer(), n);
    start.elapsed()
}

/// One streaming row, set up: its peer and one send.
struct StreamRow {
    id: &'static str,
    peer: Peer,
    send: Box<dyn FnMut()>,
}

impl StreamRow {
    fn new(id: &'static str, peer: Peer, send: impl FnMut() + 'static) -> Self {
        Self {
            id,
            peer,
            send: Box::new(send),
        }
    }

    /// Times a batch of `n` messages, until the peer has them all.
    fn batch(&mut self, n: u64) -> Duration {
        streamed(&mut self.peer, n, &mut self.send)
    }

    /// Criterion's estimate of the row; then the row is closed.
    fn measure(mut self, g: &mut Group<'_>) {
        let id = self.id;
        g.row(id, |b| b.iter_custom(|n| self.batch(n)));
        self.finish();
    }

    fn finish(self) {
        drop(self.send);
        self.peer.finish();
    }
}

/// Measures `subject`'s throughput as a multiple of `reference`'s,
/// interleaved ([`Group::paired`]).
fn paired(g: &mut Group<'_>, subject: &mut StreamRow, reference: &mut StreamRow) {
    let pids = [subject.peer.pid(), reference.peer.pid()];
    g.paired(
        subject.id,
        reference.id,
        Ratio::Throughput,
        &pids,
        |n| subject.batch(n),
        |n| reference.batch(n),
    );
}

fn msg_row(size: usize) -> StreamRow {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let peer = Peer::spawn("msg", vec![theirs.into()], &[]).unwrap();
    let mut tx = MsgSender::create_with(ours, &opts()).unwrap();
    let msg = vec![0x5au8; size];
    StreamRow::new("sharedring-msg", peer, move || tx.send(&msg, None).unwrap())
}

fn seqpacket_row(size: usize) -> StreamRow {
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    // Room for several of the largest messages in flight.
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(&ours, RING_BYTES);
    let peer = Peer::spawn("seqpacket", vec![theirs], &[]).unwrap();
    let msg = vec![0x5au8; size];
    StreamRow::new("seqpacket", peer, move || {
        rustix::net::send(&ours, &msg, SendFlags::empty()).unwrap();
    })
}

fn elements_row(size: usize) -> StreamRow {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let peer = Peer::spawn("elements", vec![theirs.into()], &[size.to_string()]).unwrap();
    // The same ring size, in elements of one byte (an element ring refuses
    // `capacity_bytes`).
    let mut tx =
        Sender::<u8>::create_with(ours, &Options::new().capacity_elements(RING_BYTES)).unwrap();
    let msg = vec![0x5au8; size];
    StreamRow::new("sharedring-elements", peer, move || {
        tx.send(&msg, None).unwrap()
    })
}

fn shmem_ipc_row(size: usize) -> StreamRow {
    let mut tx = shmem_ipc::sharedring::Sender::<u8>::new(RING_BYTES).expect("shmem-ipc ring");
    let fds: Vec<OwnedFd> = vec![
        tx.memfd().as_file().try_clone().expect("dup").into(),
        tx.empty_signal().try_clone().expect("dup").into(),
        tx.full_signal().try_clone().expect("dup").into(),
    ];
    let peer = Peer::spawn("shmem-ipc", fds, &[size.to_string()]).unwrap();
    let msg = vec![0x5au8; size];
    StreamRow::new("shmem-ipc", peer, move || {
        let src = msg.as_ptr();
        let mut off = 0;
        while off < size {
            let mut k = 0;
            tx.sender_mut()
                .send(|p, room| {
                    k = room.min(size - off);
                    // SAFETY: shmem-ipc hands us `room` writable slots at
                    // `p`; we write `k <= room` bytes from our message of
                    // `size` bytes.
                    unsafe { std::ptr::copy_nonoverlapping(src.add(off), p, k) };
                    k
                })
                .expect("shmem-ipc send");
            off += k;
            if k == 0 {
                std::hint::spin_loop();
            }
        }
    })
}

/// How many round trips the percentile pass of a row times.
fn samples(g: &Group<'_>, fast: bool) -> u64 {
    match (g.mode(), fast) {
        (Mode::Quick, true) => 200_000,
        (Mode::Quick, false) => 20_000,
        (Mode::Full, true) => 1_000_000,
        (Mode::Full, false) => 100_000,
    }
}

fn duplex_row(g: &mut Group<'_>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut peer = Peer::spawn("duplex", vec![theirs.into()], &[]).unwrap();
    let mut d = Duplex::create_with(ours, &opts()).unwrap();
    let req = [7u8; RTT_BYTES];
    let mut resp = Vec::new();
    let mut rt = |_| {
        d.request(&req, &mut resp, None).unwrap();
    };
    g.row("sharedring-duplex", |b| {
        b.iter_custom(|n| {
            peer.command(n);
            let start = Instant::now();
            for i in 0..n {
                rt(i);
            }
            start.elapsed()
        })
    });
    let n = samples(g, true);
    g.percentiles("sharedring-duplex", n, |n| peer.command(n), &mut rt);
    drop(d);
    peer.finish();
}

fn socket_rtt_row(g: &mut Group<'_>) {
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut peer = Peer::spawn("socket-echo", vec![theirs.into()], &[]).unwrap();
    let req = [7u8; RTT_BYTES];
    let mut resp = [0u8; RTT_BYTES];
    let mut rt = |_| {
        ours.write_all(&req).unwrap();
        ours.read_exact(&mut resp).unwrap();
    };
    g.row("unix-socket", |b| {
        b.iter_custom(|n| {
            peer.command(n);
            let start = Instant::now();
            for i in 0..n {
                rt(i);
            }
            start.elapsed()
        })
    });
    let n = samples(g, false);
    g.percentiles("unix-socket", n, |n| peer.command(n), &mut rt);
    peer.finish();
}

fn main() {
    if let Some(env) = PeerEnv::from_env() {
        return peer_main(env);
    }
    let mut h = Harness::new("msg_ipc");
    for (size, label) in SIZES {
        let mut g = h.group(&format!("msg_stream_{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        msg_row(size).measure(&mut g);
        seqpacket_row(size).measure(&mut g);
        elements_row(size).measure(&mut g);
        shmem_ipc_row(size).measure(&mut g);
        // The target ratios again, interleaved, on fresh set-ups.
        for _ in 0..g.mode().setups() {
            let mut msg = msg_row(size);
            let mut elements = elements_row(size);
            paired(&mut g, &mut msg, &mut elements);
            if size == 64 {
                let mut shmem = shmem_ipc_row(size);
                paired(&mut g, &mut msg, &mut shmem);
                shmem.finish();
            }
            msg.finish();
            elements.finish();
        }
        g.finish();
    }
    let mut g = h.group(&format!("msg_rtt_{RTT_BYTES}B"));
    duplex_row(&mut g);
    socket_rtt_row(&mut g);
    g.finish();
    h.finish();
}
