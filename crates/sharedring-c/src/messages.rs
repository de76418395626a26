//! Message rings: [`sharedring_msg_sender`] and [`sharedring_msg_receiver`].

use std::ffi::{c_int, c_void};
use std::os::fd::AsRawFd;

use sharedring::spsc_core::{MsgPushError, PopError, WaitCheck};
use sharedring::{Error, MsgReceiver, MsgSender};

use crate::elements::{give, handle, socket};
use crate::error::*;
use crate::offer::{liveness, sharedring_offer};
use crate::options::{convert, sharedring_options, Unit};

/// The sending end of a message ring (opaque).
pub struct sharedring_msg_sender {
    tx: MsgSender,
    /// The length of the last reservation, which `commit` publishes.
    reserved: Option<usize>,
}

/// The receiving end of a message ring (opaque).
pub struct sharedring_msg_receiver {
    rx: MsgReceiver,
    /// What the last in-place `read` showed.
    shown: Shown,
}

/// What the last `sharedring_msg_receiver_read` left for `release`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// Nothing: `release` is an error.
    Nothing,
    /// A record still in the ring.
    InRing,
    /// An empty message the end-of-stream probe took already.
    Taken,
}

/// Fills a reserved message in place: `ptr` points to `len` writable bytes
/// (8-byte aligned) in the ring. Must not unwind or `longjmp` out.
pub type sharedring_fill_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, ptr: *mut u8, len: usize)>;

/// Reads a message in place: `ptr` points to its `len` bytes (8-byte
/// aligned) in the ring, which the peer may (wrongly) still write: copy
/// what you validate. Must not unwind or `longjmp` out.
pub type sharedring_read_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, ptr: *const u8, len: usize)>;

/// The bodies of the four constructors of a message-ring end (written
/// once; each `extern "C"` signature is written out for cbindgen, which
/// does not expand macros).
macro_rules! msg_constructor {
    (socket $rust:ident::$call:ident, $new:expr, $sock:ident, $opts:ident, $out:ident) => {
        guard(|| {
            let sock = socket($sock)?;
            required($out, "out")?;
            // SAFETY: the caller's contract on `opts`.
            let opts = unsafe { convert($opts, Unit::Bytes) }?;
            let end = $rust::$call(sock, &opts)?;
            // SAFETY: checked non-null, the caller's contract.
            Ok(unsafe { give($out, $new(end)) })
        })
    };
    (create_offer $rust:ident, $new:expr, $opts:ident, $live:ident, $out:ident, $offer:ident) => {
        guard(|| {
            let live = liveness($live)?;
            required($out, "out")?;
            required($offer, "offer")?;
            // SAFETY: the caller's contract on `opts`.
            let opts = unsafe { convert($opts, Unit::Bytes) }?;
            let (end, o) = $rust::create_offer(&opts, live)?;
            // SAFETY: checked non-null, the caller's contract.
            unsafe { $offer.write(sharedring_offer::export(o)) };
            // SAFETY: as above.
            Ok(unsafe { give($out, $new(end)) })
        })
    };
    (from_offer $rust:ident, $new:expr, $offer:ident, $opts:ident, $live:ident, $out:ident) => {
        guard(|| {
            if $offer.is_null() {
                return invalid("offer must not be NULL");
            }
            // SAFETY: checked non-null, the caller's contract.
            let o = unsafe { $offer.read() }.import()?;
            let live = liveness($live)?;
            required($out, "out")?;
            // SAFETY: the caller's contract on `opts`.
            let opts = unsafe { convert($opts, Unit::Bytes) }?;
            let end = $rust::from_offer(o, &opts, live)?;
            // SAFETY: checked non-null, the caller's contract.
            Ok(unsafe { give($out, $new(end)) })
        })
    };
}

fn new_sender(tx: MsgSender) -> sharedring_msg_sender {
    sharedring_msg_sender { tx, reserved: None }
}

fn new_receiver(rx: MsgReceiver) -> sharedring_msg_receiver {
    sharedring_msg_receiver {
        rx,
        shown: Shown::Nothing,
    }
}

