//! Shared by the C tests: the system C compiler, the reference peer and
//! the examples compiled with it, and spawning a C program connected to
//! us by a Unix socket.

#![allow(dead_code)]

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The crate's directory.
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where compiled C programs go.
fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sharedring-c");
    std::fs::create_dir_all(&dir).expect("the test's target directory");
    dir
}

/// The system C compiler: `$CC`, else `cc` on the PATH.
pub fn cc() -> String {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    match Command::new(&cc)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => cc,
        _ => panic!(
            "no C compiler: `{cc} --version` failed. These tests compile C programs; install \
             one (e.g. `apt-get install gcc`) or point CC at it."
        ),
    }
}

/// Compiles C sources into `name`, with extra arguments (libraries last).
pub fn compile(name: &str, sources: &[PathBuf], extra: &[String]) -> PathBuf {
    let bin = out_dir().join(name);
    let out = Command::new(cc())
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-o"])
        .arg(&bin)
        .args(sources)
        .args(extra)
        .output()
        .expect("the C compiler runs");
    assert!(
        out.status.success(),
        "compiling {sources:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// The reference peer, compiled once per test binary.
pub fn peer() -> &'static Path {
    static PEER: OnceLock<PathBuf> = OnceLock::new();
    PEER.get_or_init(|| compile("c-peer", &[crate_dir().join("tests/c-peer/peer.c")], &[]))
}

/// The static C library cargo built for these tests
/// (`libsharedring_c.a`, beside the test binary's directory).
pub fn static_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let deps = exe.parent().expect("deps");
    for dir in [deps.parent().expect("profile dir"), deps] {
        let lib = dir.join("libsharedring_c.a");
        if lib.exists() {
            return lib;
        }
    }
    panic!(
        "libsharedring_c.a not found beside {}: cargo builds it with this crate's tests \
         (crate-type staticlib)",
        deps.display()
    )
}

/// Compiles a C program that uses the C API (`include/sharedring.h`),
/// linked statically.
pub fn compile_with_lib(name: &str, source: &Path) -> PathBuf {
    compile(
        name,
        &[source.to_path_buf()],
        &[
            format!("-I{}", crate_dir().join("include").display()),
            static_lib().display().to_string(),
            "-lpthread".into(),
            "-ldl".into(),
            "-lm".into(),
        ],
    )
}

/// A fresh socket path.
pub fn socket_path() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "sharedring-c-test-{}-{}.sock",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The next connection on `listener` (non-blocking), from `child`: fails
/// if the child exits first or does not connect within 20 s, rather than
/// hanging the test.
pub fn accept_from(listener: &UnixListener, child: &mut Child, bin: &Path) -> UnixStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(20);
    let sock = loop {
        match listener.accept() {
            Ok((sock, _)) => break sock,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait().expect("wait") {
                    panic!("{} exited before connecting: {status}", bin.display());
                }
                assert!(
                    Instant::now() < deadline,
                    "{} did not connect",
                    bin.display()
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    sock.set_nonblocking(false).expect("blocking");
    sock
}

/// Starts `bin SOCKET-PATH args...`, which connects to SOCKET-PATH, and
/// returns it with our end of the connection.
pub fn spawn_c(bin: &Path, args: &[&str], stdout: Stdio) -> (Child, UnixStream) {
    let path = socket_path();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind a test socket");
    let mut child = Command::new(bin)
        .arg(&path)
        .args(args)
        .stdout(stdout)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let sock = accept_from(&listener, &mut child, bin);
    let _ = std::fs::remove_file(&path);
    (child, sock)
}
