//! [`sharedring_listener`]: a server's Unix socket, and the client's
//! connect.

use std::ffi::{c_char, c_int, CStr, OsStr};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use sharedring::{AcceptError, Error, Listener};

use crate::elements::{give, handle};
use crate::error::*;

/// A listening Unix socket for sharedring clients (opaque); its socket
/// file is removed when it is freed.
pub struct sharedring_listener {
    inner: Listener,
}

/// Who is at the other end of an accepted connection (`SO_PEERCRED`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct sharedring_peer_credentials {
    /// The peer's process ID in our PID namespace, or 0 if its process is
    /// not visible from ours.
    pub pid: i32,
    /// The peer's user ID.
    pub uid: u32,
    /// The peer's group ID.
    pub gid: u32,
}

/// A path from C.
///
/// # Safety
///
/// `path` is null or a NUL-terminated string.
unsafe fn path_of<'a>(path: *const c_char) -> Result<&'a Path, Fail> {
    if path.is_null() {
        return invalid("the path is NULL");
    }
    // SAFETY: the caller's contract.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// Binds a listening socket at `path` (mode 0600: only this user may
/// connect; an existing socket file there is replaced).
///
/// # Safety
///
/// `path` is a NUL-terminated string; `out` is valid for a write of a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn sharedring_listener_bind(
    path: *const c_char,
    out: *mut *mut sharedring_listener,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let path = unsafe { path_of(path) }?;
        required(out, "out")?;
        let inner = Listener::bind(path)?;
        // SAFETY: checked non-null, the caller's contract.
        Ok(unsafe { give(out, sharedring_listener { inner }) })
    })
}

/// Waits for the next client and gives its connected socket (`*sock`, the
/// caller's to hand to a `create` or `accept` function, or to close) and
/// credentials (`*creds`, if not NULL).
///
/// Returns `SHAREDRING_OK`; `SHAREDRING_AGAIN` when a non-blocking listener
/// has nobody waiting or one client gave up before it was accepted (call
/// again once the listener's descriptor is readable);
/// `SHAREDRING_ERR_NO_DESCRIPTORS` (or `SHAREDRING_ERR_IO` for kernel
/// memory) when the process is out of resources: the client stays queued,
/// so back off for about 10 ms (stop polling the listener meanwhile, it
/// stays readable) and let departing clients free descriptors; a server
/// should never exit for it.
///
/// # Safety
///
/// `l` is a live listener; `sock` is valid for a write; `creds` is NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sharedring_listener_accept(
    l: *mut sharedring_listener,
    sock: *mut c_int,
    creds: *mut sharedring_peer_credentials,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let l = unsafe { handle(l) }?;
        required(sock, "sock")?;
        let (stream, c) = match l.inner.accept() {
            Ok(client) => client,
            // A non-blocking listener with nobody waiting, or one client
            // that gave up before it was ours: accept again (when readable).
            Err(AcceptError::WouldBlock | AcceptError::Aborted(_)) => return Ok(SHAREDRING_AGAIN),
            // Out of descriptors (SHAREDRING_ERR_NO_DESCRIPTORS) or kernel
            // memory: the client stays queued; back off, never exit for it.
            Err(AcceptError::RetryLater(e)) => return Err(Error::from(e).into()),
            Err(e) => return Err(std::io::Error::from(e).into()),
        };
        // SAFETY: the caller's contract.
        unsafe {
            put(
                creds,
                sharedring_peer_credentials {
                    pid: c.pid.unwrap_or(0),
                    uid: c.uid,
                    gid: c.gid,
                },
            );
            sock.write(stream.into_raw_fd());
        }
        Ok(SHAREDRING_OK)
    })
}

/// The listening descriptor, for poll/epoll (readable: a client is
/// waiting). Owned by the listener.
///
/// # Safety
///
/// `l` is a live listener (returns -1 for NULL).
#[no_mangle]
pub unsafe extern "C" fn sharedring_listener_fd(l: *const sharedring_listener) -> c_int {
    quiet(-1, || {
        // SAFETY: the caller's contract.
        unsafe { l.as_ref() }.map_or(-1, |l| l.inner.as_fd().as_raw_fd())
    })
}

/// Closes the listener and removes its socket file.
///
/// # Safety
///
/// `l` is NULL or a live listener, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn sharedring_listener_free(l: *mut sharedring_listener) {
    if !l.is_null() {
        // SAFETY: the caller's contract: a handle from `give`, freed once.
        let h = unsafe { Box::from_raw(l) };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(h)));
    }
}

/// Connects to a listener's socket at `path`; `*sock` gets the connected
/// socket (close-on-exec), to hand to a `create` or `accept` function.
///
/// # Safety
///
/// `path` is a NUL-terminated string; `sock` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sharedring_connect(path: *const c_char, sock: *mut c_int) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let path = unsafe { path_of(path) }?;
        required(sock, "sock")?;
        let stream = UnixStream::connect(path)?;
        // SAFETY: checked non-null, the caller's contract.
        unsafe { sock.write(stream.into_raw_fd()) };
        Ok(SHAREDRING_OK)
    })
}