/// Creates a message ring and offers it to the peer over the connected
/// Unix stream socket `sock`; the peer accepts it with `sharedring_msg_receiver_accept`.
/// Blocks until the peer accepted or refused. The socket stays with the
/// ring as its liveness channel.
///
/// # Safety
///
/// `sock` is an open descriptor the caller owns and hands over (closed on
/// failure too); `opts` is NULL or points to a `sharedring_options`; `out`
/// is valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_create(
    sock: c_int,
    opts: *const sharedring_options,
    out: *mut *mut sharedring_msg_sender,
) -> c_int {
    msg_constructor!(socket MsgSender::create_with, new_sender, sock, opts, out)
}

/// Accepts the message ring that the peer offers over `sock` (with
/// `sharedring_msg_receiver_create`), after validating every value and descriptor
/// (`opts->max_msg` and `opts->max_region` are the limits).
///
/// # Safety
///
/// As [`sharedring_msg_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_accept(
    sock: c_int,
    opts: *const sharedring_options,
    out: *mut *mut sharedring_msg_sender,
) -> c_int {
    msg_constructor!(socket MsgSender::accept_with, new_sender, sock, opts, out)
}

/// Creates a message ring without a socket: this end goes to `*out`, and
/// `*offer` receives the values and three descriptors (now the caller's)
/// to move to the peer over a transport of your own (the peer attaches
/// with `sharedring_msg_receiver_from_offer`). `liveness_fd` (negative: none) hangs up or
/// turns readable when the peer is gone.
///
/// # Safety
///
/// `liveness_fd` is negative or an open descriptor handed over; `opts` is
/// NULL or valid; `out` and `offer` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_create_offer(
    opts: *const sharedring_options,
    liveness_fd: c_int,
    out: *mut *mut sharedring_msg_sender,
    offer: *mut sharedring_offer,
) -> c_int {
    msg_constructor!(create_offer MsgSender, new_sender, opts, liveness_fd, out, offer)
}

/// Attaches to the message ring of `*offer` (made by the peer's
/// `sharedring_msg_receiver_create_offer`), after validating every value and descriptor.
/// Takes the offer's three descriptors (closed on failure too).
///
/// # Safety
///
/// `offer` points to a readable `sharedring_offer` whose descriptors are
/// open and handed over; `liveness_fd` is negative or an open descriptor
/// handed over; `opts` is NULL or valid; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_from_offer(
    offer: *const sharedring_offer,
    opts: *const sharedring_options,
    liveness_fd: c_int,
    out: *mut *mut sharedring_msg_sender,
) -> c_int {
    msg_constructor!(from_offer MsgSender, new_sender, offer, opts, liveness_fd, out)
}

/// Creates a message ring and offers it to the peer over the connected
/// Unix stream socket `sock`; the peer accepts it with `sharedring_msg_sender_accept`.
/// Blocks until the peer accepted or refused. The socket stays with the
/// ring as its liveness channel.
///
/// # Safety
///
/// `sock` is an open descriptor the caller owns and hands over (closed on
/// failure too); `opts` is NULL or points to a `sharedring_options`; `out`
/// is valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_create(
    sock: c_int,
    opts: *const sharedring_options,
    out: *mut *mut sharedring_msg_receiver,
) -> c_int {
    msg_constructor!(socket MsgReceiver::create_with, new_receiver, sock, opts, out)
}

/// Accepts the message ring that the peer offers over `sock` (with
/// `sharedring_msg_sender_create`), after validating every value and descriptor
/// (`opts->max_msg` and `opts->max_region` are the limits).
///
/// # Safety
///
/// As [`sharedring_msg_receiver_create`].
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_accept(
    sock: c_int,
    opts: *const sharedring_options,
    out: *mut *mut sharedring_msg_receiver,
) -> c_int {
    msg_constructor!(socket MsgReceiver::accept_with, new_receiver, sock, opts, out)
}

