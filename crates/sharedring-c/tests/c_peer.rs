//! The reference C peer (`tests/c-peer/peer.c`, written from
//! docs/LAYOUT.md alone, not linked to the Rust code) against the Rust
//! ends: both ring kinds, both directions, each side sleeping and woken by
//! the other, and the documented status code for each bad handshake field.
//! The peer is compiled with the system C compiler (`$CC`, else `cc`).
//!
//! A lost wake-up fails these tests rather than hanging them: the C peer
//! gives up after 10 s without news, and the Rust side waits with a
//! timeout.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use sharedring::{Error, MsgReceiver, MsgSender, Options, Receiver, Sender};

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

/// The peer's report: its one line of output, split into words.
fn finish(mut child: Child) -> Vec<String> {
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .expect("the peer's output");
    let status = child.wait().expect("the peer ran");
    assert!(
        status.success(),
        "the C peer failed ({status}); its output: {out}"
    );
    out.split_whitespace().map(str::to_owned).collect()
}

/// The value after `key` in a report.
fn field(report: &[String], key: &str) -> String {
    let at = report
        .iter()
        .position(|w| w == key)
        .unwrap_or_else(|| panic!("no {key} in the peer's report {report:?}"));
    report[at + 1].clone()
}

fn num(report: &[String], key: &str) -> u64 {
    field(report, key).parse().expect("a number")
}

fn spawn(args: &[&str]) -> (Child, UnixStream) {
    common::spawn_c(common::peer(), args, Stdio::piped())
}

/// The end of a stream from the C producer: it marks `producer_closed`
/// (LAYOUT.md, "End of stream") and exits; the Rust receiver must report
/// `Closed` (a clean end), never `PeerGone`, once everything arrived.
fn is_end(e: &Error) -> bool {
    matches!(e, Error::Closed)
}

/// Message `i` of the peer's pattern.
fn pattern(i: u64) -> Vec<u8> {
    let len = (i * 37) % 201;
    (0..len).map(|j| (i + j) as u8).collect()
}

