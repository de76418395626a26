//! The C API: the C examples compiled with the system C compiler against
//! the static library and run (with each other, and with this test as
//! their Rust partner), and the API's contract called through the same
//! `extern "C"` functions a C program calls.

mod common;

use std::ffi::{c_int, c_void, CStr};
use std::io::Read;
use std::os::fd::{IntoRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::ptr::{null, null_mut};
use std::time::Duration;

use sharedring::{Error, MsgSender, Options, Receiver};
use sharedring_c::*;

const U8: c_int = sharedring_elem::SHAREDRING_ELEM_U8 as c_int;
const U32: c_int = sharedring_elem::SHAREDRING_ELEM_U32 as c_int;
const U64: c_int = sharedring_elem::SHAREDRING_ELEM_U64 as c_int;

fn last_error() -> String {
    // SAFETY: the library returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(sharedring_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_c_server_and_the_c_client_stream_messages() {
    let server = common::compile_with_lib(
        "server",
        &common::crate_dir().join("../../examples/c/server.c"),
    );
    let client = common::compile_with_lib(
        "client",
        &common::crate_dir().join("../../examples/c/client.c"),
    );
    let path = common::socket_path();
    let mut server = Command::new(&server)
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the C server");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the C server did not bind"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let client = Command::new(&client)
        .arg(&path)
        .output()
        .expect("run the C client");
    let mut out = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        client.status.success(),
        "the C client failed: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(
        server.wait().unwrap().success(),
        "the C server failed: {out}"
    );
    assert!(out.contains("100000 messages"), "{out}");
}

#[test]
fn a_c_program_talks_to_rust_over_both_ring_kinds() {
    let bin = common::compile_with_lib(
        "rust_peer",
        &common::crate_dir().join("../../examples/c/rust_peer.c"),
    );
    let path = common::socket_path();
    let listener = UnixListener::bind(&path).unwrap();
    let mut child = Command::new(&bin)
        .arg("--connect")
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the C program");
    let elements = common::accept_from(&listener, &mut child, &bin);
    let messages = common::accept_from(&listener, &mut child, &bin);
    let _ = std::fs::remove_file(&path);

    // The part of examples/c_partner.rs.
    let mut rx = Receiver::<u64>::accept(elements).expect("accept the C element ring");
    let mut buf = [0u64; 1024];
    let mut sum = 0u64;
    loop {
        match rx.recv(&mut buf, Some(Duration::from_secs(10))) {
            Ok(n) => sum += buf[..n].iter().sum::<u64>(),
            Err(Error::Closed) => break,
            Err(e) => panic!("receiving from C: {e}"),
        }
    }
    assert_eq!(sum, 1_000_000 * 1_000_001 / 2);
    let mut tx = MsgSender::create_with(messages, &Options::new().capacity_bytes(1 << 12)).unwrap();
    tx.send(&sum.to_ne_bytes(), None).unwrap();
    for i in 0..1000 {
        tx.send(format!("line {i} from Rust").as_bytes(), None)
            .unwrap();
    }
    tx.close().unwrap();

    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the C program failed: {text}");
    assert!(text.contains("received 1000 messages in place"), "{text}");
}

#[test]
fn every_status_code_has_a_name() {
    let codes = [
        SHAREDRING_OK,
        SHAREDRING_AGAIN,
        SHAREDRING_READY,
        SHAREDRING_ERR_PEER_GONE,
        SHAREDRING_ERR_CLOSED,
        SHAREDRING_ERR_TIMED_OUT,
        SHAREDRING_ERR_CORRUPTED,
        SHAREDRING_ERR_MESSAGE_TOO_LARGE,
        SHAREDRING_ERR_BUFFER_TOO_SMALL,
        SHAREDRING_ERR_HANDSHAKE,
        SHAREDRING_ERR_REFUSED,
        SHAREDRING_ERR_INVALID,
        SHAREDRING_ERR_IO,
        SHAREDRING_ERR_PANIC,
        SHAREDRING_ERR_CAPACITY,
        SHAREDRING_ERR_NO_DESCRIPTORS,
    ];
    let name = |c| {
        // SAFETY: strerror returns static NUL-terminated strings.
        unsafe { CStr::from_ptr(sharedring_strerror(c)) }
            .to_str()
            .unwrap()
    };
    let unknown = name(12345);
    let mut seen = std::collections::HashSet::new();
    for c in codes {
        assert_ne!(name(c), unknown, "code {c} has no name");
        assert!(seen.insert(name(c)), "code {c} shares its name");
    }
}