/// Creates a message ring without a socket: this end goes to `*out`, and
/// `*offer` receives the values and three descriptors (now the caller's)
/// to move to the peer over a transport of your own (the peer attaches
/// with `sharedring_msg_sender_from_offer`). `liveness_fd` (negative: none) hangs up or
/// turns readable when the peer is gone.
///
/// # Safety
///
/// `liveness_fd` is negative or an open descriptor handed over; `opts` is
/// NULL or valid; `out` and `offer` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_create_offer(
    opts: *const sharedring_options,
    liveness_fd: c_int,
    out: *mut *mut sharedring_msg_receiver,
    offer: *mut sharedring_offer,
) -> c_int {
    msg_constructor!(create_offer MsgReceiver, new_receiver, opts, liveness_fd, out, offer)
}

/// Attaches to the message ring of `*offer` (made by the peer's
/// `sharedring_msg_sender_create_offer`), after validating every value and descriptor.
/// Takes the offer's three descriptors (closed on failure too).
///
/// # Safety
///
/// `offer` points to a readable `sharedring_offer` whose descriptors are
/// open and handed over; `liveness_fd` is negative or an open descriptor
/// handed over; `opts` is NULL or valid; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_from_offer(
    offer: *const sharedring_offer,
    opts: *const sharedring_options,
    liveness_fd: c_int,
    out: *mut *mut sharedring_msg_receiver,
) -> c_int {
    msg_constructor!(from_offer MsgReceiver, new_receiver, offer, opts, liveness_fd, out)
}

/// Frees a message sender, closing its stream cleanly: the receiver gets
/// `SHAREDRING_ERR_CLOSED` after it received everything (a process that
/// dies without freeing it is seen as `SHAREDRING_ERR_PEER_GONE`).
///
/// # Safety
///
/// `tx` is NULL or a live handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_free(tx: *mut sharedring_msg_sender) {
    if !tx.is_null() {
        // SAFETY: the caller's contract: a handle from `give`, freed once.
        let h = unsafe { Box::from_raw(tx) };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(h)));
    }
}

/// Frees a message receiver.
///
/// # Safety
///
/// `rx` is NULL or a live handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_free(rx: *mut sharedring_msg_receiver) {
    if !rx.is_null() {
        // SAFETY: the caller's contract: a handle from `give`, freed once.
        let h = unsafe { Box::from_raw(rx) };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(h)));
    }
}

/// Closes the stream and frees the sender: the receiver gets every
/// message, then `SHAREDRING_ERR_CLOSED`.
///
/// # Safety
///
/// `tx` is a live handle; it is freed by this call whatever it returns.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_close(tx: *mut sharedring_msg_sender) -> c_int {
    guard(|| {
        if tx.is_null() {
            return invalid("the handle is NULL");
        }
        // SAFETY: the caller's contract: a handle from `give`, freed once.
        let h = unsafe { Box::from_raw(tx) };
        h.tx.close()?;
        Ok(SHAREDRING_OK)
    })
}

/// The bytes of a message from C.
///
/// # Safety
///
/// `msg` is valid for `len` bytes (may be NULL if `len` is 0).
unsafe fn bytes<'a>(msg: *const c_void, len: usize) -> Result<&'a [u8], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if msg.is_null() {
        return invalid("the message is NULL");
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(msg.cast::<u8>(), len) })
}

/// Sends the `len` bytes at `msg` as one message if there is room now.
/// `SHAREDRING_AGAIN` if full.
///
/// # Safety
///
/// `tx` is a live handle; `msg` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_try_send(
    tx: *mut sharedring_msg_sender,
    msg: *const c_void,
    len: usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        h.reserved = None;
        // SAFETY: the caller's contract.
        let sent = h.tx.try_send(unsafe { bytes(msg, len) }?)?;
        Ok(if sent {
            SHAREDRING_OK
        } else {
            SHAREDRING_AGAIN
        })
    })
}

/// Sends the `len` bytes at `msg` as one message, blocking while the ring
/// is full, within `timeout_us`.
///
/// # Safety
///
/// As [`sharedring_msg_sender_try_send`].
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_send(
    tx: *mut sharedring_msg_sender,
    msg: *const c_void,
    len: usize,
    timeout_us: i64,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        h.reserved = None;
        // SAFETY: the caller's contract.
        h.tx.send(unsafe { bytes(msg, len) }?, timeout(timeout_us))?;
        Ok(SHAREDRING_OK)
    })
}

