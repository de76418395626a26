//! Message rings across processes (issue "message rings"): this process
//! (CPU 0) sends, the peer (CPU 1) receives; one send call per message.
//!
//! - `msg_stream_<size>`: messages of 64 B, 1 KiB and 64 KiB through
//!   `sharedring-msg` (a message ring, `send`/`recv`), `seqpacket` (a Unix
//!   `SOCK_SEQPACKET` socket pair) and `sharedring-elements` (the
//!   fixed-element ring of `u8` moving the same bytes per call).
//! - `msg_rtt_64B`: a 64-byte request and its 64-byte answer over a
//!   `Duplex` pair of message rings, against a Unix stream socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use criterion::Throughput;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use sharedring::{Duplex, MsgReceiver, MsgSender, Options, Receiver, Sender};
use sharedring_benches::harness::{Group, Harness};
use sharedring_benches::peer::{Peer, PeerEnv};
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
        "msg" => peer_msg(env),
        "seqpacket" => peer_seqpacket(env),
        "elements" => peer_elements(env),
        "duplex" => peer_duplex(env),
        "socket-echo" => peer_socket_echo(env),
        other => panic!("unknown peer role {other}"),
    }
}

/// Receives `n` messages per command, then answers.
fn peer_msg(mut env: PeerEnv) {
    let mut rx = MsgReceiver::accept(UnixStream::from(env.take_fd())).unwrap();
    let mut buf = Vec::new();
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            rx.recv(&mut buf, None).unwrap();
        }
        env.answer(n);
    }
}

fn peer_seqpacket(mut env: PeerEnv) {
    let sock = env.take_fd();
    let mut buf = vec![0u8; 65536];
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            rustix::net::recv(&sock, &mut buf, RecvFlags::empty()).unwrap();
        }
        env.answer(n);
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

fn msg_row(g: &mut Group<'_>, size: usize) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut peer = Peer::spawn("msg", vec![theirs.into()], &[]).unwrap();
    let mut tx = MsgSender::create_with(ours, &opts()).unwrap();
    let msg = vec![0x5au8; size];
    g.row("sharedring-msg", |b| {
        b.iter_custom(|n| streamed(&mut peer, n, || tx.send(&msg, None).unwrap()))
    });
    drop(tx);
    peer.finish();
}

fn seqpacket_row(g: &mut Group<'_>, size: usize) {
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    // Room for several of the largest messages in flight.
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(&ours, RING_BYTES);
    let mut peer = Peer::spawn("seqpacket", vec![theirs], &[]).unwrap();
    let msg = vec![0x5au8; size];
    g.row("seqpacket", |b| {
        b.iter_custom(|n| {
            streamed(&mut peer, n, || {
                rustix::net::send(&ours, &msg, SendFlags::empty()).unwrap();
            })
        })
    });
    drop(ours);
    peer.finish();
}

fn elements_row(g: &mut Group<'_>, size: usize) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut peer = Peer::spawn("elements", vec![theirs.into()], &[size.to_string()]).unwrap();
    let mut tx = Sender::<u8>::create_with(ours, &opts()).unwrap();
    let msg = vec![0x5au8; size];
    g.row("sharedring-elements", |b| {
        b.iter_custom(|n| streamed(&mut peer, n, || tx.send(&msg, None).unwrap()))
    });
    drop(tx);
    peer.finish();
}

fn duplex_row(g: &mut Group<'_>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut peer = Peer::spawn("duplex", vec![theirs.into()], &[]).unwrap();
    let mut d = Duplex::create_with(ours, &opts()).unwrap();
    let req = [7u8; RTT_BYTES];
    let mut resp = Vec::new();
    g.row("sharedring-duplex", |b| {
        b.iter_custom(|n| {
            peer.command(n);
            let start = Instant::now();
            for _ in 0..n {
                d.request(&req, &mut resp, None).unwrap();
            }
            start.elapsed()
        })
    });
    drop(d);
    peer.finish();
}

fn socket_rtt_row(g: &mut Group<'_>) {
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut peer = Peer::spawn("socket-echo", vec![theirs.into()], &[]).unwrap();
    let req = [7u8; RTT_BYTES];
    let mut resp = [0u8; RTT_BYTES];
    g.row("unix-socket", |b| {
        b.iter_custom(|n| {
            peer.command(n);
            let start = Instant::now();
            for _ in 0..n {
                ours.write_all(&req).unwrap();
                ours.read_exact(&mut resp).unwrap();
            }
            start.elapsed()
        })
    });
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
        msg_row(&mut g, size);
        seqpacket_row(&mut g, size);
        elements_row(&mut g, size);
        g.finish();
    }
    let mut g = h.group(&format!("msg_rtt_{RTT_BYTES}B"));
    duplex_row(&mut g);
    socket_rtt_row(&mut g);
    g.finish();
    h.finish();
}
