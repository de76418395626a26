//! A listening socket for servers: owner-only by default, whatever the
//! umask, with the peer's credentials visible before any ring is set up.
//!
//! One server per path. Beside the socket `<path>` lies `<path>.lock`,
//! locked (`flock(LOCK_EX | LOCK_NB)`) for the listener's whole life, as
//! Wayland compositors do with `wayland-0.lock`. Whoever holds the lock
//! owns the path: a server that finds the lock free and a socket at the
//! path knows that socket is stale (its server died without removing it)
//! and replaces it; a server that finds the lock held refuses, naming the
//! live server. The lock dies with its holder's process, however that
//! ends, so no stale lock is ever left behind. A connect probe covers a
//! live server that does not take the lock (another program): a socket
//! that accepts connections is never replaced.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use std::time::Duration;

use rustix::fs::{flock, renameat_with, FlockOperation, Mode, OFlags, RenameFlags, CWD};

/// Who is on the other end of a Unix socket, as the kernel recorded it at
/// `connect` time (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process ID, as seen from our PID namespace. `None` when
    /// the peer's process is not visible in our namespace (the kernel then
    /// reports 0): do not mistake that for any process of ours.
    pub pid: Option<i32>,
    /// The peer's user ID (the overflow uid, usually 65534, if the peer's
    /// uid has no mapping in our user namespace).
    pub uid: u32,
    /// The peer's group ID (likewise mapped).
    pub gid: u32,
}

/// The credentials of the process at the other end of `stream`.
///
/// ```
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let creds = sharedring::peer_credentials(&a)?;
/// assert_eq!(creds.pid, Some(std::process::id() as i32));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///  - [unix(7), `SO_PEERCRED`](https://man7.org/linux/man-pages/man7/unix.7.html)
pub fn peer_credentials(stream: &UnixStream) -> io::Result<PeerCredentials> {
    // Read into nix's plain struct: the kernel reports pid 0 for a peer
    // outside our PID namespace, which rustix 1.1 would turn into a
    // `NonZeroI32` (undefined behaviour).
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(io::Error::from)?;
    Ok(PeerCredentials {
        pid: (cred.pid() > 0).then_some(cred.pid()),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}

/// A listening Unix socket at a filesystem path, for servers that hand out
/// rings. Never an abstract-namespace socket, which has no permissions.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("sr-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("server.sock");
/// let listener = sharedring::Listener::bind(&path)?;
/// let client = std::os::unix::net::UnixStream::connect(&path)?;
/// let (stream, creds) = listener.accept()?;
/// assert_eq!(creds.pid, Some(std::process::id() as i32)); // we connected to ourselves
/// // Refuse strangers here, before any ring exists; then e.g.
/// // `sharedring::Receiver::<u64>::accept(stream)`.
/// # drop((client, stream, listener)); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    inner: UnixListener,
    path: PathBuf,
    /// `<path>.lock`, flocked while we live (the lock goes with the
    /// descriptor).
    lock: OwnedFd,
    lock_path: PathBuf,
}

/// Why [`Listener::accept`] did not return a connection, sorted by what
/// the server should do next. Only [`Fatal`](Self::Fatal) means the
/// listener is broken; the others are normal on a busy server, and the
/// clients already served are not affected.
///
/// ```
/// use std::time::Duration;
/// use sharedring::{AcceptError, Listener};
/// let path = std::env::temp_dir().join(format!("sr-accept-err-{}.sock", std::process::id()));
/// let listener = Listener::bind(&path)?;
/// listener.set_nonblocking(true)?;
/// match listener.accept() {
///     Ok((stream, creds)) => drop((stream, creds)), // serve the client
///     Err(AcceptError::WouldBlock) => { /* nobody waiting: back to the event loop */ }
///     Err(e @ AcceptError::RetryLater(_)) => {
///         // Out of descriptors or memory: stop accepting for a moment
///         // (WaitSet::pause on the listener's token), keep serving.
///         std::thread::sleep(e.retry_after().unwrap());
///     }
///     Err(AcceptError::Aborted(_)) => { /* that client gave up: accept the next */ }
///     Err(e) => return Err(e.into()),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AcceptError {
    /// No client is waiting (a non-blocking listener): wait for the
    /// listener to turn readable.
    WouldBlock,
    /// This one connection failed before it was ours (the client gave up:
    /// `ECONNABORTED`, `EPROTO`; a signal: `EINTR`; its credentials could
    /// not be read): accept the next one now.
    Aborted(io::Error),
    /// Out of a resource (`EMFILE`, `ENFILE`: descriptors; `ENOBUFS`,
    /// `ENOMEM`: kernel memory). The client stays queued. Back off: stop
    /// accepting for [`retry_after`](Self::retry_after) (an event loop
    /// pauses the listener, since it stays readable and would spin),
    /// and let clients that leave free descriptors; never exit for it.
    RetryLater(io::Error),
    /// The listening socket itself is broken (`EBADF`, `EINVAL`, ...).
    Fatal(io::Error),
}

