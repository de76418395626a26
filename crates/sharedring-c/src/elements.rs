//! Element rings: [`sharedring_sender`] and [`sharedring_receiver`], for
//! one of the built-in element types chosen at run time.

use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use sharedring::spsc_core::WaitCheck;
use sharedring::{Error, Receiver, Sender};

use crate::error::*;
use crate::offer::{liveness, sharedring_offer};
use crate::options::{convert, sharedring_options, Unit};

/// The element type of an element ring. Both ends must use the same one:
/// the handshake refuses a ring of another type.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sharedring_elem {
    /// `uint8_t` (bytes).
    SHAREDRING_ELEM_U8 = 1,
    /// `uint16_t`.
    SHAREDRING_ELEM_U16 = 2,
    /// `uint32_t`.
    SHAREDRING_ELEM_U32 = 3,
    /// `uint64_t`.
    SHAREDRING_ELEM_U64 = 4,
    /// `int8_t`.
    SHAREDRING_ELEM_I8 = 5,
    /// `int16_t`.
    SHAREDRING_ELEM_I16 = 6,
    /// `int32_t`.
    SHAREDRING_ELEM_I32 = 7,
    /// `int64_t`.
    SHAREDRING_ELEM_I64 = 8,
    /// `float`.
    SHAREDRING_ELEM_F32 = 9,
    /// `double`.
    SHAREDRING_ELEM_F64 = 10,
}

/// Up to two runs of slots to write or read in place (two when the chunk
/// wraps around the ring's end). Lengths count elements.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sharedring_chunk {
    /// The first run.
    pub ptr0: *mut c_void,
    /// Elements in the first run.
    pub len0: usize,
    /// The second run (NULL if none).
    pub ptr1: *mut c_void,
    /// Elements in the second run.
    pub len1: usize,
}

/// The typed sending end, one variant per element type.
pub(crate) enum AnySender {
    U8(Sender<u8>),
    U16(Sender<u16>),
    U32(Sender<u32>),
    U64(Sender<u64>),
    I8(Sender<i8>),
    I16(Sender<i16>),
    I32(Sender<i32>),
    I64(Sender<i64>),
    F32(Sender<f32>),
    F64(Sender<f64>),
}

/// The typed receiving end, one variant per element type.
pub(crate) enum AnyReceiver {
    U8(Receiver<u8>),
    U16(Receiver<u16>),
    U32(Receiver<u32>),
    U64(Receiver<u64>),
    I8(Receiver<i8>),
    I16(Receiver<i16>),
    I32(Receiver<i32>),
    I64(Receiver<i64>),
    F32(Receiver<f32>),
    F64(Receiver<f64>),
}

/// Runs `$body` with the element type `$T` of `$elem` bound.
macro_rules! by_elem {
    ($elem:expr, $T:ident => $body:expr) => {
        match $elem {
            sharedring_elem::SHAREDRING_ELEM_U8 => {
                type $T = u8;
                $body
            }
            sharedring_elem::SHAREDRING_ELEM_U16 => {
                type $T = u16;
                $body
            }
            sharedring_elem::SHAREDRING_ELEM_U32 => {
                type $T = u32;
                $body
            }
            sharedring_elem::SHAREDRING_ELEM_U64 => {
                type $T = u64;
                $body
            }
            sharedring_elem::SHAREDRING_ELEM_I8 => {
                type $T = i8;
                $body
            }
            sharedring_elem::SHAREDRING_ELEM_I16 => {
                type $T = i16;
                $body
            }
            sharedring_elem::SHAREDRING_ELEM_I32 => {
                type $T = i32;
                $body
            }
            sharedring_elem::SHAREDRING_ELEM_I64 => {
                type $T = i64;
                $body
            }
            sharedring_elem::SHAREDRING_ELEM_F32 => {
                type $T = f32;
                $body
            }
            sharedring_elem::SHAREDRING_ELEM_F64 => {
                type $T = f64;
                $body
            }
        }
    };
}

/// Runs `$body` with `$h` bound to the typed end and `$T` to its element
/// type.
macro_rules! with {
    ($any:ident, $e:expr, $h:ident: $T:ident => $body:expr) => {
        match $e {
            $any::U8($h) => {
                #[allow(dead_code)]
                type $T = u8;
                $body
            }
            $any::U16($h) => {
                #[allow(dead_code)]
                type $T = u16;
                $body
            }
            $any::U32($h) => {
                #[allow(dead_code)]
                type $T = u32;
                $body
            }
            $any::U64($h) => {
                #[allow(dead_code)]
                type $T = u64;
                $body
            }
            $any::I8($h) => {
                #[allow(dead_code)]
                type $T = i8;
                $body
            }
            $any::I16($h) => {
                #[allow(dead_code)]
                type $T = i16;
                $body
            }
            $any::I32($h) => {
                #[allow(dead_code)]
                type $T = i32;
                $body
            }
            $any::I64($h) => {
                #[allow(dead_code)]
                type $T = i64;
                $body
            }
            $any::F32($h) => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            $any::F64($h) => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
        }
    };
}

