//! A listening socket for servers: owner-only by default, with the peer's
//! credentials visible before any ring is set up.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Who is on the other end of a Unix socket, as the kernel recorded it at
/// `connect` time (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process ID.
    pub pid: i32,
    /// The peer's user ID.
    pub uid: u32,
    /// The peer's group ID.
    pub gid: u32,
}

/// The credentials of the process at the other end of `stream`.
///
/// ```
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let creds = sharedring::peer_credentials(&a)?;
/// assert_eq!(creds.pid as u32, std::process::id());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///  - [unix(7), `SO_PEERCRED`](https://man7.org/linux/man-pages/man7/unix.7.html)
pub fn peer_credentials(stream: &UnixStream) -> io::Result<PeerCredentials> {
    let cred = rustix::net::sockopt::socket_peercred(stream)?;
    Ok(PeerCredentials {
        pid: cred.pid.as_raw_nonzero().get(),
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
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
/// assert_eq!(creds.pid as u32, std::process::id()); // we connected to ourselves
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

impl Listener {
    /// Binds `path` with owner-only permissions (0600).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::bind_with_mode(path, 0o600)
    }

    /// Binds `path` with the given permission bits.
    ///
    /// The socket is bound under a temporary name in the same directory,
    /// given its mode, and only then renamed to `path`, so that no client
    /// can connect through looser permissions in between.
    pub fn bind_with_mode(path: impl AsRef<Path>, mode: u32) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "socket path has no file name")
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} exists; remove a stale socket first", path.display()),
            ));
        }
        let inner = UnixListener::bind(&tmp)?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Self { inner, path })
    }

    /// Accepts a connection and returns it with the peer's credentials.
    pub fn accept(&self) -> io::Result<(UnixStream, PeerCredentials)> {
        let (stream, _) = self.inner.accept()?;
        let creds = peer_credentials(&stream)?;
        Ok((stream, creds))
    }

    /// The path the socket is bound to.
    pub fn path(&self) -> &Path {
        &self.path
    }
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