/// How long a server backs off after [`AcceptError::RetryLater`].
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

impl AcceptError {
    fn classify(e: io::Error) -> Self {
        use rustix::io::Errno;
        match e.raw_os_error().map(Errno::from_raw_os_error) {
            _ if e.kind() == io::ErrorKind::WouldBlock => Self::WouldBlock,
            Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => Self::RetryLater(e),
            Some(Errno::CONNABORTED | Errno::PROTO | Errno::INTR | Errno::PERM) => Self::Aborted(e),
            _ => Self::Fatal(e),
        }
    }

    /// Whether the listener is still good: everything but
    /// [`Fatal`](Self::Fatal).
    ///
    /// ```
    /// assert!(sharedring::AcceptError::WouldBlock.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Fatal(_))
    }

    /// How long to wait before the next `accept`: zero for
    /// [`WouldBlock`](Self::WouldBlock) (wait for readiness instead) and
    /// [`Aborted`](Self::Aborted), [`ACCEPT_BACKOFF`] for
    /// [`RetryLater`](Self::RetryLater), `None` for
    /// [`Fatal`](Self::Fatal).
    ///
    /// ```
    /// use sharedring::{AcceptError, ACCEPT_BACKOFF};
    /// let emfile = AcceptError::RetryLater(std::io::Error::from_raw_os_error(24));
    /// assert_eq!(emfile.retry_after(), Some(ACCEPT_BACKOFF));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::WouldBlock | Self::Aborted(_) => Some(Duration::ZERO),
            Self::RetryLater(_) => Some(ACCEPT_BACKOFF),
            Self::Fatal(_) => None,
        }
    }
}

impl std::fmt::Display for AcceptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WouldBlock => f.write_str("no client is waiting to be accepted"),
            Self::Aborted(e) => write!(
                f,
                "a client's connection failed before accept ({e}); accept the next one"
            ),
            Self::RetryLater(e) => write!(
                f,
                "accept is out of resources ({e}); back off for a moment and retry \
                 (raise RLIMIT_NOFILE if this is the descriptor limit)"
            ),
            Self::Fatal(e) => write!(f, "the listening socket is broken: {e}"),
        }
    }
}

impl std::error::Error for AcceptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::WouldBlock => None,
            Self::Aborted(e) | Self::RetryLater(e) | Self::Fatal(e) => Some(e),
        }
    }
}

impl From<AcceptError> for io::Error {
    fn from(e: AcceptError) -> Self {
        match e {
            AcceptError::WouldBlock => io::ErrorKind::WouldBlock.into(),
            AcceptError::Aborted(e) | AcceptError::RetryLater(e) | AcceptError::Fatal(e) => e,
        }
    }
}