impl From<Sender<u8>> for AnySender {
    fn from(s: Sender<u8>) -> Self {
        Self::U8(s)
    }
}

impl From<Receiver<u8>> for AnyReceiver {
    fn from(r: Receiver<u8>) -> Self {
        Self::U8(r)
    }
}

impl From<Sender<u16>> for AnySender {
    fn from(s: Sender<u16>) -> Self {
        Self::U16(s)
    }
}

impl From<Receiver<u16>> for AnyReceiver {
    fn from(r: Receiver<u16>) -> Self {
        Self::U16(r)
    }
}

impl From<Sender<u32>> for AnySender {
    fn from(s: Sender<u32>) -> Self {
        Self::U32(s)
    }
}

impl From<Receiver<u32>> for AnyReceiver {
    fn from(r: Receiver<u32>) -> Self {
        Self::U32(r)
    }
}

impl From<Sender<u64>> for AnySender {
    fn from(s: Sender<u64>) -> Self {
        Self::U64(s)
    }
}

impl From<Receiver<u64>> for AnyReceiver {
    fn from(r: Receiver<u64>) -> Self {
        Self::U64(r)
    }
}

impl From<Sender<i8>> for AnySender {
    fn from(s: Sender<i8>) -> Self {
        Self::I8(s)
    }
}

impl From<Receiver<i8>> for AnyReceiver {
    fn from(r: Receiver<i8>) -> Self {
        Self::I8(r)
    }
}

impl From<Sender<i16>> for AnySender {
    fn from(s: Sender<i16>) -> Self {
        Self::I16(s)
    }
}

impl From<Receiver<i16>> for AnyReceiver {
    fn from(r: Receiver<i16>) -> Self {
        Self::I16(r)
    }
}

impl From<Sender<i32>> for AnySender {
    fn from(s: Sender<i32>) -> Self {
        Self::I32(s)
    }
}

impl From<Receiver<i32>> for AnyReceiver {
    fn from(r: Receiver<i32>) -> Self {
        Self::I32(r)
    }
}

impl From<Sender<i64>> for AnySender {
    fn from(s: Sender<i64>) -> Self {
        Self::I64(s)
    }
}

impl From<Receiver<i64>> for AnyReceiver {
    fn from(r: Receiver<i64>) -> Self {
        Self::I64(r)
    }
}

impl From<Sender<f32>> for AnySender {
    fn from(s: Sender<f32>) -> Self {
        Self::F32(s)
    }
}

impl From<Receiver<f32>> for AnyReceiver {
    fn from(r: Receiver<f32>) -> Self {
        Self::F32(r)
    }
}

impl From<Sender<f64>> for AnySender {
    fn from(s: Sender<f64>) -> Self {
        Self::F64(s)
    }
}

impl From<Receiver<f64>> for AnyReceiver {
    fn from(r: Receiver<f64>) -> Self {
        Self::F64(r)
    }
}

/// The sending end of an element ring (opaque).
pub struct sharedring_sender {
    tx: AnySender,
    /// Slots shown by the last `write_chunk`, which `commit` may publish.
    chunk: usize,
}

/// The receiving end of an element ring (opaque).
pub struct sharedring_receiver {
    rx: AnyReceiver,
    /// Slots shown by the last `read_chunk`, which `release` may free.
    chunk: usize,
}

/// The element type from its C code, checked (C may pass any integer).
fn elem_of(code: c_int) -> Result<sharedring_elem, Fail> {
    use sharedring_elem::*;
    Ok(match code {
        1 => SHAREDRING_ELEM_U8,
        2 => SHAREDRING_ELEM_U16,
        3 => SHAREDRING_ELEM_U32,
        4 => SHAREDRING_ELEM_U64,
        5 => SHAREDRING_ELEM_I8,
        6 => SHAREDRING_ELEM_I16,
        7 => SHAREDRING_ELEM_I32,
        8 => SHAREDRING_ELEM_I64,
        9 => SHAREDRING_ELEM_F32,
        10 => SHAREDRING_ELEM_F64,
        other => {
            return invalid(format!(
                "unknown element type {other} (see sharedring_elem)"
            ))
        }
    })
}