#[test]
fn bad_arguments_are_refused_with_a_message_not_a_crash() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut tx: *mut sharedring_sender = null_mut();
    // SAFETY: the arguments are valid except the ones under test.
    unsafe {
        assert_eq!(
            sharedring_sender_create(a.into_raw_fd(), 99, null(), &mut tx),
            SHAREDRING_ERR_INVALID
        );
        assert!(
            last_error().contains("unknown element type 99"),
            "{}",
            last_error()
        );
        assert_eq!(
            sharedring_sender_create(-1, U8, null(), &mut tx),
            SHAREDRING_ERR_INVALID
        );
        assert_eq!(
            sharedring_sender_try_send(null_mut(), null(), 0, null_mut()),
            SHAREDRING_ERR_INVALID
        );
        assert!(last_error().contains("NULL"), "{}", last_error());
        assert_eq!(
            sharedring_msg_sender_commit(null_mut(), 0),
            SHAREDRING_ERR_INVALID
        );
        assert_eq!(sharedring_sender_fd(null()), -1);
        sharedring_sender_free(null_mut());
        assert_eq!(
            sharedring_listener_bind(null(), null_mut()),
            SHAREDRING_ERR_INVALID
        );
    }
}

/// An element ring of `elem` through an offer, both ends in this process.
fn element_pair(elem: c_int, capacity: u64) -> (*mut sharedring_sender, *mut sharedring_receiver) {
    let opts = sharedring_options {
        capacity,
        ..Default::default()
    };
    let (mut tx, mut rx) = (null_mut(), null_mut());
    let mut offer = std::mem::MaybeUninit::<sharedring_offer>::uninit();
    let (live_a, live_b) = UnixStream::pair().unwrap();
    // SAFETY: valid pointers; the descriptors are handed over.
    unsafe {
        let rc = sharedring_sender_create_offer(
            elem,
            &opts,
            live_a.into_raw_fd(),
            &mut tx,
            offer.as_mut_ptr(),
        );
        assert_eq!(rc, SHAREDRING_OK, "{}", last_error());
        let offer = offer.assume_init();
        assert_eq!(
            (offer.kind, offer.creator, offer.capacity),
            (1, 1, capacity)
        );
        let rc =
            sharedring_receiver_from_offer(&offer, elem, null(), live_b.into_raw_fd(), &mut rx);
        assert_eq!(rc, SHAREDRING_OK, "{}", last_error());
    }
    (tx, rx)
}