/// Removes a private directory (and the socket name in it, if still
/// there) when dropped.
struct PrivateDir(PathBuf);

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0.join("s"));
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Creates a new directory `.{name}.{random}` next to `path`, mode 0700,
/// that nobody else can enter.
fn private_dir(dir: &Path, name: &std::ffi::OsStr) -> io::Result<PrivateDir> {
    let state = RandomState::new();
    for attempt in 0u32..16 {
        let mut h = state.build_hasher();
        h.write_u32(attempt);
        h.write_u32(std::process::id());
        let mut tmp = std::ffi::OsString::from(".");
        tmp.push(name);
        tmp.push(format!(".{:016x}.tmp", h.finish()));
        let tmp = dir.join(tmp);
        // mkdir fails if the name exists (a planted directory or link is
        // never reused), and the umask can only remove bits from 0700.
        match std::fs::DirBuilder::new().mode(0o700).create(&tmp) {
            Ok(()) => {
                let private = PrivateDir(tmp);
                // A umask such as 0200 would leave us unable to bind in it.
                std::fs::set_permissions(&private.0, std::fs::Permissions::from_mode(0o700))?;
                return Ok(private);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not create a private temporary directory for the socket",
    ))
}

impl Listener {
    /// Binds `path` with owner-only permissions (0600), whatever the umask.
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// let path = std::env::temp_dir().join(format!("sr-bind-{}.sock", std::process::id()));
    /// let listener = sharedring::Listener::bind(&path)?;
    /// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    /// drop(listener); // removes the socket file
    /// assert!(!path.exists());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AddrInUse`] if a live server owns `path` (it holds
    /// `<path>.lock`, or its socket accepts connections), or `path` is
    /// something other than a socket. A stale socket left by a server that
    /// died is replaced.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::bind_with_mode(path, 0o600)
    }

    /// Binds `path` with the given permission bits, whatever the umask.
    ///
    /// The socket is bound inside a fresh directory of mode 0700 next to
    /// `path`, given its mode there, and only then moved to `path`
    /// (without replacing anything there), so that no other user can
    /// connect before the mode is set.
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// let path = std::env::temp_dir().join(format!("sr-group-{}.sock", std::process::id()));
    /// let listener = sharedring::Listener::bind_with_mode(&path, 0o660)?; // owner and group
    /// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o660);
    /// # drop(listener);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_with_mode(path: impl AsRef<Path>, mode: u32) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "socket path has no file name")
        })?;
        let mut lock_name = name.to_os_string();
        lock_name.push(".lock");
        let lock_path = dir.join(lock_name);
        let lock = take_lock(&lock_path)?;
        let bound = (|| {
            // The path is ours now. Whatever is there is stale, unless it is
            // not a socket or a server that takes no lock answers on it.
            if std::fs::symlink_metadata(&path).is_ok() {
                remove_stale(&path)?;
            }
            let private = private_dir(dir, name)?;
            let tmp = private.0.join("s");
            let inner = UnixListener::bind(&tmp)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
            match renameat_with(CWD, &tmp, CWD, &path, RenameFlags::NOREPLACE) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => return Err(stale(&path)),
                Err(e) => return Err(e.into()),
            }
            drop(private);
            Ok(inner)
        })();
        let inner = match bound {
            Ok(inner) => inner,
            Err(e) => {
                // We hold the lock: the lock file is ours to remove.
                let _ = std::fs::remove_file(&lock_path);
                return Err(e);
            }
        };
        Ok(Self {
            inner,
            path,
            lock,
            lock_path,
        })
    }

    /// Accepts a connection and returns it with the peer's credentials
    /// (see the [type's example](Listener)). The stream is blocking,
    /// whatever the listener is.
    ///
    /// # Errors
    ///
    /// An [`AcceptError`] that says what to do next: only
    /// [`AcceptError::Fatal`] means the listener is broken. Running out of
    /// descriptors (`EMFILE`) is [`AcceptError::RetryLater`]: back off,
    /// keep serving.
    pub fn accept(&self) -> Result<(UnixStream, PeerCredentials), AcceptError> {
        let (stream, _) = self.inner.accept().map_err(AcceptError::classify)?;
        let creds = match peer_credentials(&stream) {
            Ok(c) => c,
            Err(e) => return Err(AcceptError::Aborted(e)),
        };
        // Accepted sockets inherit nothing from a non-blocking listener on
        // Linux, but say it: the handshake works in either mode.
        stream
            .set_nonblocking(false)
            .map_err(AcceptError::Aborted)?;
        Ok((stream, creds))
    }

    /// Makes [`accept`](Self::accept) return [`AcceptError::WouldBlock`]
    /// instead of blocking when no client waits (what a
    /// [`WaitSet`](crate::WaitSet) does when it is given the listener).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("sr-nb-{}.sock", std::process::id()));
    /// let listener = sharedring::Listener::bind(&path)?;
    /// listener.set_nonblocking(true)?;
    /// assert!(matches!(listener.accept(), Err(sharedring::AcceptError::WouldBlock)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }

    /// The lock file beside the socket (`<path>.lock`), held while the
    /// listener lives.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("sr-lockpath-{}.sock", std::process::id()));
    /// let listener = sharedring::Listener::bind(&path)?;
    /// assert_eq!(listener.lock_path(), path.with_extension("sock.lock"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// The path the socket is bound to.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("sr-path-{}.sock", std::process::id()));
    /// let listener = sharedring::Listener::bind(&path)?;
    /// assert_eq!(listener.path(), path);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn stale(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "{} appeared while we were binding it: another server that takes no lock \
             is starting there",
            path.display()
        ),
    )
}