/// A slice of `n` elements of `T` at `ptr`, checked for null and
/// alignment.
///
/// # Safety
///
/// `ptr` is valid for reads of `n` elements of `T` (if not null).
unsafe fn elems<'a, T>(ptr: *const c_void, n: usize) -> Result<&'a [T], Fail> {
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() || (ptr as usize) % std::mem::align_of::<T>() != 0 {
        return invalid(format!(
            "the buffer {ptr:?} is NULL or not aligned to {} bytes",
            std::mem::align_of::<T>()
        ));
    }
    // SAFETY: the caller's contract, null and alignment checked.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<T>(), n) })
}

/// As [`elems`], mutable.
///
/// # Safety
///
/// `ptr` is valid for writes of `n` elements of `T` (if not null), and
/// nothing else refers to that memory during the call.
unsafe fn elems_mut<'a, T>(ptr: *mut c_void, n: usize) -> Result<&'a mut [T], Fail> {
    if n == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() || (ptr as usize) % std::mem::align_of::<T>() != 0 {
        return invalid(format!(
            "the buffer {ptr:?} is NULL or not aligned to {} bytes",
            std::mem::align_of::<T>()
        ));
    }
    // SAFETY: the caller's contract, null and alignment checked.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<T>(), n) })
}

/// A handle from its pointer.
///
/// # Safety
///
/// `h` is null or a live handle from this library, not used elsewhere
/// during the call.
pub(crate) unsafe fn handle<'a, H>(h: *mut H) -> Result<&'a mut H, Fail> {
    // SAFETY: the caller's contract.
    match unsafe { h.as_mut() } {
        Some(h) => Ok(h),
        None => invalid("the handle is NULL"),
    }
}

/// Boxes a new handle into `*out`.
///
/// # Safety
///
/// `out` is valid for a write of a pointer.
pub(crate) unsafe fn give<H>(out: *mut *mut H, h: H) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { out.write(Box::into_raw(Box::new(h))) };
    SHAREDRING_OK
}

/// A Unix stream socket from a descriptor the caller hands over.
pub(crate) fn socket(fd: RawFd) -> Result<UnixStream, Fail> {
    Ok(UnixStream::from(own_fd(fd, "socket")?))
}

/// A timeout's "done" count from a facade error, for `send`.
fn sent_before(e: &Error) -> usize {
    match e {
        Error::TimedOut { done } => *done,
        _ => 0,
    }
}

/// The bodies of the four constructors of an element-ring end (written
/// once; each `extern "C"` signature is written out for cbindgen, which
/// does not expand macros).
macro_rules! elem_constructor {
    (socket $rust:ident::$call:ident, $any:ident, $handle:ident, $sock:ident, $elem:ident, $opts:ident, $out:ident) => {
        guard(|| {
            let sock = socket($sock)?;
            required($out, "out")?;
            let elem = elem_of($elem)?;
            // SAFETY: the caller's contract on `opts`.
            let opts = unsafe { convert($opts, Unit::Elements) }?;
            let end: $any = by_elem!(elem, T => $rust::<T>::$call(sock, &opts)?.into());
            // SAFETY: `out` checked non-null, the caller's contract.
            Ok(unsafe { give($out, $handle::new(end)) })
        })
    };
    (create_offer $rust:ident, $any:ident, $handle:ident, $elem:ident, $opts:ident, $live:ident, $out:ident, $offer:ident) => {
        guard(|| {
            let live = liveness($live)?;
            required($out, "out")?;
            required($offer, "offer")?;
            let elem = elem_of($elem)?;
            // SAFETY: the caller's contract on `opts`.
            let opts = unsafe { convert($opts, Unit::Elements) }?;
            let (end, o): ($any, _) = by_elem!(elem, T => {
                let (end, o) = $rust::<T>::create_offer(&opts, live)?;
                (end.into(), o)
            });
            // SAFETY: checked non-null, the caller's contract.
            unsafe { $offer.write(sharedring_offer::export(o)) };
            // SAFETY: as above.
            Ok(unsafe { give($out, $handle::new(end)) })
        })
    };
    (from_offer $rust:ident, $any:ident, $handle:ident, $offer:ident, $elem:ident, $opts:ident, $live:ident, $out:ident) => {
        guard(|| {
            if $offer.is_null() {
                return invalid("offer must not be NULL");
            }
            // SAFETY: checked non-null, the caller's contract.
            let o = unsafe { $offer.read() }.import()?;
            let live = liveness($live)?;
            required($out, "out")?;
            let elem = elem_of($elem)?;
            // SAFETY: the caller's contract on `opts`.
            let opts = unsafe { convert($opts, Unit::Elements) }?;
            let end: $any = by_elem!(elem, T => $rust::<T>::from_offer(o, &opts, live)?.into());
            // SAFETY: checked non-null, the caller's contract.
            Ok(unsafe { give($out, $handle::new(end)) })
        })
    };
}

