//! Dev-only helpers for tests that need a real second process.
//!
//! The pattern: a test re-executes its own test binary as the peer, running
//! only itself (`--exact`), with environment variables that name the role
//! the child plays and the path of a Unix socket to connect to. The child
//! branch of the test calls [`as_peer`] first; the parent calls
//! [`spawn_peer`]. This avoids `fork()` inside the multithreaded test
//! harness, where a child could only make async-signal-safe calls.
//!
//! ```no_run
//! #[test]
//! fn peer_sends_a_pipe() {
//!     if let Some((role, sock)) = testkit::as_peer() {
//!         // Child: play `role` over `sock`, then leave.
//!         std::process::exit(0);
//!     }
//!     let (mut child, sock) = testkit::spawn_peer("peer_sends_a_pipe", "send-pipe").unwrap();
//!     // Parent: talk to the child over `sock`...
//!     assert!(child.wait().unwrap().success());
//! }
//! ```

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Environment variable that carries the role a re-executed child plays.
pub const ROLE_VAR: &str = "TESTKIT_PEER_ROLE";
/// Environment variable that carries the Unix socket path the child connects to.
pub const SOCKET_VAR: &str = "TESTKIT_PEER_SOCKET";

/// How long [`spawn_peer`] waits for the child to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `payload` with `fds` attached as `SCM_RIGHTS` in one `sendmsg`.
pub fn send_fds(sock: &UnixStream, payload: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("ancillary buffer too small"));
    }
    let sent = sendmsg(
        sock,
        &[IoSlice::new(payload)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != payload.len() {
        return Err(io::Error::other(format!(
            "short sendmsg: {sent} of {} bytes",
            payload.len()
        )));
    }
    Ok(())
}

/// Sends `bytes` one at a time, `gap` apart, with `fds` attached to the
/// first byte: a peer that paces its messages to stretch the other side's
/// timeouts. Stops quietly when the other side hangs up.
pub fn drip(sock: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>], gap: Duration) {
    use std::io::Write;
    if bytes.is_empty() || send_fds(sock, &bytes[..1], fds).is_err() {
        return;
    }
    for b in &bytes[1..] {
        std::thread::sleep(gap);
        if (&mut &*sock).write_all(std::slice::from_ref(b)).is_err() {
            return;
        }
    }
}

/// Receives one message into `buf` and up to `max_fds` descriptors
/// (close-on-exec). Returns the number of bytes and the descriptors.
pub fn recv_fds(
    sock: &UnixStream,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(max_fds.max(1)))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(
        sock,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(iter) = msg {
            fds.extend(iter);
        }
    }
    Ok((got.bytes, fds))
}

/// Spawns this test binary again, running only `test_name` in the role
/// `role`, and returns the child and a socket connected to it.
///
/// `test_name` is the test's path as the harness prints it (for an
/// integration test at the file's top level, just the function name; in a
/// unit-test module, `module::name`).
pub fn spawn_peer(test_name: &str, role: &str) -> io::Result<(Child, UnixStream)> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "testkit-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    let path: PathBuf = dir.join("peer.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    listener.set_nonblocking(true)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(SOCKET_VAR, &path)
        .spawn()?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let result = loop {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(false)?;
                break Ok(sock);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait()? {
                    break Err(io::Error::other(format!(
                        "peer exited before connecting: {status}"
                    )));
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "peer did not connect",
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => break Err(e),
        }
    };
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);
    result.map(|sock| (child, sock))
}

/// In a re-executed child, returns its role and a socket connected to the
/// parent; in the parent (no role in the environment), returns `None`.
///
/// # Panics
///
/// Panics if the role is set but the parent's socket cannot be reached:
/// the child has nothing useful to do then, and the parent sees it exit.
pub fn as_peer() -> Option<(String, UnixStream)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    let path = std::env::var_os(SOCKET_VAR).expect("peer role set without a socket path");
    let sock = UnixStream::connect(path).expect("peer cannot connect to the parent's socket");
    Some((role, sock))
}