/// Opens (creating, mode 0600) and locks `lock_path`, and writes our pid
/// into it for the error message of the next server that tries.
fn take_lock(lock_path: &Path) -> io::Result<OwnedFd> {
    // NOFOLLOW: a planted symbolic link is refused, not followed.
    let fd = rustix::fs::open(
        lock_path,
        OFlags::CREATE | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot open the lock file {}: {e}", lock_path.display()),
        )
    })?;
    if !rustix::fs::fstat(&fd)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        })
        .unwrap_or(false)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file: remove it", lock_path.display()),
        ));
    }
    match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut held = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut held);
            let who = match held.trim().parse::<u32>() {
                Ok(pid) => format!("a live server (pid {pid})"),
                Err(_) => "a live server".to_string(),
            };
            let socket = lock_path.with_extension("");
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{} is in use: {who} holds {}; stop it or choose another path",
                    socket.display(),
                    lock_path.display()
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    // Ours: record who we are (best effort; only for messages).
    let _ = rustix::fs::ftruncate(&fd, 0);
    let _ = rustix::io::pwrite(&fd, format!("{}\n", std::process::id()).as_bytes(), 0);
    Ok(fd)
}

/// With the lock held: removes the stale socket at `path`, unless it is
/// not a socket or something answers on it.
fn remove_stale(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{} exists and is not a socket: not replacing it; remove it first, or choose another path",
                path.display()
            ),
        ));
    }
    match UnixStream::connect(path) {
        Ok(s) => {
            let who = peer_credentials(&s)
                .ok()
                .and_then(|c| c.pid)
                .map_or(String::new(), |pid| format!(" (pid {pid})"));
            Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{} is in use: a live server{who} accepts connections on it \
                     without holding its lock file; stop it or choose another path",
                    path.display()
                ),
            ))
        }
        // Refused: nobody listens. Stale; ours to replace.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // A full backlog (EAGAIN) is a live server too; anything else:
        // not ours to judge, so not ours to remove.
        Err(e) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{} exists and could not be probed ({e}): not replacing it",
                path.display()
            ),
        )),
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl Drop for Listener {
    /// Removes the socket file and the lock file (we hold the lock, so
    /// both are ours), then releases the lock by closing it.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(&self.lock_path);
        let _ = &self.lock; // closed after this, with the struct
    }
}