impl sharedring_sender {
    fn new(tx: AnySender) -> Self {
        Self { tx, chunk: 0 }
    }
}

impl sharedring_receiver {
    fn new(rx: AnyReceiver) -> Self {
        Self { rx, chunk: 0 }
    }
}

/// Creates an element ring of `elem` and offers it to the peer over the
/// connected Unix stream socket `sock`; the peer accepts it with
/// `sharedring_receiver_accept`. Blocks until the peer accepted or refused (within the
/// handshake timeout). The socket stays with the ring as its liveness
/// channel. `SHAREDRING_ERR_REFUSED` with `sharedring_last_refusal()` if
/// the peer refused.
///
/// # Safety
///
/// `sock` is an open descriptor the caller owns and hands over (it is
/// closed on failure too); `opts` is NULL or points to a
/// `sharedring_options`; `out` is valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_create(
    sock: c_int,
    elem: c_int,
    opts: *const sharedring_options,
    out: *mut *mut sharedring_sender,
) -> c_int {
    elem_constructor!(socket Sender::create_with, AnySender, sharedring_sender, sock, elem, opts, out)
}

/// Accepts the element ring of `elem` that the peer offers over `sock`
/// (with `sharedring_receiver_create`), after validating every value and descriptor
/// against what this side expects.
///
/// # Safety
///
/// As [`sharedring_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_accept(
    sock: c_int,
    elem: c_int,
    opts: *const sharedring_options,
    out: *mut *mut sharedring_sender,
) -> c_int {
    elem_constructor!(socket Sender::accept_with, AnySender, sharedring_sender, sock, elem, opts, out)
}

/// Creates an element ring of `elem` without a socket: this end goes to
/// `*out`, and `*offer` receives the values and three descriptors (now the
/// caller's) to move to the peer over a transport of your own (the peer
/// attaches with `sharedring_receiver_from_offer`). `liveness_fd` (negative: none) is a
/// descriptor that hangs up or turns readable when the peer is gone (a
/// socket, a pidfd).
///
/// # Safety
///
/// `liveness_fd` is negative or an open descriptor handed over; `opts` is
/// NULL or valid; `out` and `offer` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_create_offer(
    elem: c_int,
    opts: *const sharedring_options,
    liveness_fd: c_int,
    out: *mut *mut sharedring_sender,
    offer: *mut sharedring_offer,
) -> c_int {
    elem_constructor!(create_offer Sender, AnySender, sharedring_sender, elem, opts, liveness_fd, out, offer)
}

/// Attaches to the element ring of `*offer` (made by the peer's
/// `sharedring_receiver_create_offer`), after validating every value and descriptor.
/// Takes the offer's three descriptors (closed on failure too).
///
/// # Safety
///
/// `offer` points to a readable `sharedring_offer` whose descriptors are
/// open and handed over; `liveness_fd` is negative or an open descriptor
/// handed over; `opts` is NULL or valid; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_from_offer(
    offer: *const sharedring_offer,
    elem: c_int,
    opts: *const sharedring_options,
    liveness_fd: c_int,
    out: *mut *mut sharedring_sender,
) -> c_int {
    elem_constructor!(from_offer Sender, AnySender, sharedring_sender, offer, elem, opts, liveness_fd, out)
}

/// Creates an element ring of `elem` and offers it to the peer over the
/// connected Unix stream socket `sock`; the peer accepts it with
/// `sharedring_sender_accept`. Blocks until the peer accepted or refused (within the
/// handshake timeout). The socket stays with the ring as its liveness
/// channel. `SHAREDRING_ERR_REFUSED` with `sharedring_last_refusal()` if
/// the peer refused.
///
/// # Safety
///
/// `sock` is an open descriptor the caller owns and hands over (it is
/// closed on failure too); `opts` is NULL or points to a
/// `sharedring_options`; `out` is valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_create(
    sock: c_int,
    elem: c_int,
    opts: *const sharedring_options,
    out: *mut *mut sharedring_receiver,
) -> c_int {
    elem_constructor!(socket Receiver::create_with, AnyReceiver, sharedring_receiver, sock, elem, opts, out)
}

/// Accepts the element ring of `elem` that the peer offers over `sock`
/// (with `sharedring_sender_create`), after validating every value and descriptor
/// against what this side expects.
///
/// # Safety
///
/// As [`sharedring_receiver_create`].
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_accept(
    sock: c_int,
    elem: c_int,
    opts: *const sharedring_options,
    out: *mut *mut sharedring_receiver,
) -> c_int {
    elem_constructor!(socket Receiver::accept_with, AnyReceiver, sharedring_receiver, sock, elem, opts, out)
}