/// Reserves `len` bytes (blocking while full, within `timeout_us`), calls
/// `fill(ctx, ptr, len)` to write the message in place, and sends it.
///
/// # Safety
///
/// `tx` is a live handle; `fill` is a valid function that writes at most
/// `len` bytes at `ptr` and returns normally.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_send_with(
    tx: *mut sharedring_msg_sender,
    len: usize,
    timeout_us: i64,
    fill: sharedring_fill_fn,
    ctx: *mut c_void,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        h.reserved = None;
        let Some(fill) = fill else {
            return invalid("fill must not be NULL");
        };
        h.tx.send_with(len, timeout(timeout_us), |r| {
            // SAFETY: the reservation's `len` bytes are ours to write until
            // the commit; the caller's contract on `fill`.
            unsafe { fill(ctx, r.as_mut_ptr(), r.len()) }
        })?;
        Ok(SHAREDRING_OK)
    })
}

/// Reserves `len` bytes to write in place if there is room now (never
/// blocks): `*ptr` gets the 8-byte aligned payload. Publish with
/// [`sharedring_msg_sender_commit`]. `SHAREDRING_AGAIN` if full;
/// `SHAREDRING_ERR_PEER_GONE` if full and the peer is gone.
///
/// # Safety
///
/// `tx` is a live handle; `ptr` is valid for a write. The pointer stays
/// valid until the next call on `tx`.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_reserve(
    tx: *mut sharedring_msg_sender,
    len: usize,
    ptr: *mut *mut u8,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        required(ptr, "ptr")?;
        h.reserved = None;
        let p = match h.tx.producer_without_wake().reserve(len) {
            // Dropped without a commit: nothing is published.
            Ok(mut r) => r.as_mut_ptr(),
            Err(MsgPushError::Full) => {
                return if h.tx.is_peer_gone() {
                    Err(Error::PeerGone.into())
                } else {
                    Ok(SHAREDRING_AGAIN)
                }
            }
            Err(MsgPushError::TooLarge { len, max }) => {
                return Err(Error::MessageTooLarge { len, max }.into())
            }
            Err(MsgPushError::Corrupted(c)) => return Err(Error::Corrupted(c).into()),
        };
        // SAFETY: checked non-null, the caller's contract.
        unsafe { ptr.write(p) };
        h.reserved = Some(len);
        Ok(SHAREDRING_OK)
    })
}

/// Publishes the last reservation as a message of `len` bytes (at most
/// the reserved length) and wakes the receiver if it sleeps.
///
/// # Safety
///
/// `tx` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_commit(
    tx: *mut sharedring_msg_sender,
    len: usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        let Some(reserved) = h.reserved.take().filter(|&r| len <= r) else {
            return invalid(format!(
                "commit of {len} bytes without a reservation at least that long (any other \
                 call in between cancels it)"
            ));
        };
        // The same place again: our position has not moved, and the
        // receiver can only have freed more room since.
        let mut r =
            h.tx.producer_without_wake()
                .reserve(reserved)
                .map_err(|e| match e {
                    MsgPushError::Corrupted(c) => Fail::Ring(Error::Corrupted(c)),
                    e => Fail::Invalid(format!("commit: the reservation is gone ({e})")),
                })?;
        r.truncate(len);
        if r.commit() {
            h.tx.notifier().notify().map_err(Error::from)?;
        }
        Ok(SHAREDRING_OK)
    })
}

