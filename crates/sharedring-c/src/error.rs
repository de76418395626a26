//! Status codes, the thread's last error message, and the guard every
//! entry point runs under (no panic crosses the boundary).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use sharedring::{Error, HandshakeError, RefusalReason};

/// Success.
pub const SHAREDRING_OK: c_int = 0;
/// A non-blocking call found nothing to do now (ring empty or full).
pub const SHAREDRING_AGAIN: c_int = 1;
/// An `arm` call found the ring ready: do not poll, call the data
/// function again.
pub const SHAREDRING_READY: c_int = 2;
/// The peer is gone (it hung up or died); a receiver reports this only
/// after it delivered everything the peer sent.
pub const SHAREDRING_ERR_PEER_GONE: c_int = -1;
/// The sender closed its stream and everything was received (end of
/// stream). A blocking call reports it at once; a non-blocking one that
/// keeps finding the ring empty (`SHAREDRING_AGAIN`) reports it within 16
/// calls, and at once on its first empty call after data or a wait.
pub const SHAREDRING_ERR_CLOSED: c_int = -2;
/// The timeout passed.
pub const SHAREDRING_ERR_TIMED_OUT: c_int = -3;
/// The peer broke the ring protocol; it is treated as gone.
pub const SHAREDRING_ERR_CORRUPTED: c_int = -4;
/// A message is longer than the ring's maximum message size.
pub const SHAREDRING_ERR_MESSAGE_TOO_LARGE: c_int = -5;
/// The next message does not fit the buffer; it stays in the ring.
pub const SHAREDRING_ERR_BUFFER_TOO_SMALL: c_int = -6;
/// Setting the ring up failed (see [`sharedring_last_error`]).
pub const SHAREDRING_ERR_HANDSHAKE: c_int = -7;
/// The peer refused our ring; [`sharedring_last_refusal`] has its status
/// code (see docs/LAYOUT.md).
pub const SHAREDRING_ERR_REFUSED: c_int = -8;
/// An argument is invalid (a null pointer, a bad descriptor, a count
/// beyond a chunk, an unknown element type).
pub const SHAREDRING_ERR_INVALID: c_int = -9;
/// A system call failed.
pub const SHAREDRING_ERR_IO: c_int = -10;
/// A Rust panic was caught at the boundary (a bug in the library).
pub const SHAREDRING_ERR_PANIC: c_int = -11;
/// The ring asked for is impossible or above this side's limit.
pub const SHAREDRING_ERR_CAPACITY: c_int = -12;
/// The process ran out of file descriptors.
pub const SHAREDRING_ERR_NO_DESCRIPTORS: c_int = -13;

/// What a call failed with, before it becomes a code and a message.
pub(crate) enum Fail {
    Ring(Error),
    Invalid(String),
    Io(std::io::Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Self::Ring(e)
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

pub(crate) fn invalid<T>(what: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Invalid(what.into()))
}

struct Last {
    message: CString,
    refusal: u32,
}

thread_local! {
    static LAST: RefCell<Last> = RefCell::new(Last {
        message: CString::default(),
        refusal: 0,
    });
}

fn code_of(e: &Error) -> (c_int, u32) {
    match e {
        Error::PeerGone => (SHAREDRING_ERR_PEER_GONE, 0),
        Error::Closed => (SHAREDRING_ERR_CLOSED, 0),
        Error::TimedOut { .. } => (SHAREDRING_ERR_TIMED_OUT, 0),
        Error::Corrupted(_) => (SHAREDRING_ERR_CORRUPTED, 0),
        Error::MessageTooLarge { .. } => (SHAREDRING_ERR_MESSAGE_TOO_LARGE, 0),
        Error::BufferTooSmall { .. } => (SHAREDRING_ERR_BUFFER_TOO_SMALL, 0),
        Error::Handshake(HandshakeError::Refused { reason }) => {
            (SHAREDRING_ERR_REFUSED, refusal_code(*reason))
        }
        Error::Handshake(_) => (SHAREDRING_ERR_HANDSHAKE, 0),
        Error::Layout(_) | Error::RingTooLarge { .. } | Error::CapacityUnit { .. } => {
            (SHAREDRING_ERR_CAPACITY, 0)
        }
        Error::OutOfDescriptors { .. } => (SHAREDRING_ERR_NO_DESCRIPTORS, 0),
        _ => (SHAREDRING_ERR_IO, 0),
    }
}

/// The wire code of a refusal (docs/LAYOUT.md, "The accepting side's
/// checks").
fn refusal_code(reason: RefusalReason) -> u32 {
    match reason {
        RefusalReason::Message => 1,
        RefusalReason::Mismatch => 2,
        RefusalReason::Capacity => 3,
        RefusalReason::Descriptors => 4,
        RefusalReason::Ring => 5,
        RefusalReason::Other(c) => c,
        // A reason added later: its number is in the message.
        _ => u32::MAX,
    }
}

fn record(code: c_int, refusal: u32, message: String) -> c_int {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST.with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            l.message = message;
            l.refusal = refusal;
        }
    });
    code
}

/// Runs one entry point: its result as a status code, its error recorded
/// as the thread's last error, a panic caught.
///
/// The closure under `catch_unwind` returns only the code (an error is
/// recorded inside it, out of line), so that the success path moves no
/// error value across the unwinding boundary: it costs what the call it
/// wraps costs.
#[inline(always)]
pub(crate) fn guard(f: impl FnOnce() -> Result<c_int, Fail>) -> c_int {
    match catch_unwind(AssertUnwindSafe(|| match f() {
        Ok(code) => code,
        Err(e) => failed(e),
    })) {
        Ok(code) => code,
        Err(panic) => panicked(panic),
    }
}

