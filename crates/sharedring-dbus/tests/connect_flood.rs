//! A third connection keeps sending messages that carry descriptors to the
//! unique names the daemon will hand out next, so that they reach a new
//! connection together with the end of its handshake: zbus then drops
//! that connection at its first message (see `sharedring_dbus::connect`
//! and "D-Bus companion" in docs/THREAT-MODEL.md). Every connection
//! [`connect`] and [`connect_async`] return must work.
//!
//! Whether a message lands in that window depends on scheduling, so the
//! test prints how many connections were made for the ones returned: on
//! the project's 2-vCPU VM, 229 to 244 for 200 (eight runs of `connect`,
//! three of `connect_async`; about one connection in six killed). Checked
//! to catch the bug: with the round trip taken out (a connection returned
//! as soon as it is built), both tests failed in every run, 8 of
//! `connect` and 3 of `connect_async`, within their first 14 connections
//! ("Missing file descriptors").

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::bus;
use sharedring_dbus::zbus::zvariant::Fd;
use sharedring_dbus::zbus::{self, Message};
use sharedring_dbus::{connect, connect_async, Error, PrivateBus};

/// Connections made under the flood.
const CONNECTIONS: u64 = 200;

/// How many of the next unique names each flood pass aims at.
const AHEAD: u64 = 3;

/// What the flood aims at, and how many connections were made.
struct Aim {
    /// The highest unique name number handed out so far.
    last: AtomicU64,
    made: AtomicU64,
}

impl Aim {
    /// Counts a connection attempt and moves the aim past its name.
    fn made(&self, conn: &zbus::Result<zbus::Connection>) {
        self.made.fetch_add(1, Ordering::Relaxed);
        if let Ok(c) = conn {
            let n = c.unique_name().unwrap().rsplit_once('.').unwrap().1;
            self.last.fetch_max(n.parse().unwrap(), Ordering::Relaxed);
        }
    }
}

/// Makes `CONNECTIONS` connections with `checked` while a stranger floods
/// the next unique names, and checks that each one works.
fn under_flood(
    what: &str,
    checked: impl Fn(&PrivateBus, &Aim) -> Result<zbus::blocking::Connection, Error>,
) {
    let bus = bus();
    let stranger = bus.connect().unwrap();
    let (prefix, n) = stranger
        .unique_name()
        .unwrap()
        .rsplit_once('.')
        .map(|(p, n)| (p.to_owned(), n.parse::<u64>().unwrap()))
        .unwrap();
    let aim = Aim {
        last: AtomicU64::new(n),
        made: AtomicU64::new(0),
    };
    let stop = AtomicBool::new(false);
    let fd: OwnedFd = UnixStream::pair().unwrap().0.into();
    let sent = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let next = aim.last.load(Ordering::Relaxed) + 1;
                for k in next..next + AHEAD {
                    let f = || Fd::from(fd.as_fd());
                    let msg = Message::method_call("/org/sharedring/Flood", "Flood")
                        .unwrap()
                        .destination(format!("{prefix}.{k}"))
                        .unwrap()
                        .build(&(f(), f(), f(), f()))
                        .unwrap();
                    // Sent to a name nobody has yet, the daemon refuses it:
                    // only what reaches the name's owner matters.
                    let _ = zbus::block_on(stranger.inner().send(&msg));
                    sent += 1;
                }
            }
            sent
        });
        let result = (|| -> Result<(), String> {
            for i in 0..CONNECTIONS {
                let conn = checked(&bus, &aim)
                    .map_err(|e| format!("connection {i}: {what} failed: {e}"))?;
                common::daemon_round_trip(&conn)
                    .map_err(|e| format!("connection {i} from {what} does not work: {e}"))?;
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        let sent = flood.join().unwrap();
        result.unwrap_or_else(|e| panic!("{e} (after {sent} flood messages)"));
        sent
    });
    println!(
        "{CONNECTIONS} connections from {what}, {} made, under {sent} messages with descriptors",
        aim.made.load(Ordering::Relaxed)
    );
}

#[test]
fn connections_from_connect_survive_a_flood_aimed_at_the_next_names() {
    under_flood("connect", |bus, aim| {
        connect(|| {
            let conn = bus.connect().map(zbus::blocking::Connection::into_inner);
            aim.made(&conn);
            conn.map(Into::into)
        })
    });
}

#[test]
fn connections_from_connect_async_survive_a_flood_aimed_at_the_next_names() {
    under_flood("connect_async", |bus, aim| {
        let conn = zbus::block_on(connect_async(|| async {
            let conn = bus.connect_async().await;
            aim.made(&conn);
            conn
        }))?;
        Ok(conn.into())
    });
}