/// Receives the next message into `buf` (`cap` bytes) if one is there now;
/// `*len` gets its length. `SHAREDRING_AGAIN` if empty;
/// `SHAREDRING_ERR_BUFFER_TOO_SMALL` (the message stays; `*len` is its
/// length) if it does not fit; `SHAREDRING_ERR_CLOSED` /
/// `SHAREDRING_ERR_PEER_GONE` once drained and the sender closed / is gone.
///
/// # Safety
///
/// `rx` is a live handle; `buf` points to `cap` writable bytes; `len` is
/// NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_try_recv(
    rx: *mut sharedring_msg_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        h.shown = Shown::Nothing;
        // SAFETY: the caller's contract on `buf`.
        let buf = unsafe { bytes_mut(buf, cap) }?;
        match h.rx.try_recv_into(buf) {
            Ok(Some(n)) => {
                // SAFETY: the caller's contract on `len`.
                unsafe { put(len, n) };
                Ok(SHAREDRING_OK)
            }
            Ok(None) => Ok(SHAREDRING_AGAIN),
            Err(e) => {
                if let Error::BufferTooSmall { len: n, .. } = e {
                    // SAFETY: the caller's contract on `len`.
                    unsafe { put(len, n) };
                }
                Err(e.into())
            }
        }
    })
}

/// The caller's receive buffer.
///
/// # Safety
///
/// `buf` is valid for writes of `cap` bytes (may be NULL if `cap` is 0).
unsafe fn bytes_mut<'a>(buf: *mut c_void, cap: usize) -> Result<&'a mut [u8], Fail> {
    if cap == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() {
        return invalid("the buffer is NULL");
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), cap) })
}

/// Receives the next message into `buf`, blocking while the ring is empty,
/// within `timeout_us`; otherwise as [`sharedring_msg_receiver_try_recv`].
///
/// # Safety
///
/// As [`sharedring_msg_receiver_try_recv`].
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_recv(
    rx: *mut sharedring_msg_receiver,
    buf: *mut c_void,
    cap: usize,
    timeout_us: i64,
    len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        h.shown = Shown::Nothing;
        // SAFETY: the caller's contract on `buf`.
        let buf = unsafe { bytes_mut(buf, cap) }?;
        match h.rx.recv_into(buf, timeout(timeout_us)) {
            Ok(n) => {
                // SAFETY: the caller's contract on `len`.
                unsafe { put(len, n) };
                Ok(SHAREDRING_OK)
            }
            Err(e) => {
                if let Error::BufferTooSmall { len: n, .. } = e {
                    // SAFETY: the caller's contract on `len`.
                    unsafe { put(len, n) };
                }
                Err(e.into())
            }
        }
    })
}

/// Blocks until a message arrives (within `timeout_us`), calls
/// `read(ctx, ptr, len)` with it in place, then releases it.
///
/// # Safety
///
/// `rx` is a live handle; `read` is a valid function that reads at most
/// `len` bytes at `ptr` and returns normally.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_recv_with(
    rx: *mut sharedring_msg_receiver,
    timeout_us: i64,
    read: sharedring_read_fn,
    ctx: *mut c_void,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        h.shown = Shown::Nothing;
        let Some(read) = read else {
            return invalid("read must not be NULL");
        };
        h.rx.recv_with(timeout(timeout_us), |rec| {
            // SAFETY: the record's `len` bytes stay in the ring until the
            // release after this closure; the caller's contract on `read`.
            unsafe { read(ctx, rec.as_ptr(), rec.len()) }
        })?;
        Ok(SHAREDRING_OK)
    })
}