fn rust_receives_elements(n: u64, every: u64, pause_ms: u64, rust_pause: bool) -> Vec<String> {
    let (child, sock) = spawn(&[
        "elem-send",
        &n.to_string(),
        &every.to_string(),
        &pause_ms.to_string(),
    ]);
    let mut rx = Receiver::<u64>::accept(sock).expect("accept the C peer's element ring");
    let (mut sum, mut count) = (0u64, 0u64);
    let mut buf = [0u64; 256];
    loop {
        match rx.recv(&mut buf, WAIT) {
            Ok(k) => {
                for (i, v) in buf[..k].iter().enumerate() {
                    assert_eq!(*v, count + i as u64 + 1, "element {}", count + i as u64);
                }
                sum += buf[..k].iter().sum::<u64>();
                count += k as u64;
                if rust_pause && count % 4096 < k as u64 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Err(e) if is_end(&e) => break,
            Err(e) => panic!("receiving from the C peer: {e}"),
        }
    }
    assert_eq!(count, n);
    assert_eq!(sum, n * (n + 1) / 2);
    finish(child)
}

#[test]
fn c_streams_elements_to_rust() {
    let report = rust_receives_elements(300_000, 0, 0, false);
    assert_eq!(num(&report, "count"), 300_000);
}

#[test]
fn rust_sleeps_on_an_empty_element_ring_and_c_wakes_it() {
    // The C producer pauses 20 ms every 2000 elements: the Rust receiver
    // spins its default 100 us, then sleeps on its eventfd; only the C peer's wake-up
    // (or the 10 s timeout, which fails the test) ends that sleep.
    rust_receives_elements(20_000, 2000, 20, false);
}

#[test]
fn c_sleeps_on_a_full_element_ring_and_rust_wakes_it() {
    // The Rust receiver pauses; the C producer (a 1024-slot ring) fills it
    // and sleeps on the "room" eventfd.
    let report = rust_receives_elements(100_000, 0, 0, true);
    assert!(
        num(&report, "sleeps") > 0,
        "the C producer never slept: {report:?}"
    );
}

fn c_receives_elements(n: u64, every: u64, pause_ms: u64, rust_pause: bool) -> Vec<String> {
    let (child, sock) = spawn(&["elem-recv", &every.to_string(), &pause_ms.to_string()]);
    let mut tx = Sender::<u64>::create(sock, 1024).expect("offer an element ring to the C peer");
    let mut next = 1u64;
    while next <= n {
        let batch: Vec<u64> = (next..(next + 500).min(n + 1)).collect();
        tx.send(&batch, WAIT).expect("send to the C peer");
        next += batch.len() as u64;
        if rust_pause && next % 10_000 < 500 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    tx.close().expect("close");
    let report = finish(child);
    assert_eq!(num(&report, "count"), n);
    assert_eq!(num(&report, "sum"), n * (n + 1) / 2);
    assert_eq!(
        field(&report, "end"),
        "closed",
        "the C receiver must see the Rust sender's close: {report:?}"
    );
    report
}

#[test]
fn rust_streams_elements_to_c() {
    c_receives_elements(300_000, 0, 0, false);
}

#[test]
fn c_sleeps_on_an_empty_element_ring_and_rust_wakes_it() {
    let report = c_receives_elements(50_000, 0, 0, true);
    assert!(
        num(&report, "sleeps") > 0,
        "the C receiver never slept: {report:?}"
    );
}

#[test]
fn rust_sleeps_on_a_full_element_ring_and_c_wakes_it() {
    // The C receiver takes 256 elements, then pauses 2 ms: the Rust sender
    // fills the 1024 slots and sleeps until the C side's release wakes it
    // (a lost wake-up times the send out after 10 s).
    c_receives_elements(20_000, 256, 2, false);
}

fn rust_receives_messages(n: u64, every: u64, pause_ms: u64, rust_pause: bool) -> Vec<String> {
    let (child, sock) = spawn(&[
        "msg-send",
        &n.to_string(),
        &every.to_string(),
        &pause_ms.to_string(),
    ]);
    let mut rx = MsgReceiver::accept(sock).expect("accept the C peer's message ring");
    let mut buf = Vec::new();
    let mut count = 0u64;
    loop {
        match rx.recv(&mut buf, WAIT) {
            Ok(_) => {
                assert_eq!(buf, pattern(count), "message {count}");
                count += 1;
                if rust_pause && count % 500 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Err(e) if is_end(&e) => break,
            Err(e) => panic!("receiving from the C peer: {e}"),
        }
    }
    assert_eq!(count, n);
    finish(child)
}

#[test]
fn c_streams_messages_to_rust() {
    rust_receives_messages(100_000, 0, 0, false);
}

#[test]
fn rust_sleeps_on_an_empty_message_ring_and_c_wakes_it() {
    rust_receives_messages(3000, 300, 20, false);
}

#[test]
fn c_sleeps_on_a_full_message_ring_and_rust_wakes_it() {
    let report = rust_receives_messages(20_000, 0, 0, true);
    assert!(
        num(&report, "sleeps") > 0,
        "the C producer never slept: {report:?}"
    );
}

fn c_receives_messages(n: u64, every: u64, pause_ms: u64, rust_pause: bool) -> Vec<String> {
    let (child, sock) = spawn(&["msg-recv", &every.to_string(), &pause_ms.to_string()]);
    let opts = Options::new().capacity_bytes(4096).max_msg(200);
    let mut tx = MsgSender::create_with(sock, &opts).expect("offer a message ring to the C peer");
    for i in 0..n {
        tx.send(&pattern(i), WAIT).expect("send to the C peer");
        if rust_pause && i % 1000 == 999 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    tx.close().expect("close");
    let report = finish(child);
    assert_eq!(num(&report, "count"), n);
    assert_eq!(
        field(&report, "end"),
        "closed",
        "the C receiver must see the Rust sender's close: {report:?}"
    );
    report
}

#[test]
fn rust_streams_messages_to_c() {
    c_receives_messages(100_000, 0, 0, false);
}

#[test]
fn c_sleeps_on_an_empty_message_ring_and_rust_wakes_it() {
    let report = c_receives_messages(10_000, 0, 0, true);
    assert!(
        num(&report, "sleeps") > 0,
        "the C receiver never slept: {report:?}"
    );
}

#[test]
fn rust_sleeps_on_a_full_message_ring_and_c_wakes_it() {
    c_receives_messages(5000, 50, 2, false);
}

/// Each bad field of a setup message, the ring kind the Rust side expects,
/// and the status code docs/LAYOUT.md gives for it.
const REFUSALS: &[(&str, u32)] = &[
    ("short", 1),
    ("magic", 1),
    ("version", 1),
    ("kind", 1),
    ("descriptors", 4),
    ("elem-size", 2),
    ("elem-align", 2),
    ("type-tag", 2),
    ("role-same", 2),
    ("role-unknown", 2),
    ("capacity", 3),
    ("capacity-limit", 3),
    ("region-len", 2),
    ("memfd-pipe", 4),
    ("memfd-small", 4),
    ("memfd-write-sealed", 4),
    ("eventfd-semaphore", 4),
    ("eventfd-pipe", 4),
    ("ring-magic", 5),
    ("ring-data-offset", 5),
    ("msg-elem-size", 2),
    ("msg-type-tag", 2),
    ("msg-max-msg", 3),
    ("msg-capacity", 3),
    // Not a refusal: the memfd size check is a minimum.
    ("memfd-page", 0),
];

#[test]
fn each_bad_handshake_field_is_refused_with_the_documented_code() {
    let mut wrong = Vec::new();
    for &(case, code) in REFUSALS {
        let (child, sock) = spawn(&["refuse", case]);
        let opts = Options::new().handshake_timeout(Some(Duration::from_secs(5)));
        let accepted = if case.starts_with("msg-") {
            MsgReceiver::accept_with(sock, &opts).map(drop)
        } else {
            Receiver::<u64>::accept_with(sock, &opts).map(drop)
        };
        let report = finish(child);
        let status: u32 = field(&report, "status").parse().expect("a status");
        match (&accepted, code) {
            (Ok(()), 0) | (Err(_), 1..) if status == code => {}
            _ => wrong.push(format!(
                "{case}: the C peer read status {status} (documented: {code}); the Rust side said \
                 {:?}",
                accepted.as_ref().err().map(ToString::to_string)
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