/// Creates an element ring of `elem` without a socket: this end goes to
/// `*out`, and `*offer` receives the values and three descriptors (now the
/// caller's) to move to the peer over a transport of your own (the peer
/// attaches with `sharedring_sender_from_offer`). `liveness_fd` (negative: none) is a
/// descriptor that hangs up or turns readable when the peer is gone (a
/// socket, a pidfd).
///
/// # Safety
///
/// `liveness_fd` is negative or an open descriptor handed over; `opts` is
/// NULL or valid; `out` and `offer` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_create_offer(
    elem: c_int,
    opts: *const sharedring_options,
    liveness_fd: c_int,
    out: *mut *mut sharedring_receiver,
    offer: *mut sharedring_offer,
) -> c_int {
    elem_constructor!(create_offer Receiver, AnyReceiver, sharedring_receiver, elem, opts, liveness_fd, out, offer)
}

/// Attaches to the element ring of `*offer` (made by the peer's
/// `sharedring_sender_create_offer`), after validating every value and descriptor.
/// Takes the offer's three descriptors (closed on failure too).
///
/// # Safety
///
/// `offer` points to a readable `sharedring_offer` whose descriptors are
/// open and handed over; `liveness_fd` is negative or an open descriptor
/// handed over; `opts` is NULL or valid; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_from_offer(
    offer: *const sharedring_offer,
    elem: c_int,
    opts: *const sharedring_options,
    liveness_fd: c_int,
    out: *mut *mut sharedring_receiver,
) -> c_int {
    elem_constructor!(from_offer Receiver, AnyReceiver, sharedring_receiver, offer, elem, opts, liveness_fd, out)
}

/// Frees a sender, closing its stream cleanly: the receiver gets
/// `SHAREDRING_ERR_CLOSED` after it received everything (a process that
/// dies without freeing it is seen as `SHAREDRING_ERR_PEER_GONE`).
///
/// # Safety
///
/// `tx` is NULL or a live sender handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_free(tx: *mut sharedring_sender) {
    if !tx.is_null() {
        // SAFETY: the caller's contract: a handle from `give`, freed once.
        let h = unsafe { Box::from_raw(tx) };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(h)));
    }
}

/// Frees a receiver.
///
/// # Safety
///
/// `rx` is NULL or a live receiver handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_free(rx: *mut sharedring_receiver) {
    if !rx.is_null() {
        // SAFETY: the caller's contract: a handle from `give`, freed once.
        let h = unsafe { Box::from_raw(rx) };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(h)));
    }
}

/// Closes the stream and frees the sender: the receiver gets everything
/// sent, then `SHAREDRING_ERR_CLOSED` (end of stream).
///
/// # Safety
///
/// `tx` is a live sender handle; it is freed by this call whatever it
/// returns, and must not be used again.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_close(tx: *mut sharedring_sender) -> c_int {
    guard(|| {
        if tx.is_null() {
            return invalid("the handle is NULL");
        }
        // SAFETY: the caller's contract: a handle from `give`, freed once.
        let h = unsafe { Box::from_raw(tx) };
        with!(AnySender, h.tx, s: T => s.close()?);
        Ok(SHAREDRING_OK)
    })
}

/// Sends as many of the `n` elements at `src` as fit now; `*sent` (if not
/// NULL) gets how many. `SHAREDRING_AGAIN` if none fit (full).
///
/// # Safety
///
/// `tx` is a live sender; `src` points to `n` readable elements of the
/// ring's type, aligned for it (may be NULL if `n` is 0); `sent` is NULL
/// or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_try_send(
    tx: *mut sharedring_sender,
    src: *const c_void,
    n: usize,
    sent: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        h.chunk = 0;
        // SAFETY: the caller's contract on `src`.
        let done = with!(AnySender, &mut h.tx, s: T => s.try_send(unsafe { elems::<T>(src, n) }?)?);
        // SAFETY: the caller's contract on `sent`.
        unsafe { put(sent, done) };
        Ok(if done == 0 && n > 0 {
            SHAREDRING_AGAIN
        } else {
            SHAREDRING_OK
        })
    })
}

