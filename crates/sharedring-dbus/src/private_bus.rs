//! A private `dbus-daemon` for tests, examples and benchmarks.

use std::fs::DirBuilder;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A real `dbus-daemon` (session configuration) listening on a socket in a
/// fresh temporary directory (mode 0700), stopped and cleaned up on drop.
///
/// Needs the `dbus-daemon` program (Debian package `dbus-daemon`).
///
/// ```no_run
/// let bus = sharedring_dbus::PrivateBus::start()?;
/// let conn = bus.connect()?;
/// assert!(conn.unique_name().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PrivateBus {
    daemon: Child,
    dir: PathBuf,
    address: String,
}

impl PrivateBus {
    /// Starts the daemon and waits until it listens. The error says why it
    /// could not be started (most often: `dbus-daemon` is not installed).
    pub fn start() -> io::Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sharedring-dbus-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        DirBuilder::new().mode(0o700).create(&dir)?;
        match Self::spawn(&dir) {
            Ok((daemon, address)) => Ok(Self {
                daemon,
                dir,
                address,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn spawn(dir: &Path) -> io::Result<(Child, String)> {
        let listen = format!("unix:path={}", dir.join("bus").display());
        // The daemon's complaints go to a file: a pipe that nobody reads
        // once the daemon runs would stall it when full.
        let log = dir.join("dbus-daemon.log");
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address"])
            .arg(format!("--address={listen}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start dbus-daemon ({e}); install it \
                         (Debian package dbus-daemon)"
                    ),
                )
            })?;
        // The daemon prints its address once it listens; end of file means
        // it gave up (its reason is on stderr).
        let mut line = String::new();
        let stdout = daemon.stdout.take().expect("stdout is piped");
        let read = BufReader::new(stdout).read_line(&mut line);
        let address = line.trim().to_owned();
        if read.is_err() || address.is_empty() {
            let _ = daemon.kill();
            let _ = daemon.wait();
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(io::Error::other(format!(
                "dbus-daemon did not start: {}",
                why.trim()
            )));
        }
        Ok((daemon, address))
    }

    /// The bus address, for `DBUS_SESSION_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A new connection to the bus.
    pub fn connect(&self) -> zbus::Result<zbus::blocking::Connection> {
        zbus::blocking::connection::Builder::address(self.address.as_str())?.build()
    }

    /// A new async connection to the bus.
    pub async fn connect_async(&self) -> zbus::Result<zbus::Connection> {
        zbus::connection::Builder::address(self.address.as_str())?
            .build()
            .await
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
