//! Bus connections that survived the start of zbus's reading.

use futures_lite::future;
use sharedring::DEFAULT_HANDSHAKE_TIMEOUT;

use crate::bus;
use crate::error::Error;

/// How many connections [`connect`] makes before it gives up.
pub const CONNECT_ATTEMPTS: usize = 8;

/// Makes a bus connection with `make` and returns it once a round trip to
/// the bus daemon went through on it; a connection that failed the round
/// trip is dropped and a new one made, at most [`CONNECT_ATTEMPTS`] in
/// all.
///
/// Why: zbus (5.19, and 6.2.1 too) sends `Hello` together with the end of
/// its authentication and reads ahead. If a message carrying descriptors
/// for the new connection's unique name arrives in that read, zbus files
/// the descriptors under the first message it parses next, finds them
/// superfluous and drops the connection (`MissingParameter("Missing file
/// descriptors")`). Unique names are handed out in order, so any other
/// connection on the bus can do this on purpose, to every process that
/// connects. A connection dies of it while it parses the messages that
/// came in with its handshake, or never, so one round trip to the
/// daemon, whose reply comes after those messages, tells the two apart;
/// the next connection gets a new unique name. See "D-Bus companion" in `docs/THREAT-MODEL.md`.
///
/// Each round trip waits at most [`DEFAULT_HANDSHAKE_TIMEOUT`].
///
/// ```no_run
/// let conn = sharedring_dbus::connect(zbus::blocking::Connection::session)?;
/// # Ok::<(), sharedring_dbus::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Bus`] with the last attempt's error (`make`'s, or its round
/// trip's) once [`CONNECT_ATTEMPTS`] attempts failed: a wrong address or
/// a refused authentication fails them all, quickly.
/// [`Error::TimedOut`] if the daemon did not answer a round trip in time.
///
/// With an async connection: [`connect_async`].
pub fn connect(
    mut make: impl FnMut() -> zbus::Result<zbus::blocking::Connection>,
) -> Result<zbus::blocking::Connection, Error> {
    let conn = zbus::block_on(connect_async(|| {
        std::future::ready(make().map(zbus::blocking::Connection::into_inner))
    }))?;
    Ok(conn.into())
}

/// [`connect`] for async connections: `make` is, for example,
/// `zbus::Connection::session`.
///
/// ```no_run
/// # async fn f() -> Result<(), sharedring_dbus::Error> {
/// let conn = sharedring_dbus::connect_async(zbus::Connection::session).await?;
/// # let _ = conn;
/// # Ok(())
/// # }
/// ```
pub async fn connect_async<F>(mut make: impl FnMut() -> F) -> Result<zbus::Connection, Error>
where
    F: std::future::Future<Output = zbus::Result<zbus::Connection>>,
{
    let mut failed = None;
    for _ in 0..CONNECT_ATTEMPTS {
        // zbus's `build` can fail of it too (when it reads its first
        // message before returning): also tried again.
        let conn = match make().await {
            Ok(conn) => conn,
            Err(e) => {
                failed = Some(Error::Bus(e));
                continue;
            }
        };
        let ping = async { bus::ping_daemon(&conn).await.map_err(Error::Bus) };
        let timer = async {
            async_io::Timer::after(DEFAULT_HANDSHAKE_TIMEOUT).await;
            Err(Error::TimedOut)
        };
        match future::or(ping, timer).await {
            Ok(()) => return Ok(conn),
            Err(Error::TimedOut) => return Err(Error::TimedOut),
            Err(e) => failed = Some(e),
        }
    }
    Err(failed.expect("CONNECT_ATTEMPTS is not zero"))
}