/// Sends all `n` elements at `src`, blocking while the ring is full, until
/// done, `timeout_us` passes (`SHAREDRING_ERR_TIMED_OUT`; `*sent` says how
/// many went), or the peer is gone.
///
/// # Safety
///
/// As [`sharedring_sender_try_send`].
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_send(
    tx: *mut sharedring_sender,
    src: *const c_void,
    n: usize,
    timeout_us: i64,
    sent: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        h.chunk = 0;
        // SAFETY: the caller's contract on `src`.
        let r = with!(AnySender, &mut h.tx, s: T => s.send(unsafe { elems::<T>(src, n) }?, timeout(timeout_us)));
        // SAFETY: the caller's contract on `sent`.
        unsafe { put(sent, r.as_ref().map_or_else(sent_before, |_| n)) };
        r?;
        Ok(SHAREDRING_OK)
    })
}

/// Blocks until at least `want` slots are free (at most the capacity),
/// the timeout passes, or the peer is gone.
///
/// # Safety
///
/// `tx` is a live sender.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_wait_writable(
    tx: *mut sharedring_sender,
    want: usize,
    timeout_us: i64,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        with!(AnySender, &mut h.tx, s: T => s.wait_writable(want, timeout(timeout_us))?);
        Ok(SHAREDRING_OK)
    })
}

/// Up to `max` free slots to write in place, in `*chunk` (never blocks).
/// Write them, then publish the first `n` with
/// [`sharedring_sender_commit`]. `SHAREDRING_AGAIN` if the ring is full;
/// `SHAREDRING_ERR_PEER_GONE` if it is full and the peer is gone.
///
/// # Safety
///
/// `tx` is a live sender; `chunk` is valid for a write. The pointers stay
/// valid until the next call on `tx`; the peer maps that memory too.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_write_chunk(
    tx: *mut sharedring_sender,
    max: usize,
    chunk: *mut sharedring_chunk,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        required(chunk, "chunk")?;
        h.chunk = 0;
        let c = with!(AnySender, &mut h.tx, s: T => {
            let mut c = s.write_chunk(max)?;
            let (mut a, mut b) = c.runs();
            sharedring_chunk {
                ptr0: a.as_mut_ptr().cast(),
                len0: a.len(),
                ptr1: if b.is_empty() { std::ptr::null_mut() } else { b.as_mut_ptr().cast() },
                len1: b.len(),
            }
            // Dropped without a commit: nothing is published yet.
        });
        // SAFETY: checked non-null, the caller's contract.
        unsafe { chunk.write(c) };
        h.chunk = c.len0 + c.len1;
        if h.chunk == 0 && max > 0 {
            let gone = with!(AnySender, &mut h.tx, s: T => s.is_peer_gone());
            return if gone {
                Err(Error::PeerGone.into())
            } else {
                Ok(SHAREDRING_AGAIN)
            };
        }
        Ok(SHAREDRING_OK)
    })
}

/// Publishes the first `n` slots of the last chunk of
/// [`sharedring_sender_write_chunk`] and wakes the receiver if it sleeps.
///
/// # Safety
///
/// `tx` is a live sender.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_commit(tx: *mut sharedring_sender, n: usize) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx) }?;
        if n > h.chunk {
            return invalid(format!(
                "commit of {n} slots, but the last write_chunk showed {} (and any other call \
                 in between cancels it)",
                h.chunk
            ));
        }
        h.chunk = 0;
        // The same slots again: our position has not moved, and the
        // receiver can only have freed more room since.
        with!(AnySender, &mut h.tx, s: T => s.write_chunk(n)?.commit(n)?);
        Ok(SHAREDRING_OK)
    })
}

/// Receives up to `cap` elements into `dst` (as many as are there now);
/// `*got` gets how many. `SHAREDRING_AGAIN` if the ring is empty;
/// `SHAREDRING_ERR_CLOSED` / `SHAREDRING_ERR_PEER_GONE` once the ring is
/// drained and the sender closed its stream / is gone.
///
/// # Safety
///
/// `rx` is a live receiver; `dst` points to `cap` writable elements of the
/// ring's type, aligned for it; `got` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_try_recv(
    rx: *mut sharedring_receiver,
    dst: *mut c_void,
    cap: usize,
    got: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        h.chunk = 0;
        // SAFETY: the caller's contract on `dst`.
        let n = with!(AnyReceiver, &mut h.rx, r: T => r.try_recv(unsafe { elems_mut::<T>(dst, cap) }?)?);
        // SAFETY: the caller's contract on `got`.
        unsafe { put(got, n) };
        Ok(if n == 0 && cap > 0 {
            SHAREDRING_AGAIN
        } else {
            SHAREDRING_OK
        })
    })
}

