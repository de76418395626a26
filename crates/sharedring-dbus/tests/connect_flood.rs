//! A third connection keeps sending messages that carry descriptors to the
//! unique names the daemon will hand out next, so that they reach a new
//! connection together with the end of its handshake: zbus then drops
//! that connection at its first message (see `sharedring_dbus::connect`
//! and "D-Bus companion" in docs/THREAT-MODEL.md). Every connection
//! [`connect`] returns must work.
//!
//! Whether a message lands in that window depends on scheduling, so the
//! test prints how many connections `connect` made for the ones it
//! returned: on the project's 2-vCPU VM, 230 to 244 for 200 in five runs
//! (about one connection in six killed). Checked to catch the bug: with
//! the round trip taken out of `connect` (a connection returned as soon
//! as it is built), the check below failed in 5 of 5 runs, within the
//! first 14 connections ("Missing file descriptors").

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::bus;
use sharedring_dbus::zbus::zvariant::Fd;
use sharedring_dbus::zbus::Message;
use sharedring_dbus::{connect, Error};

/// Connections made under the flood.
const CONNECTIONS: u64 = 200;

/// How many of the next unique names each flood pass aims at.
const AHEAD: u64 = 3;

#[test]
fn connections_from_connect_survive_a_flood_aimed_at_the_next_names() {
    let bus = bus();
    let stranger = bus.connect().unwrap();
    let (prefix, n) = stranger
        .unique_name()
        .unwrap()
        .rsplit_once('.')
        .map(|(p, n)| (p.to_owned(), n.parse::<u64>().unwrap()))
        .unwrap();
    // The highest unique name number handed out so far.
    let last = AtomicU64::new(n);
    let stop = AtomicBool::new(false);
    let fd: OwnedFd = UnixStream::pair().unwrap().0.into();
    let made = AtomicU64::new(0);
    let sent = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let next = last.load(Ordering::Relaxed) + 1;
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
                    let _ = sharedring_dbus::zbus::block_on(stranger.inner().send(&msg));
                    sent += 1;
                }
            }
            sent
        });
        let result = (|| -> Result<(), String> {
            for i in 0..CONNECTIONS {
                let conn = connect(|| {
                    made.fetch_add(1, Ordering::Relaxed);
                    let conn = bus.connect();
                    if let Ok(c) = &conn {
                        let n = c.unique_name().unwrap().rsplit_once('.').unwrap().1;
                        last.fetch_max(n.parse().unwrap(), Ordering::Relaxed);
                    }
                    conn
                })
                .map_err(|e: Error| format!("connection {i}: connect failed: {e}"))?;
                conn.call_method(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    Some("org.freedesktop.DBus"),
                    "GetId",
                    &(),
                )
                .map_err(|e| format!("connection {i} from connect does not work: {e}"))?;
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        let sent = flood.join().unwrap();
        result.unwrap_or_else(|e| panic!("{e} (after {sent} flood messages)"));
        sent
    });
    println!(
        "{CONNECTIONS} connections from connect, {} made, under {sent} messages with descriptors",
        made.load(Ordering::Relaxed)
    );
}
