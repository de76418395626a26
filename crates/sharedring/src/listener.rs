//! A listening socket for servers: owner-only by default, whatever the
//! umask, with the peer's credentials visible before any ring is set up.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::fs::{renameat_with, RenameFlags, CWD};

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
    /// [`io::ErrorKind::AddrInUse`] if `path` exists (a stale socket from
    /// a server that crashed: remove it first).
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
        if path.exists() {
            return Err(stale(&path));
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
        Ok(Self { inner, path })
    }

    /// Accepts a connection and returns it with the peer's credentials
    /// (see the [type's example](Listener)).
    pub fn accept(&self) -> io::Result<(UnixStream, PeerCredentials)> {
        let (stream, _) = self.inner.accept()?;
        let creds = peer_credentials(&stream)?;
        Ok((stream, creds))
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
            "{} exists; if it is a stale socket from a server that is no longer \
             running, remove it first",
            path.display()
        ),
    )
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl Drop for Listener {
    /// Removes the socket file: we created it.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