/// The next message in place, if one is there now (never blocks): `*ptr`
/// and `*len` get its 8-byte aligned payload. Free it with
/// [`sharedring_msg_receiver_release`]. `SHAREDRING_AGAIN` if empty;
/// `SHAREDRING_ERR_CLOSED` / `SHAREDRING_ERR_PEER_GONE` once drained and
/// the sender closed / is gone.
///
/// # Safety
///
/// `rx` is a live handle; `ptr` and `len` are valid for writes. The
/// pointer stays valid until the next call on `rx`; the peer may (wrongly)
/// write that memory: copy what you validate.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_read(
    rx: *mut sharedring_msg_receiver,
    ptr: *mut *const u8,
    len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        required(ptr, "ptr")?;
        required(len, "len")?;
        h.shown = Shown::Nothing;
        for _ in 0..2 {
            match h.rx.consumer_without_wake().read() {
                Ok(rec) => {
                    // SAFETY: checked non-null, the caller's contract.
                    unsafe {
                        ptr.write(rec.as_ptr());
                        len.write(rec.len());
                    }
                    // Dropped without a release: the message stays.
                    h.shown = Shown::InRing;
                    return Ok(SHAREDRING_OK);
                }
                Err(PopError::Corrupted(c)) => return Err(Error::Corrupted(c).into()),
                Err(_) => {}
            }
            // Empty. The facade's own receive into an empty buffer looks at
            // the peer's liveness (every so often) without taking a
            // message that does not fit: it takes only an empty one.
            match h.rx.try_recv_into(&mut []) {
                Ok(None) => return Ok(SHAREDRING_AGAIN),
                Ok(Some(_)) => {
                    // SAFETY: checked non-null, the caller's contract.
                    unsafe {
                        ptr.write(std::ptr::NonNull::<u64>::dangling().as_ptr().cast());
                        len.write(0);
                    }
                    h.shown = Shown::Taken;
                    return Ok(SHAREDRING_OK);
                }
                // A message arrived in between: show it in place.
                Err(Error::BufferTooSmall { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(SHAREDRING_AGAIN)
    })
}

/// Frees the message of the last [`sharedring_msg_receiver_read`] and
/// wakes the sender if it waits for room.
///
/// # Safety
///
/// `rx` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_release(
    rx: *mut sharedring_msg_receiver,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        let shown = std::mem::replace(&mut h.shown, Shown::Nothing);
        match shown {
            Shown::Nothing => invalid(
                "release without a message shown by sharedring_msg_receiver_read (any other \
                 call in between cancels it)",
            ),
            Shown::Taken => Ok(SHAREDRING_OK),
            Shown::InRing => {
                let wake = match h.rx.consumer_without_wake().read() {
                    Ok(rec) => rec.release(),
                    Err(PopError::Corrupted(c)) => return Err(Error::Corrupted(c).into()),
                    Err(_) => return invalid("release: the message is gone"),
                };
                if wake {
                    h.rx.notifier().notify().map_err(Error::from)?;
                }
                Ok(SHAREDRING_OK)
            }
        }
    })
}

/// The descriptor this sender sleeps on, for poll/epoll (see
/// [`sharedring_msg_sender_arm`]). Owned by the handle; do not close it.
///
/// # Safety
///
/// `h` is NULL (returns -1) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_fd(h: *const sharedring_msg_sender) -> c_int {
    quiet(-1, || {
        // SAFETY: the caller's contract.
        unsafe { h.as_ref() }.map_or(-1, |h| h.tx.waiter().as_raw_fd())
    })
}

/// The liveness descriptor (the handshake's socket), or -1: it hangs up
/// or turns readable when the peer is gone. Owned by the handle; do not
/// close or read it.
///
/// # Safety
///
/// `h` is NULL (returns -1) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_liveness_fd(
    h: *const sharedring_msg_sender,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { h.as_ref() }
        .and_then(|h| h.tx.liveness().map(|fd| fd.as_raw_fd()))
        .unwrap_or(-1)
}

/// 1 if the peer is gone, 0 if not, negative on error.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_is_peer_gone(
    h: *mut sharedring_msg_sender,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        Ok(h.tx.is_peer_gone() as c_int)
    })
}

/// The capacity in bytes (0 for NULL).
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_capacity(h: *const sharedring_msg_sender) -> usize {
    quiet(0, || {
        // SAFETY: the caller's contract.
        unsafe { h.as_ref() }.map_or(0, |h| h.tx.capacity_bytes())
    })
}

/// The largest message in bytes (0 for NULL).
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_max_msg(h: *const sharedring_msg_sender) -> usize {
    quiet(0, || {
        // SAFETY: the caller's contract.
        unsafe { h.as_ref() }.map_or(0, |h| h.tx.max_msg())
    })
}

