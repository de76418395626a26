//! The C API (crates/sharedring-c) against the Rust API it wraps, across
//! processes: this process (CPU 0) sends, the peer (CPU 1) receives, one
//! call per message, through the same `extern "C"` functions a C program
//! calls (the library's rlib; the C ABI costs a plain call).
//!
//! - `c_api_<size>`: messages of 64 B and 64 KiB over a 1 MiB message
//!   ring; `rust-api` sends with `MsgSender::send` to a peer receiving
//!   with `MsgReceiver::recv_into`, `c-api` sends with
//!   `sharedring_msg_sender_send` to a peer receiving with
//!   `sharedring_msg_receiver_recv`. Target: `c-api` at least 0.9x
//!   `rust-api` (`cargo xtask bench`), measured interleaved
//!   ([`Group::paired`](sharedring_benches::harness::Group::paired)): both
//!   rows alive side by side, batches alternating.

use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::ptr::{null_mut, NonNull};
use std::time::{Duration, Instant};

use criterion::Throughput;
use sharedring::{MsgReceiver, MsgSender, Options};
use sharedring_benches::harness::{Harness, Ratio};
use sharedring_benches::peer::{Peer, PeerEnv};
use sharedring_benches::probe;
use sharedring_c::{
    sharedring_msg_receiver, sharedring_msg_receiver_accept, sharedring_msg_receiver_free,
    sharedring_msg_receiver_recv, sharedring_msg_sender, sharedring_msg_sender_create,
    sharedring_msg_sender_free, sharedring_msg_sender_send, sharedring_options, SHAREDRING_OK,
};

const SIZES: [(usize, &str); 2] = [(64, "64B"), (65536, "64KiB")];
const RING_BYTES: u64 = 1 << 20;

fn peer_main(env: PeerEnv) {
    match env.role.as_str() {
        probe::ROLE => probe::run_peer(env),
        "rust" => peer_rust(env),
        "c" => peer_c(env),
        other => panic!("unknown peer role {other}"),
    }
}

/// Receives `n` messages per command with the Rust API, then answers.
fn peer_rust(mut env: PeerEnv) {
    let mut rx = MsgReceiver::accept(UnixStream::from(env.take_fd())).unwrap();
    let mut buf = vec![0u8; 65536];
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            rx.recv_into(&mut buf, None).unwrap();
        }
        env.answer(n);
    }
}

/// The C receiver, freed on drop.
struct CReceiver(NonNull<sharedring_msg_receiver>);

impl Drop for CReceiver {
    fn drop(&mut self) {
        // SAFETY: a live handle from `sharedring_msg_receiver_accept`,
        // freed once.
        unsafe { sharedring_msg_receiver_free(self.0.as_ptr()) }
    }
}

/// Receives `n` messages per command with the C API, then answers.
fn peer_c(mut env: PeerEnv) {
    let mut rx = null_mut();
    // SAFETY: the descriptor is handed over; `rx` is writable.
    let rc = unsafe {
        sharedring_msg_receiver_accept(env.take_fd().into_raw_fd(), std::ptr::null(), &mut rx)
    };
    assert_eq!(rc, SHAREDRING_OK);
    let rx = CReceiver(NonNull::new(rx).expect("a handle"));
    let mut buf = vec![0u8; 65536];
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            let mut len = 0usize;
            // SAFETY: a live handle, a buffer of `buf.len()` bytes.
            let rc = unsafe {
                sharedring_msg_receiver_recv(
                    rx.0.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    -1,
                    &mut len,
                )
            };
            assert_eq!(rc, SHAREDRING_OK);
        }
        env.answer(n);
    }
}

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

/// The Rust API's row: a `MsgSender` and its peer receiving with
/// `MsgReceiver::recv_into`.
struct RustRow {
    peer: Peer,
    tx: MsgSender,
    msg: Vec<u8>,
}

impl RustRow {
    fn new(size: usize) -> Self {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let peer = Peer::spawn("rust", vec![theirs.into()], &[]).unwrap();
        let opts = Options::new().capacity_bytes(RING_BYTES as usize);
        let tx = MsgSender::create_with(ours, &opts).unwrap();
        Self {
            peer,
            tx,
            msg: vec![0x5au8; size],
        }
    }

    fn run(&mut self, n: u64) -> Duration {
        let (tx, msg) = (&mut self.tx, &self.msg);
        streamed(&mut self.peer, n, || tx.send(msg, None).unwrap())
    }

    fn finish(self) {
        drop(self.tx);
        self.peer.finish();
    }
}

/// The C sender, freed on drop.
struct CSender(NonNull<sharedring_msg_sender>);

impl Drop for CSender {
    fn drop(&mut self) {
        // SAFETY: a live handle from `sharedring_msg_sender_create`, freed
        // once.
        unsafe { sharedring_msg_sender_free(self.0.as_ptr()) }
    }
}

/// The C API's row: a `sharedring_msg_sender` and its peer receiving
/// with `sharedring_msg_receiver_recv`.
struct CRow {
    peer: Peer,
    tx: CSender,
    msg: Vec<u8>,
}

impl CRow {
    fn new(size: usize) -> Self {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let peer = Peer::spawn("c", vec![theirs.into()], &[]).unwrap();
        let opts = sharedring_options {
            capacity: RING_BYTES,
            ..Default::default()
        };
        let mut tx = null_mut();
        // SAFETY: the descriptor is handed over; `opts` and `tx` are valid.
        let rc = unsafe { sharedring_msg_sender_create(ours.into_raw_fd(), &opts, &mut tx) };
        assert_eq!(rc, SHAREDRING_OK);
        Self {
            peer,
            tx: CSender(NonNull::new(tx).expect("a handle")),
            msg: vec![0x5au8; size],
        }
    }

    fn run(&mut self, n: u64) -> Duration {
        let (tx, msg) = (&self.tx, &self.msg);
        streamed(&mut self.peer, n, || {
            // SAFETY: a live handle, `msg.len()` readable bytes.
            let rc = unsafe {
                sharedring_msg_sender_send(tx.0.as_ptr(), msg.as_ptr().cast(), msg.len(), -1)
            };
            assert_eq!(rc, SHAREDRING_OK);
        })
    }

    fn finish(self) {
        drop(self.tx);
        self.peer.finish();
    }
}

fn main() {
    if let Some(env) = PeerEnv::from_env() {
        return peer_main(env);
    }
    let mut h = Harness::new("c_api");
    let mode = h.mode();
    for (size, label) in SIZES {
        let mut g = h.group(&format!("c_api_{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut rust = RustRow::new(size);
        g.row("rust-api", |b| b.iter_custom(|n| rust.run(n)));
        rust.finish();
        let mut c = CRow::new(size);
        g.row("c-api", |b| b.iter_custom(|n| c.run(n)));
        c.finish();
        // The target's ratio, interleaved: both rows alive side by side,
        // batches alternating, on fresh rings per set-up.
        for _ in 0..mode.setups() {
            let mut rust = RustRow::new(size);
            let mut c = CRow::new(size);
            g.paired(
                "c-api",
                "rust-api",
                Ratio::Throughput,
                &[c.peer.pid(), rust.peer.pid()],
                |n| c.run(n),
                |n| rust.run(n),
            );
            rust.finish();
            c.finish();
        }
        g.finish();
    }
    h.finish();
}