#[test]
fn element_rings_copy_and_work_in_place_through_the_c_api() {
    let (tx, rx) = element_pair(U32, 64);
    // SAFETY: live handles from `element_pair`, valid buffers.
    unsafe {
        assert_eq!(sharedring_sender_capacity(tx), 64);
        let mut out = [0u32; 8];
        let mut got = 0usize;
        assert_eq!(
            sharedring_receiver_try_recv(rx, out.as_mut_ptr().cast(), 8, &mut got),
            SHAREDRING_AGAIN
        );
        assert_eq!(
            sharedring_receiver_recv(rx, out.as_mut_ptr().cast(), 8, 1000, &mut got),
            SHAREDRING_ERR_TIMED_OUT
        );
        let data: Vec<u32> = (1..=70).collect();
        let mut sent = 0usize;
        assert_eq!(
            sharedring_sender_try_send(tx, data.as_ptr().cast(), 70, &mut sent),
            SHAREDRING_OK
        );
        assert_eq!(sent, 64);
        assert_eq!(
            sharedring_sender_try_send(tx, data.as_ptr().cast(), 1, &mut sent),
            SHAREDRING_AGAIN
        );
        // A misaligned buffer is refused.
        let bytes = [0u8; 16];
        assert_eq!(
            sharedring_sender_try_send(tx, bytes.as_ptr().add(1).cast(), 1, &mut sent),
            SHAREDRING_ERR_INVALID
        );
        // In place: the first 8 slots, release 5.
        let mut chunk = std::mem::zeroed::<sharedring_chunk>();
        assert_eq!(
            sharedring_receiver_read_chunk(rx, 8, &mut chunk),
            SHAREDRING_OK
        );
        assert_eq!(chunk.len0 + chunk.len1, 8);
        assert_eq!(*chunk.ptr0.cast::<u32>(), 1);
        assert_eq!(sharedring_receiver_release(rx, 9), SHAREDRING_ERR_INVALID);
        assert_eq!(
            sharedring_receiver_read_chunk(rx, 8, &mut chunk),
            SHAREDRING_OK
        );
        assert_eq!(sharedring_receiver_release(rx, 5), SHAREDRING_OK);
        assert_eq!(
            sharedring_receiver_try_recv(rx, out.as_mut_ptr().cast(), 8, &mut got),
            SHAREDRING_OK
        );
        assert_eq!(&out[..got], &data[5..13]);
        // Write 3 in place across the wrap-around, commit 2.
        assert_eq!(
            sharedring_sender_write_chunk(tx, 3, &mut chunk),
            SHAREDRING_OK
        );
        assert_eq!(chunk.len0 + chunk.len1, 3);
        assert_eq!(sharedring_sender_commit(tx, 4), SHAREDRING_ERR_INVALID);
        assert_eq!(
            sharedring_sender_write_chunk(tx, 3, &mut chunk),
            SHAREDRING_OK
        );
        for (i, v) in [100u32, 101].iter().enumerate() {
            let p = if i < chunk.len0 {
                chunk.ptr0.cast::<u32>().add(i)
            } else {
                chunk.ptr1.cast::<u32>().add(i - chunk.len0)
            };
            *p = *v;
        }
        assert_eq!(sharedring_sender_commit(tx, 2), SHAREDRING_OK);
        let mut all = Vec::new();
        while sharedring_receiver_try_recv(rx, out.as_mut_ptr().cast(), 8, &mut got)
            == SHAREDRING_OK
        {
            all.extend_from_slice(&out[..got]);
        }
        assert_eq!(all.len(), 51 + 2);
        assert_eq!(&all[51..], &[100, 101]);
        // A clean end of stream.
        assert_eq!(sharedring_sender_close(tx), SHAREDRING_OK);
        assert_eq!(
            sharedring_receiver_recv(rx, out.as_mut_ptr().cast(), 8, -1, &mut got),
            SHAREDRING_ERR_CLOSED
        );
        sharedring_receiver_free(rx);
    }
}

#[test]
fn a_freed_sender_is_a_closed_stream_after_the_drain() {
    // Freeing a sender closes its stream cleanly (as a Rust drop does):
    // the receiver reports the end as closed, not as a vanished peer.
    let (tx, rx) = element_pair(U8, 16);
    // SAFETY: live handles, valid buffers.
    unsafe {
        assert_eq!(
            sharedring_sender_try_send(tx, b"abc".as_ptr().cast(), 3, null_mut()),
            SHAREDRING_OK
        );
        sharedring_sender_free(tx);
        let mut chunk = std::mem::zeroed::<sharedring_chunk>();
        assert_eq!(
            sharedring_receiver_read_chunk(rx, 16, &mut chunk),
            SHAREDRING_OK
        );
        assert_eq!(chunk.len0, 3);
        assert_eq!(sharedring_receiver_release(rx, 3), SHAREDRING_OK);
        assert_eq!(
            sharedring_receiver_read_chunk(rx, 16, &mut chunk),
            SHAREDRING_ERR_CLOSED
        );
        sharedring_receiver_free(rx);
    }
}

/// A message ring through an offer, both ends in this process.
fn message_pair() -> (*mut sharedring_msg_sender, *mut sharedring_msg_receiver) {
    let opts = sharedring_options {
        capacity: 1024,
        max_msg: 100,
        ..Default::default()
    };
    let (mut tx, mut rx) = (null_mut(), null_mut());
    let mut offer = std::mem::MaybeUninit::<sharedring_offer>::uninit();
    let (live_a, live_b) = UnixStream::pair().unwrap();
    // SAFETY: valid pointers; the descriptors are handed over.
    unsafe {
        let rc = sharedring_msg_receiver_create_offer(
            &opts,
            live_a.into_raw_fd(),
            &mut rx,
            offer.as_mut_ptr(),
        );
        assert_eq!(rc, SHAREDRING_OK, "{}", last_error());
        let offer = offer.assume_init();
        assert_eq!((offer.kind, offer.creator, offer.max_msg), (2, 2, 100));
        let rc = sharedring_msg_sender_from_offer(&offer, null(), live_b.into_raw_fd(), &mut tx);
        assert_eq!(rc, SHAREDRING_OK, "{}", last_error());
    }
    (tx, rx)
}