/// For event loops: announces that this sender is about to sleep.
/// `SHAREDRING_OK`: poll the descriptor ([`sharedring_msg_sender_fd`]) for POLLIN (and
/// the liveness descriptor), then call [`sharedring_msg_sender_disarm`].
/// `SHAREDRING_READY`: ready now; do not poll. The sender waits for room for a message of the ring's maximum size.
/// A blocking call on the handle in between (which waits with an
/// announcement of its own) withdraws it: arm again before polling.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_arm(h: *mut sharedring_msg_sender) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        let check = {
            let max = h.tx.max_msg();
            // An event loop arms often: the end fences for its peer instead
            // of running the sleeper's barrier on every arm (a no-op after
            // the first arm).
            let p = h.tx.producer_without_wake();
            let _ = p.withdraw_sleeper_barrier();
            p.prepare_wait(max)
        };
        Ok(match check.map_err(Error::Corrupted)? {
            WaitCheck::Ready => SHAREDRING_READY,
            WaitCheck::Sleep => SHAREDRING_OK,
        })
    })
}

/// For event loops: withdraws the announcement of [`sharedring_msg_sender_arm`] and
/// drains the descriptor, after poll returned.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_disarm(h: *mut sharedring_msg_sender) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        h.tx.producer_without_wake().finish_wait();
        h.tx.waiter().try_wait().map_err(Error::from)?;
        Ok(SHAREDRING_OK)
    })
}

/// The descriptor this receiver sleeps on, for poll/epoll (see
/// [`sharedring_msg_receiver_arm`]). Owned by the handle; do not close it.
///
/// # Safety
///
/// `h` is NULL (returns -1) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_fd(h: *const sharedring_msg_receiver) -> c_int {
    quiet(-1, || {
        // SAFETY: the caller's contract.
        unsafe { h.as_ref() }.map_or(-1, |h| h.rx.waiter().as_raw_fd())
    })
}

/// The liveness descriptor (the handshake's socket), or -1: it hangs up
/// or turns readable when the peer is gone. Owned by the handle; do not
/// close or read it.
///
/// # Safety
///
/// `h` is NULL (returns -1) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_liveness_fd(
    h: *const sharedring_msg_receiver,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { h.as_ref() }
        .and_then(|h| h.rx.liveness().map(|fd| fd.as_raw_fd()))
        .unwrap_or(-1)
}

/// 1 if the peer is gone, 0 if not, negative on error.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_is_peer_gone(
    h: *mut sharedring_msg_receiver,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        Ok(h.rx.is_peer_gone() as c_int)
    })
}

/// The capacity in bytes (0 for NULL).
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_capacity(
    h: *const sharedring_msg_receiver,
) -> usize {
    // SAFETY: the caller's contract.
    unsafe { h.as_ref() }.map_or(0, |h| h.rx.capacity_bytes())
}

/// The largest message in bytes (0 for NULL).
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_max_msg(
    h: *const sharedring_msg_receiver,
) -> usize {
    // SAFETY: the caller's contract.
    unsafe { h.as_ref() }.map_or(0, |h| h.rx.max_msg())
}

/// For event loops: announces that this receiver is about to sleep.
/// `SHAREDRING_OK`: poll the descriptor ([`sharedring_msg_receiver_fd`]) for POLLIN (and
/// the liveness descriptor), then call [`sharedring_msg_receiver_disarm`].
/// `SHAREDRING_READY`: ready now; do not poll.
/// A blocking call on the handle in between (which waits with an
/// announcement of its own) withdraws it: arm again before polling.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_arm(h: *mut sharedring_msg_receiver) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        // As in `sharedring_msg_sender_arm`: no barrier per arm.
        let c = h.rx.consumer_without_wake();
        let _ = c.withdraw_sleeper_barrier();
        let check = c.prepare_wait();
        Ok(match check.map_err(Error::Corrupted)? {
            WaitCheck::Ready => SHAREDRING_READY,
            WaitCheck::Sleep => SHAREDRING_OK,
        })
    })
}

/// For event loops: withdraws the announcement of [`sharedring_msg_receiver_arm`] and
/// drains the descriptor, after poll returned.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_disarm(h: *mut sharedring_msg_receiver) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        h.rx.consumer_without_wake().finish_wait();
        h.rx.waiter().try_wait().map_err(Error::from)?;
        Ok(SHAREDRING_OK)
    })
}

