//! D-Bus beside sharedring and a Unix socket, as shmem-ipc's benchmark had
//! it: messages of 64 B, 4 KiB and 64 KiB streamed from one thread to
//! another, in the criterion group `dbus_throughput` with the rows
//! `dbus/<size>`, `sharedring/<size>` and `unix-socket/<size>`.
//!
//! - `dbus`: each message is a unicast D-Bus signal carrying the bytes as
//!   an `ay`, sent through a real private `dbus-daemon` (two connections,
//!   so every message crosses the daemon: two socket hops, two
//!   (de)serialisations). The sender keeps at most a window of messages
//!   (about 1 MiB) in flight, so the daemon's queue stays bounded.
//! - `sharedring`: a `Sender<u8>`/`Receiver<u8>` ring of 1 MiB (the default
//!   options: spin, then park).
//! - `unix-socket`: a connected `UnixStream` pair with the default buffers.
//!
//! Each receiver copies the bytes out (D-Bus: decodes the body). Run with
//! `cargo bench -p sharedring-dbus --bench dbus_throughput`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sharedring::{Options, Receiver, Sender};
use sharedring_dbus::zbus;
use sharedring_dbus::PrivateBus;

const SIZES: [usize; 3] = [64, 4 << 10, 64 << 10];

fn size_name(size: usize) -> String {
    match size {
        b if b >= 1 << 10 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
    }
}

/// A receiving thread told how much to expect, answering when it got it.
struct Sink {
    expect: mpsc::Sender<u64>,
    done: mpsc::Receiver<()>,
}

impl Sink {
    fn spawn(mut consume: impl FnMut(u64) + Send + 'static) -> Self {
        let (expect, expect_rx) = mpsc::channel::<u64>();
        let (done_tx, done) = mpsc::channel();
        thread::spawn(move || {
            for n in expect_rx {
                consume(n);
                if done_tx.send(()).is_err() {
                    break;
                }
            }
        });
        Self { expect, done }
    }

    /// Times `send` (which sends `n` messages) until the sink has them all.
    fn run(&self, n: u64, send: impl FnOnce()) -> Duration {
        self.expect.send(n).unwrap();
        let start = Instant::now();
        send();
        self.done.recv().unwrap();
        start.elapsed()
    }
}

struct UnixRow {
    tx: UnixStream,
    sink: Sink,
    msg: Vec<u8>,
}

impl UnixRow {
    fn new(size: usize) -> Self {
        let (tx, mut rx) = UnixStream::pair().unwrap();
        let sink = Sink::spawn(move |n| {
            let mut buf = vec![0u8; size];
            for _ in 0..n {
                rx.read_exact(&mut buf).unwrap();
            }
        });
        Self {
            tx,
            sink,
            msg: vec![7u8; size],
        }
    }

    fn run(&mut self, n: u64) -> Duration {
        let (tx, msg) = (&mut self.tx, &self.msg);
        self.sink.run(n, || {
            for _ in 0..n {
                tx.write_all(msg).unwrap();
            }
        })
    }
}

struct RingRow {
    tx: Sender<u8>,
    sink: Sink,
    msg: Vec<u8>,
}

impl RingRow {
    fn new(size: usize) -> Self {
        let (tx, mut rx): (Sender<u8>, Receiver<u8>) =
            sharedring::channel_with(&Options::new().capacity_elements(1 << 20)).unwrap();
        let sink = Sink::spawn(move |n| {
            let mut buf = vec![0u8; size];
            let mut left = n * size as u64;
            while left > 0 {
                let want = buf.len().min(left as usize);
                left -= rx.recv(&mut buf[..want], None).unwrap() as u64;
            }
        });
        Self {
            tx,
            sink,
            msg: vec![7u8; size],
        }
    }

    fn run(&mut self, n: u64) -> Duration {
        let (tx, msg) = (&mut self.tx, &self.msg);
        self.sink.run(n, || {
            for _ in 0..n {
                tx.send(msg, None).unwrap();
            }
        })
    }
}

struct DbusRow {
    conn: zbus::blocking::Connection,
    to: String,
    sink: Sink,
    received: Arc<AtomicU64>,
    sent: u64,
    window: u64,
    msg: Vec<u8>,
}

impl DbusRow {
    fn new(bus: &PrivateBus, size: usize) -> Self {
        let conn = bus.connect().unwrap();
        let receiver = bus.connect().unwrap();
        let to = receiver.unique_name().unwrap().to_string();
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.sharedring.Bench")
            .unwrap()
            .member("Data")
            .unwrap()
            .build();
        let mut stream =
            zbus::blocking::MessageIterator::for_match_rule(rule, &receiver, Some(256)).unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let sink = Sink::spawn(move |n| {
            let mut buf = vec![0u8; size];
            for _ in 0..n {
                let msg = stream.next().unwrap().unwrap();
                let body = msg.body();
                let data: &[u8] = body.deserialize().unwrap();
                buf.copy_from_slice(data);
                counter.fetch_add(1, Ordering::Release);
            }
            let _ = &receiver;
        });
        Self {
            conn,
            to,
            sink,
            received,
            sent: 0,
            window: ((1 << 20) / size as u64).clamp(16, 1024),
            msg: vec![7u8; size],
        }
    }

    fn run(&mut self, n: u64) -> Duration {
        let Self {
            conn,
            to,
            sink,
            received,
            sent,
            window,
            msg,
        } = self;
        sink.run(n, || {
            for _ in 0..n {
                while *sent - received.load(Ordering::Acquire) >= *window {
                    thread::yield_now();
                }
                conn.emit_signal(
                    Some(to.as_str()),
                    "/org/sharedring/Bench",
                    "org.sharedring.Bench",
                    "Data",
                    &(msg.as_slice(),),
                )
                .unwrap();
                *sent += 1;
            }
        })
    }
}

fn dbus_throughput(c: &mut Criterion) {
    let bus = PrivateBus::start()
        .unwrap_or_else(|e| panic!("the D-Bus benchmark needs a real dbus-daemon: {e}"));
    let mut group = c.benchmark_group("dbus_throughput");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in SIZES {
        let label = size_name(size);
        group.throughput(Throughput::Bytes(size as u64));
        let mut row = DbusRow::new(&bus, size);
        group.bench_function(BenchmarkId::new("dbus", &label), |b| {
            b.iter_custom(|n| row.run(n))
        });
        let mut row = RingRow::new(size);
        group.bench_function(BenchmarkId::new("sharedring", &label), |b| {
            b.iter_custom(|n| row.run(n))
        });
        let mut row = UnixRow::new(size);
        group.bench_function(BenchmarkId::new("unix-socket", &label), |b| {
            b.iter_custom(|n| row.run(n))
        });
    }
    group.finish();
}

criterion_group!(benches, dbus_throughput);
criterion_main!(benches);