unsafe extern "C" fn fill(ctx: *mut c_void, ptr: *mut u8, len: usize) {
    // SAFETY: the library gives `len` writable bytes; ctx is a u8.
    unsafe { std::ptr::write_bytes(ptr, *ctx.cast::<u8>(), len) }
}

unsafe extern "C" fn read_into(ctx: *mut c_void, ptr: *const u8, len: usize) {
    // SAFETY: the library gives `len` readable bytes; ctx is a Vec<u8>.
    unsafe { (*ctx.cast::<Vec<u8>>()).extend_from_slice(std::slice::from_raw_parts(ptr, len)) }
}

#[test]
fn message_rings_copy_and_work_in_place_through_the_c_api() {
    let (tx, rx) = message_pair();
    // SAFETY: live handles, valid buffers and callbacks.
    unsafe {
        assert_eq!(sharedring_msg_sender_max_msg(tx), 100);
        let mut buf = [0u8; 4];
        let mut len = 0usize;
        assert_eq!(
            sharedring_msg_receiver_try_recv(rx, buf.as_mut_ptr().cast(), 4, &mut len),
            SHAREDRING_AGAIN
        );
        assert_eq!(
            sharedring_msg_sender_try_send(tx, b"hello".as_ptr().cast(), 5),
            SHAREDRING_OK
        );
        assert_eq!(
            sharedring_msg_receiver_try_recv(rx, buf.as_mut_ptr().cast(), 4, &mut len),
            SHAREDRING_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 5);
        // In place: the same message is still there.
        let mut p: *const u8 = null();
        assert_eq!(
            sharedring_msg_receiver_read(rx, &mut p, &mut len),
            SHAREDRING_OK
        );
        assert_eq!(std::slice::from_raw_parts(p, len), b"hello");
        assert_eq!(sharedring_msg_receiver_release(rx), SHAREDRING_OK);
        assert_eq!(sharedring_msg_receiver_release(rx), SHAREDRING_ERR_INVALID);
        assert_eq!(
            sharedring_msg_receiver_read(rx, &mut p, &mut len),
            SHAREDRING_AGAIN
        );
        // Reserve 10, commit 3.
        let mut w: *mut u8 = null_mut();
        assert_eq!(
            sharedring_msg_sender_reserve(tx, 101, &mut w),
            SHAREDRING_ERR_MESSAGE_TOO_LARGE
        );
        assert_eq!(sharedring_msg_sender_reserve(tx, 10, &mut w), SHAREDRING_OK);
        std::ptr::copy_nonoverlapping(b"xyz".as_ptr(), w, 3);
        assert_eq!(sharedring_msg_sender_commit(tx, 11), SHAREDRING_ERR_INVALID);
        assert_eq!(sharedring_msg_sender_reserve(tx, 10, &mut w), SHAREDRING_OK);
        std::ptr::copy_nonoverlapping(b"xyz".as_ptr(), w, 3);
        assert_eq!(sharedring_msg_sender_commit(tx, 3), SHAREDRING_OK);
        let mut got = [0u8; 16];
        assert_eq!(
            sharedring_msg_receiver_recv(rx, got.as_mut_ptr().cast(), 16, 1_000_000, &mut len),
            SHAREDRING_OK
        );
        assert_eq!(&got[..len], b"xyz");
        // Callbacks, and an empty message through the in-place read.
        let mut byte = 7u8;
        assert_eq!(
            sharedring_msg_sender_send_with(tx, 6, -1, Some(fill), (&mut byte as *mut u8).cast()),
            SHAREDRING_OK
        );
        assert_eq!(sharedring_msg_sender_send(tx, null(), 0, -1), SHAREDRING_OK);
        let mut seen = Vec::new();
        assert_eq!(
            sharedring_msg_receiver_recv_with(
                rx,
                -1,
                Some(read_into),
                (&mut seen as *mut Vec<u8>).cast()
            ),
            SHAREDRING_OK
        );
        assert_eq!(seen, [7u8; 6]);
        assert_eq!(
            sharedring_msg_receiver_read(rx, &mut p, &mut len),
            SHAREDRING_OK
        );
        assert_eq!(len, 0);
        assert_eq!(sharedring_msg_receiver_release(rx), SHAREDRING_OK);
        // The end.
        assert_eq!(sharedring_msg_sender_close(tx), SHAREDRING_OK);
        assert_eq!(
            sharedring_msg_receiver_wait_data(rx, 1_000_000),
            SHAREDRING_OK
        );
        assert_eq!(
            sharedring_msg_receiver_read(rx, &mut p, &mut len),
            SHAREDRING_ERR_CLOSED
        );
        sharedring_msg_receiver_free(rx);
    }
}