/// Receives at least one element into `dst` (up to `cap`), blocking while
/// the ring is empty, within `timeout_us`.
///
/// # Safety
///
/// As [`sharedring_receiver_try_recv`].
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_recv(
    rx: *mut sharedring_receiver,
    dst: *mut c_void,
    cap: usize,
    timeout_us: i64,
    got: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        h.chunk = 0;
        // SAFETY: the caller's contract on `dst`.
        let n = with!(AnyReceiver, &mut h.rx, r: T => r.recv(unsafe { elems_mut::<T>(dst, cap) }?, timeout(timeout_us))?);
        // SAFETY: the caller's contract on `got`.
        unsafe { put(got, n) };
        Ok(SHAREDRING_OK)
    })
}

/// Blocks until data is there, the timeout passes, or the peer is gone
/// (and the ring drained).
///
/// # Safety
///
/// `rx` is a live receiver.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_wait_readable(
    rx: *mut sharedring_receiver,
    timeout_us: i64,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        with!(AnyReceiver, &mut h.rx, r: T => r.wait_readable(timeout(timeout_us))?);
        Ok(SHAREDRING_OK)
    })
}

/// Up to `max` filled slots to read in place, in `*chunk` (never blocks);
/// free the first `n` with [`sharedring_receiver_release`].
/// `SHAREDRING_AGAIN` if empty; `SHAREDRING_ERR_CLOSED` /
/// `SHAREDRING_ERR_PEER_GONE` if empty and the sender closed or is gone.
///
/// # Safety
///
/// `rx` is a live receiver; `chunk` is valid for a write. The pointers
/// stay valid until the next call on `rx`; the peer may (wrongly) write
/// that memory: copy what you validate.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_read_chunk(
    rx: *mut sharedring_receiver,
    max: usize,
    chunk: *mut sharedring_chunk,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        required(chunk, "chunk")?;
        h.chunk = 0;
        let c = with!(AnyReceiver, &mut h.rx, r: T => {
            let c = r.read_chunk(max)?;
            let (a, b) = c.runs();
            sharedring_chunk {
                ptr0: a.as_ptr().cast_mut().cast(),
                len0: a.len(),
                ptr1: if b.is_empty() { std::ptr::null_mut() } else { b.as_ptr().cast_mut().cast() },
                len1: b.len(),
            }
        });
        // SAFETY: checked non-null, the caller's contract.
        unsafe { chunk.write(c) };
        h.chunk = c.len0 + c.len1;
        if h.chunk == 0 && max > 0 {
            // Nothing yet; the end of the stream came back as an error
            // from `read_chunk` itself.
            return Ok(SHAREDRING_AGAIN);
        }
        Ok(SHAREDRING_OK)
    })
}

/// Frees the first `n` slots of the last chunk of
/// [`sharedring_receiver_read_chunk`] and wakes the sender if it waits.
///
/// # Safety
///
/// `rx` is a live receiver.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_release(
    rx: *mut sharedring_receiver,
    n: usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx) }?;
        if n > h.chunk {
            return invalid(format!(
                "release of {n} slots, but the last read_chunk showed {} (and any other call \
                 in between cancels it)",
                h.chunk
            ));
        }
        h.chunk = 0;
        // The same slots again: our position has not moved, and the
        // sender can only have published more since.
        with!(AnyReceiver, &mut h.rx, r: T => r.read_chunk(n)?.release(n)?);
        Ok(SHAREDRING_OK)
    })
}

/// The descriptor this sender sleeps on, for poll/epoll: readable when
/// the peer made progress after [`sharedring_sender_arm`]. Owned by the handle; do
/// not close it.
///
/// # Safety
///
/// `h` is NULL (returns -1) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_fd(h: *const sharedring_sender) -> c_int {
    quiet(-1, || {
        // SAFETY: the caller's contract.
        match unsafe { h.as_ref() } {
            Some(h) => with!(AnySender, &h.tx, e: T => e.waiter().as_raw_fd()),
            None => -1,
        }
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
pub unsafe extern "C" fn sharedring_sender_liveness_fd(h: *const sharedring_sender) -> c_int {
    quiet(-1, || {
        // SAFETY: the caller's contract.
        match unsafe { h.as_ref() } {
            Some(h) => {
                with!(AnySender, &h.tx, e: T => e.liveness().map_or(-1, |fd| fd.as_raw_fd()))
            }
            None => -1,
        }
    })
}

/// 1 if the peer is gone (hung up, died, or broke the protocol), 0 if
/// not, negative on error.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_is_peer_gone(h: *mut sharedring_sender) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        Ok(with!(AnySender, &mut h.tx, e: T => e.is_peer_gone()) as c_int)
    })
}

/// The capacity in elements (0 for NULL).
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_capacity(h: *const sharedring_sender) -> usize {
    quiet(0, || {
        // SAFETY: the caller's contract.
        match unsafe { h.as_ref() } {
            Some(h) => with!(AnySender, &h.tx, e: T => e.capacity_elements()),
            None => 0,
        }
    })
}