/// The code of a failure, recorded as the thread's last error.
#[cold]
#[inline(never)]
fn failed(e: Fail) -> c_int {
    match e {
        Fail::Ring(e) => {
            let (code, refusal) = code_of(&e);
            record(code, refusal, e.to_string())
        }
        Fail::Invalid(what) => record(SHAREDRING_ERR_INVALID, 0, what),
        Fail::Io(e) => record(SHAREDRING_ERR_IO, 0, e.to_string()),
    }
}

/// A caught panic, recorded as the thread's last error.
#[cold]
#[inline(never)]
fn panicked(panic: Box<dyn std::any::Any + Send>) -> c_int {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    // Recording must not panic again; `record` does not, and the panic
    // payload is dropped here, under a guard of its own.
    catch_unwind(AssertUnwindSafe(|| {
        let code = record(
            SHAREDRING_ERR_PANIC,
            0,
            format!("a bug in libsharedring (please report it): panic: {what}"),
        );
        drop(panic);
        code
    }))
    .unwrap_or(SHAREDRING_ERR_PANIC)
}

/// Runs an accessor that cannot fail: a panic (a bug in the library) is
/// caught and gives `default`.
pub(crate) fn quiet<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// A microsecond timeout as the facade takes it (negative: none).
pub(crate) fn timeout(us: i64) -> Option<Duration> {
    u64::try_from(us).ok().map(Duration::from_micros)
}

/// Takes ownership of a descriptor the caller handed over.
pub(crate) fn own_fd(fd: RawFd, what: &str) -> Result<OwnedFd, Fail> {
    if fd < 0 {
        return invalid(format!("{what}: descriptor {fd} is not a descriptor"));
    }
    // SAFETY: the caller's contract: `fd` is an open descriptor it owns
    // and hands over to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes `value` through `out` if it is not null.
///
/// # Safety
///
/// `out` is null or valid for a write of `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: the caller's contract.
        unsafe { out.write(value) }
    }
}

/// Checks that a required output pointer is not null.
pub(crate) fn required<T>(out: *mut T, what: &str) -> Result<(), Fail> {
    if out.is_null() {
        return invalid(format!("{what} must not be NULL"));
    }
    Ok(())
}

/// The name of a status code: a static string, never NULL.
///
/// # Safety
///
/// None: any `code` is accepted (unknown codes are named as such). The
/// returned string is static; do not free it.
#[no_mangle]
pub extern "C" fn sharedring_strerror(code: c_int) -> *const c_char {
    let s: &'static CStr = match code {
        SHAREDRING_OK => c"success",
        SHAREDRING_AGAIN => c"nothing to do now (ring empty or full); try again later",
        SHAREDRING_READY => c"the ring is ready now: call the data function instead of polling",
        SHAREDRING_ERR_PEER_GONE => c"the peer is gone (it hung up or died)",
        SHAREDRING_ERR_CLOSED => c"the sender closed its stream (end of stream)",
        SHAREDRING_ERR_TIMED_OUT => c"the timeout passed",
        SHAREDRING_ERR_CORRUPTED => c"the peer broke the ring protocol and is treated as gone",
        SHAREDRING_ERR_MESSAGE_TOO_LARGE => c"the message is longer than the ring's maximum",
        SHAREDRING_ERR_BUFFER_TOO_SMALL => {
            c"the next message does not fit the buffer (it stays in the ring)"
        }
        SHAREDRING_ERR_HANDSHAKE => c"setting the ring up failed",
        SHAREDRING_ERR_REFUSED => c"the peer refused the ring (see sharedring_last_refusal)",
        SHAREDRING_ERR_INVALID => c"invalid argument",
        SHAREDRING_ERR_IO => c"a system call failed",
        SHAREDRING_ERR_PANIC => c"a bug in libsharedring (a Rust panic was caught)",
        SHAREDRING_ERR_CAPACITY => c"the ring size is impossible or above the limit",
        SHAREDRING_ERR_NO_DESCRIPTORS => c"the process ran out of file descriptors",
        _ => c"unknown sharedring status code",
    };
    s.as_ptr()
}

/// The message of the last failure on the calling thread: what went wrong
/// and how to fix it. Empty if nothing failed yet.
///
/// # Safety
///
/// None on the call. The string belongs to the library and stays valid
/// until the next failing call on this thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn sharedring_last_error() -> *const c_char {
    catch_unwind(|| {
        LAST.with(|l| match l.try_borrow() {
            Ok(l) => l.message.as_ptr(),
            Err(_) => c"".as_ptr(),
        })
    })
    .unwrap_or(c"".as_ptr())
}

/// The status code the peer sent when it refused our ring (after
/// [`SHAREDRING_ERR_REFUSED`] on this thread): 1 message, 2 mismatch,
/// 3 capacity, 4 descriptors, 5 ring header (docs/LAYOUT.md). 0 if the
/// last failure was not a refusal.
///
/// # Safety
///
/// None.
#[no_mangle]
pub extern "C" fn sharedring_last_refusal() -> u32 {
    catch_unwind(|| LAST.with(|l| l.try_borrow().map(|l| l.refusal).unwrap_or(0))).unwrap_or(0)
}