/// Sleeps until `ready` (announce, fence and re-check: `prepare`) holds,
/// the deadline passes or the peer is gone, on the end's eventfd and
/// liveness socket.
fn park(
    waiter: &sharedring::eventfd_notify::Waiter,
    liveness: Option<std::os::fd::BorrowedFd<'_>>,
    timeout_us: i64,
    mut prepare: impl FnMut() -> Result<WaitCheck, sharedring::spsc_core::Corruption>,
    mut finish: impl FnMut(),
) -> Result<c_int, Fail> {
    use sharedring::eventfd_notify::Wake;
    let deadline = timeout(timeout_us).and_then(|t| std::time::Instant::now().checked_add(t));
    loop {
        if prepare().map_err(Error::Corrupted)? == WaitCheck::Ready {
            return Ok(SHAREDRING_OK);
        }
        let left = match deadline {
            Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => {
                    finish();
                    return Err(Error::TimedOut { done: 0 }.into());
                }
            },
            None => None,
        };
        let woke = match liveness {
            Some(sock) => waiter.wait_with_liveness(sock, left),
            None => waiter.wait(left),
        };
        finish();
        match woke.map_err(Error::from)? {
            Wake::Woken => {}
            Wake::TimedOut => return Err(Error::TimedOut { done: 0 }.into()),
            Wake::PeerGone => return Err(Error::PeerGone.into()),
        }
    }
}

/// Blocks until a message of `len` bytes fits, `timeout_us` passes
/// (`SHAREDRING_ERR_TIMED_OUT`), or the peer is gone; then
/// [`sharedring_msg_sender_reserve`] succeeds. For the in-place sends of a
/// blocking program.
///
/// # Safety
///
/// `tx` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_sender_wait_room(
    tx: *mut sharedring_msg_sender,
    len: usize,
    timeout_us: i64,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        h.reserved = None;
        let max = h.tx.max_msg();
        if len > max {
            return Err(Error::MessageTooLarge { len, max }.into());
        }
        let tx = std::cell::RefCell::new(&mut h.tx);
        let (waiter, live) = {
            // The descriptors are duplicated for the wait: the half is
            // borrowed mutably by the re-checks meanwhile.
            let t = tx.borrow();
            (
                t.waiter().try_clone().map_err(Error::from)?,
                t.liveness().map(|fd| fd.try_clone_to_owned()).transpose()?,
            )
        };
        use std::os::fd::AsFd;
        park(
            &waiter,
            live.as_ref().map(|l| l.as_fd()),
            timeout_us,
            || tx.borrow_mut().producer_without_wake().prepare_wait(len),
            || tx.borrow_mut().producer_without_wake().finish_wait(),
        )
    })
}

/// Blocks until a message is there, `timeout_us` passes
/// (`SHAREDRING_ERR_TIMED_OUT`), or the peer is gone; then
/// [`sharedring_msg_receiver_read`] shows the message (or, once the ring
/// is drained, reports the end of the stream). For the in-place reads of a
/// blocking program.
///
/// # Safety
///
/// `rx` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_msg_receiver_wait_data(
    rx: *mut sharedring_msg_receiver,
    timeout_us: i64,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        h.shown = Shown::Nothing;
        let rx = std::cell::RefCell::new(&mut h.rx);
        let (waiter, live) = {
            // The descriptors are duplicated for the wait: the half is
            // borrowed mutably by the re-checks meanwhile.
            let r = rx.borrow();
            (
                r.waiter().try_clone().map_err(Error::from)?,
                r.liveness().map(|fd| fd.try_clone_to_owned()).transpose()?,
            )
        };
        use std::os::fd::AsFd;
        match park(
            &waiter,
            live.as_ref().map(|l| l.as_fd()),
            timeout_us,
            || rx.borrow_mut().consumer_without_wake().prepare_wait(),
            || rx.borrow_mut().consumer_without_wake().finish_wait(),
        ) {
            // Gone: let the facade know (so that the next read reports the
            // end once the ring is drained), and let the caller look.
            Err(Fail::Ring(Error::PeerGone)) => {
                rx.borrow_mut().is_peer_gone();
                Ok(SHAREDRING_OK)
            }
            other => other,
        }
    })
}