/// Drops `end` while a thread unwinds from a panic: what a crash leaves
/// behind, in one process. A ring end dropped this way does not close its
/// stream (its peer sees `PeerGone`, not the end of the stream). The
/// panic's message ("simulated crash") is printed like any other.
pub fn crash<T: Send + 'static>(end: T) {
    let unwound = std::thread::spawn(move || {
        let _end = end;
        panic!("simulated crash: dropping a ring end while unwinding");
    })
    .join();
    assert!(unwound.is_err(), "the thread did panic");
}

/// The descriptors this process has open, each as its number and what it
/// refers to (`/proc/self/fd`), for a leak check: see [`fds_leaked_since`].
/// The handle that lists the directory is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdSnapshot(std::collections::BTreeSet<(String, String)>);

impl FdSnapshot {
    /// The descriptors open now.
    pub fn now() -> FdSnapshot {
        let own_dir = format!("/proc/{}/fd", std::process::id());
        FdSnapshot(
            std::fs::read_dir("/proc/self/fd")
                .expect("read /proc/self/fd")
                .filter_map(|e| e.ok())
                .map(|e| {
                    let target = std::fs::read_link(e.path())
                        .map(|l| l.display().to_string())
                        .unwrap_or_else(|_| "?".into());
                    (e.file_name().to_string_lossy().into_owned(), target)
                })
                .filter(|(_, target)| *target != own_dir)
                .collect(),
        )
    }

    /// Whether descriptor `fd`, open at this snapshot, is still open now
    /// (the same number for the same object; `false` if it was not open
    /// at this snapshot). For checking that a call closed a descriptor
    /// handed to it.
    pub fn still_open(&self, fd: std::os::fd::RawFd) -> bool {
        let name = fd.to_string();
        let Some(entry) = self.0.iter().find(|(n, _)| *n == name) else {
            return false;
        };
        FdSnapshot::now().0.contains(entry)
    }
}

/// The descriptors open now that were not open (as the same number for
/// the same object) at `before`, as `"number -> target"` lines; empty if
/// none. A descriptor the code under test closed is not a leak, and one
/// that another thread of the test harness holds for a moment is not
/// either: new descriptors are looked at again for up to two seconds and
/// count only if they stay. (Counting descriptors, as these checks did
/// before, failed when a harness thread held one across the `before`
/// count: the test saw one descriptor fewer afterwards.)
pub fn fds_leaked_since(before: &FdSnapshot) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let now = FdSnapshot::now();
        let new: Vec<String> = now
            .0
            .difference(&before.0)
            .map(|(fd, target)| format!("{fd} -> {target}"))
            .collect();
        if new.is_empty() || Instant::now() > deadline {
            return new;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor opened after the snapshot and kept is reported, with
    /// what it is; one open at the snapshot and closed since is not.
    #[test]
    fn a_kept_descriptor_is_a_leak_and_a_closed_one_is_not() {
        let old = rustix::io::dup(std::io::stderr()).unwrap();
        let before = FdSnapshot::now();
        drop(old);
        assert!(fds_leaked_since(&before).is_empty());
        let dir = std::env::temp_dir().join(format!("testkit-leak-{}", std::process::id()));
        let kept = std::fs::File::create(&dir).unwrap();
        let leaked = fds_leaked_since(&before);
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(leaked.len(), 1, "{leaked:?}");
        assert!(leaked[0].contains("testkit-leak-"), "{leaked:?}");
        drop(kept);
        assert!(fds_leaked_since(&before).is_empty());
        let handed = rustix::io::dup(std::io::stderr()).unwrap();
        let raw = std::os::fd::AsRawFd::as_raw_fd(&handed);
        let with = FdSnapshot::now();
        assert!(with.still_open(raw));
        drop(handed);
        assert!(!with.still_open(raw));
    }
}