fn readable(fd: RawFd, ms: c_int) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    // SAFETY: `fd` stays open for the call (the handle owns it).
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    // Resumed with the time left when interrupted: closing an io_uring
    // this thread submitted to ends its next sleep with EINTR, no signal
    // needed.
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match poll(&mut fds, Some(&ts)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

#[test]
fn an_event_loop_arms_polls_and_disarms() {
    let (tx, rx) = message_pair();
    // SAFETY: live handles, valid buffers.
    unsafe {
        let fd = sharedring_msg_receiver_fd(rx);
        assert!(fd >= 0);
        assert_eq!(
            sharedring_msg_receiver_arm(rx),
            SHAREDRING_OK,
            "empty: poll"
        );
        assert!(!readable(fd, 20));
        assert_eq!(
            sharedring_msg_sender_try_send(tx, b"tick".as_ptr().cast(), 4),
            SHAREDRING_OK
        );
        assert!(
            readable(fd, 1000),
            "the send woke the armed receiver's descriptor"
        );
        assert_eq!(sharedring_msg_receiver_disarm(rx), SHAREDRING_OK);
        assert!(!readable(fd, 0), "disarm drained the descriptor");
        assert_eq!(
            sharedring_msg_receiver_arm(rx),
            SHAREDRING_READY,
            "a message is there"
        );
        assert_eq!(sharedring_msg_receiver_disarm(rx), SHAREDRING_OK);
        let mut buf = [0u8; 8];
        let mut len = 0;
        assert_eq!(
            sharedring_msg_receiver_try_recv(rx, buf.as_mut_ptr().cast(), 8, &mut len),
            SHAREDRING_OK
        );
        sharedring_msg_sender_free(tx);
        sharedring_msg_receiver_free(rx);
    }
}

#[test]
fn a_refusal_reports_the_peers_status_code() {
    let (a, b) = UnixStream::pair().unwrap();
    let peer = std::thread::spawn(move || Receiver::<f64>::accept(b).map(drop));
    let mut tx = null_mut();
    // SAFETY: the socket is handed over; `tx` is writable.
    let rc = unsafe { sharedring_sender_create(a.into_raw_fd(), U64, null(), &mut tx) };
    assert_eq!(rc, SHAREDRING_ERR_REFUSED, "{}", last_error());
    assert_eq!(sharedring_last_refusal(), 2, "a type mismatch is status 2");
    assert!(peer.join().unwrap().is_err());
}

#[test]
fn a_listener_and_connect_set_a_ring_up() {
    let path = common::socket_path();
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut l = null_mut();
    // SAFETY: valid strings and out pointers throughout.
    unsafe {
        assert_eq!(
            sharedring_listener_bind(cpath.as_ptr(), &mut l),
            SHAREDRING_OK,
            "{}",
            last_error()
        );
        assert!(sharedring_listener_fd(l) >= 0);
        let client = {
            let cpath = cpath.clone();
            std::thread::spawn(move || {
                let mut sock = -1;
                assert_eq!(sharedring_connect(cpath.as_ptr(), &mut sock), SHAREDRING_OK);
                let mut rx = null_mut();
                assert_eq!(
                    sharedring_receiver_accept(sock, U64, null(), &mut rx),
                    SHAREDRING_OK,
                    "{}",
                    last_error()
                );
                let mut v = 0u64;
                let mut got = 0;
                assert_eq!(
                    sharedring_receiver_recv(rx, (&mut v as *mut u64).cast(), 1, -1, &mut got),
                    SHAREDRING_OK
                );
                sharedring_receiver_free(rx);
                v
            })
        };
        let mut sock = -1;
        let mut who = sharedring_peer_credentials::default();
        assert_eq!(
            sharedring_listener_accept(l, &mut sock, &mut who),
            SHAREDRING_OK
        );
        assert_eq!(who.pid, std::process::id() as i32);
        let mut tx = null_mut();
        assert_eq!(
            sharedring_sender_create(sock, U64, null(), &mut tx),
            SHAREDRING_OK,
            "{}",
            last_error()
        );
        let v = 42u64;
        assert_eq!(
            sharedring_sender_send(tx, (&v as *const u64).cast(), 1, -1, null_mut()),
            SHAREDRING_OK
        );
        assert_eq!(client.join().unwrap(), 42);
        sharedring_sender_free(tx);
        sharedring_listener_free(l);
    }
    assert!(
        !path.exists(),
        "freeing the listener removes its socket file"
    );
}

#[test]
fn an_element_receiver_arms_and_a_full_sender_waits_for_room() {
    let (tx, rx) = element_pair(U64, 8);
    // SAFETY: live handles, valid buffers.
    unsafe {
        let fd = sharedring_receiver_fd(rx);
        assert_eq!(sharedring_receiver_arm(rx), SHAREDRING_OK);
        let v = [1u64; 8];
        assert_eq!(
            sharedring_sender_try_send(tx, v.as_ptr().cast(), 8, null_mut()),
            SHAREDRING_OK
        );
        assert!(readable(fd, 1000), "the send woke the armed receiver");
        assert_eq!(sharedring_receiver_disarm(rx), SHAREDRING_OK);
        assert_eq!(sharedring_receiver_arm(rx), SHAREDRING_READY);
        assert_eq!(sharedring_receiver_disarm(rx), SHAREDRING_OK);
        // Full: the sender arms, the receiver's release wakes it.
        let sfd = sharedring_sender_fd(tx);
        assert_eq!(
            sharedring_sender_wait_writable(tx, 1, 1000),
            SHAREDRING_ERR_TIMED_OUT
        );
        // (Armed after the blocking wait: that wait withdraws its own
        // announcement when it returns.)
        assert_eq!(sharedring_sender_arm(tx), SHAREDRING_OK);
        let mut out = [0u64; 2];
        assert_eq!(
            sharedring_receiver_try_recv(rx, out.as_mut_ptr().cast(), 2, null_mut()),
            SHAREDRING_OK
        );
        assert!(readable(sfd, 1000), "the release woke the armed sender");
        assert_eq!(sharedring_sender_disarm(tx), SHAREDRING_OK);
        assert_eq!(sharedring_sender_wait_writable(tx, 2, 1000), SHAREDRING_OK);
        sharedring_sender_free(tx);
        sharedring_receiver_free(rx);
    }
}

/// A raw handle that may cross to another thread (the test's contract:
/// one thread uses it at a time).
struct Handle<T>(*mut T);
// SAFETY: the handles are `Send` in Rust terms (the facade's ends are);
// the test hands each to one thread at a time.
unsafe impl<T> Send for Handle<T> {}

#[test]
fn a_full_message_sender_waits_for_room_in_place() {
    let (tx, rx) = message_pair();
    // SAFETY: live handles, valid buffers.
    unsafe {
        let msg = [9u8; 100];
        while sharedring_msg_sender_try_send(tx, msg.as_ptr().cast(), 100) == SHAREDRING_OK {}
        assert_eq!(
            sharedring_msg_sender_wait_room(tx, 100, 1000),
            SHAREDRING_ERR_TIMED_OUT
        );
        assert_eq!(
            sharedring_msg_sender_wait_room(tx, 101, 1000),
            SHAREDRING_ERR_MESSAGE_TOO_LARGE
        );
        let rxh = Handle(rx);
        let reader = std::thread::spawn(move || {
            let rxh = rxh;
            std::thread::sleep(Duration::from_millis(20));
            let mut buf = [0u8; 100];
            sharedring_msg_receiver_try_recv(rxh.0, buf.as_mut_ptr().cast(), 100, null_mut());
            rxh
        });
        assert_eq!(
            sharedring_msg_sender_wait_room(tx, 100, 10_000_000),
            SHAREDRING_OK
        );
        let mut w = null_mut();
        assert_eq!(
            sharedring_msg_sender_reserve(tx, 100, &mut w),
            SHAREDRING_OK
        );
        assert_eq!(sharedring_msg_sender_commit(tx, 100), SHAREDRING_OK);
        let rx = reader.join().unwrap().0;
        sharedring_msg_sender_free(tx);
        sharedring_msg_receiver_free(rx);
    }
}