/// For event loops: announces that this sender is about to sleep.
/// `SHAREDRING_OK`: poll the descriptor ([`sharedring_sender_fd`]) for POLLIN (and
/// the liveness descriptor), then call [`sharedring_sender_disarm`].
/// `SHAREDRING_READY`: the ring is ready now; do not poll.
/// A blocking call on the handle in between (which waits with an
/// announcement of its own) withdraws it: arm again before polling.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_arm(h: *mut sharedring_sender) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        // An event loop arms often: the end fences for its peer instead of
        // running the sleeper's barrier on every arm (a no-op after the
        // first arm).
        let check = with!(AnySender, &mut h.tx, e: T => {
            let p = e.producer_without_wake();
            let _ = p.withdraw_sleeper_barrier();
            p.prepare_wait(1)
        });
        Ok(match check.map_err(Error::Corrupted)? {
            WaitCheck::Ready => SHAREDRING_READY,
            WaitCheck::Sleep => SHAREDRING_OK,
        })
    })
}

/// For event loops: withdraws the announcement of [`sharedring_sender_arm`] and
/// drains the descriptor, after poll returned.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_sender_disarm(h: *mut sharedring_sender) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        with!(AnySender, &mut h.tx, e: T => {
            e.producer_without_wake().finish_wait();
            e.waiter().try_wait().map_err(Error::from)?;
        });
        Ok(SHAREDRING_OK)
    })
}

/// The descriptor this receiver sleeps on, for poll/epoll: readable when
/// the peer made progress after [`sharedring_receiver_arm`]. Owned by the handle; do
/// not close it.
///
/// # Safety
///
/// `h` is NULL (returns -1) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_fd(h: *const sharedring_receiver) -> c_int {
    quiet(-1, || {
        // SAFETY: the caller's contract.
        match unsafe { h.as_ref() } {
            Some(h) => with!(AnyReceiver, &h.rx, e: T => e.waiter().as_raw_fd()),
            None => -1,
        }
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
pub unsafe extern "C" fn sharedring_receiver_liveness_fd(h: *const sharedring_receiver) -> c_int {
    quiet(-1, || {
        // SAFETY: the caller's contract.
        match unsafe { h.as_ref() } {
            Some(h) => {
                with!(AnyReceiver, &h.rx, e: T => e.liveness().map_or(-1, |fd| fd.as_raw_fd()))
            }
            None => -1,
        }
    })
}

/// 1 if the peer is gone (hung up, died, or broke the protocol), 0 if
/// not, negative on error.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_is_peer_gone(h: *mut sharedring_receiver) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        Ok(with!(AnyReceiver, &mut h.rx, e: T => e.is_peer_gone()) as c_int)
    })
}

/// The capacity in elements (0 for NULL).
///
/// # Safety
///
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_capacity(h: *const sharedring_receiver) -> usize {
    quiet(0, || {
        // SAFETY: the caller's contract.
        match unsafe { h.as_ref() } {
            Some(h) => with!(AnyReceiver, &h.rx, e: T => e.capacity_elements()),
            None => 0,
        }
    })
}

/// For event loops: announces that this receiver is about to sleep.
/// `SHAREDRING_OK`: poll the descriptor ([`sharedring_receiver_fd`]) for POLLIN (and
/// the liveness descriptor), then call [`sharedring_receiver_disarm`].
/// `SHAREDRING_READY`: the ring is ready now; do not poll.
/// A blocking call on the handle in between (which waits with an
/// announcement of its own) withdraws it: arm again before polling.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_arm(h: *mut sharedring_receiver) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        // As in `sharedring_sender_arm`: no barrier per arm.
        let check = with!(AnyReceiver, &mut h.rx, e: T => {
            let c = e.consumer_without_wake();
            let _ = c.withdraw_sleeper_barrier();
            c.prepare_wait()
        });
        Ok(match check.map_err(Error::Corrupted)? {
            WaitCheck::Ready => SHAREDRING_READY,
            WaitCheck::Sleep => SHAREDRING_OK,
        })
    })
}

/// For event loops: withdraws the announcement of [`sharedring_receiver_arm`] and
/// drains the descriptor, after poll returned.
///
/// # Safety
///
/// `h` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn sharedring_receiver_disarm(h: *mut sharedring_receiver) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(h) }?;
        with!(AnyReceiver, &mut h.rx, e: T => {
            e.consumer_without_wake().finish_wait();
            e.waiter().try_wait().map_err(Error::from)?;
        });
        Ok(SHAREDRING_OK)
    })
}
