//! The `Listener` owns its path through `<path>.lock`:
//!
//! - a stale socket (and lock file) left by a server killed with SIGKILL
//!   is replaced, and the new listener serves;
//! - a live server's socket is never taken: refused with an error naming
//!   the server's pid, whether it holds the lock (another `Listener`, in
//!   another process) or not (a plain socket that accepts connections);
//! - something that is not a socket is never replaced, and a lock file
//!   that is a symbolic link is not followed;
//! - the socket and lock files are removed on drop.

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sharedring::Listener;

const ROLE: &str = "SR_LOCK_ROLE";
const PATH: &str = "SR_LOCK_PATH";

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sr-lock-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A child that binds a `Listener` at `path`, says `bound`, and waits to
/// be killed (SIGKILL: no destructor runs).
fn spawn_server(test: &str, path: &Path) -> (std::process::Child, impl BufRead) {
    let mut child = spawn_child(test, path);
    let out = until_bound(child.stdout.take().unwrap());
    (child, out)
}

/// Reads the child's lines until `bound` (the harness prints its own
/// lines first).
fn until_bound(out: std::process::ChildStdout) -> impl BufRead {
    let mut out = BufReader::new(out);
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap_or(0) > 0,
            "the server child did not bind"
        );
        if line.trim() == "bound" {
            return out;
        }
    }
}

fn spawn_child(test: &str, path: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, "server")
        .env(PATH, path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn as_server() -> bool {
    if std::env::var(ROLE).is_err() {
        return false;
    }
    let listener = Listener::bind(std::env::var(PATH).unwrap()).unwrap();
    println!("bound");
    std::thread::sleep(Duration::from_secs(600));
    drop(listener);
    true
}

#[test]
fn a_stale_socket_of_a_killed_server_is_replaced() {
    if as_server() {
        return;
    }
    let d = dir("stale");
    let path = d.join("s.sock");
    let (mut child, _out) = spawn_server("a_stale_socket_of_a_killed_server_is_replaced", &path);
    child.kill().unwrap(); // SIGKILL: the files stay behind
    child.wait().unwrap();
    assert!(path.exists() && d.join("s.sock.lock").exists());
    let listener = Listener::bind(&path).expect("the stale socket was not replaced");
    let _client = UnixStream::connect(&path).unwrap();
    let (_, creds) = listener.accept().unwrap();
    assert_eq!(creds.pid, Some(std::process::id() as i32));
    // A socket left without any lock file (a server of another program
    // that died) is stale too.
    drop(listener);
    let other = d.join("t.sock");
    drop(UnixListener::bind(&other).unwrap()); // std leaves the file
    assert!(other.exists());
    let listener = Listener::bind(&other).expect("a dead plain socket was not replaced");
    drop(UnixStream::connect(&other).unwrap());
    drop(listener);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_live_server_is_never_replaced() {
    if as_server() {
        return;
    }
    let d = dir("live");
    let path = d.join("s.sock");
    let (mut child, _out) = spawn_server("a_live_server_is_never_replaced", &path);
    let err = Listener::bind(&path).expect_err("took a live server's socket");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("pid {}", child.id())),
        "the error does not name the live server: {msg}"
    );
    // The live server still has its socket: we can connect to it.
    UnixStream::connect(&path).expect("the live server's socket is gone");
    child.kill().unwrap();
    child.wait().unwrap();

    // A live server that takes no lock (a plain socket) is refused too.
    let plain_path = d.join("plain.sock");
    let plain = UnixListener::bind(&plain_path).unwrap();
    let err = Listener::bind(&plain_path).expect_err("took a live plain socket");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(UnixStream::connect(&plain_path).expect("the plain socket was replaced"));
    drop(plain);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn what_is_not_a_socket_is_never_replaced() {
    let d = dir("notsock");
    let path = d.join("s.sock");
    std::fs::write(&path, b"precious").unwrap();
    let err = Listener::bind(&path).expect_err("replaced a regular file");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    assert!(
        !d.join("s.sock.lock").exists(),
        "a failed bind left its lock file"
    );
    // A lock file planted as a symbolic link is not followed.
    let other = d.join("o.sock");
    let target = d.join("target");
    std::fs::write(&target, b"").unwrap();
    std::os::unix::fs::symlink(&target, d.join("o.sock.lock")).unwrap();
    Listener::bind(&other).expect_err("followed a symlinked lock file");
    assert!(!other.exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_socket_and_lock_files_are_removed_on_drop() {
    let d = dir("drop");
    let path = d.join("s.sock");
    let listener = Listener::bind(&path).unwrap();
    let lock = listener.lock_path().to_path_buf();
    assert!(path.exists() && lock.exists());
    drop(listener);
    assert!(!path.exists(), "socket file left behind");
    assert!(!lock.exists(), "lock file left behind");
    // And the path is free again at once.
    drop(Listener::bind(&path).unwrap());
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        0,
        "files left in the directory"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
