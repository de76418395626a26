//! A server with many clients over a real session bus: the server owns a bus name
//! and gives each client its own ring (keeping the receiving end); each
//! client streams `f64` values; the server prints a sum per client and
//! notices a client that exits or is killed (`NameOwnerChanged`).
//!
//! ```sh
//! # On a desktop the session bus is already there; elsewhere start one:
//! dbus-run-session -- sh -c '
//!   cargo run --example dbus-server -- --once &
//!   sleep 2; cargo run --example dbus-client -- 1000000; wait'
//! ```
//!
//! Options: `--name NAME` (default `org.sharedring.Example`), `--once`
//! (stop after the first client, for scripts). The bus is the one in
//! `DBUS_SESSION_BUS_ADDRESS`.

use std::io::Write;

use sharedring::{Error, Options, Receiver};
use sharedring_dbus::{Caller, RingServer, DEFAULT_PATH, INTERFACE};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut name = "org.sharedring.Example".to_string();
    let mut once = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--name" => name = args.next().ok_or("--name needs a value")?,
            "--once" => once = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let conn = sharedring_dbus::connect(zbus::blocking::Connection::session)?;
    let server = RingServer::<Receiver<f64>>::serve(
        &conn,
        DEFAULT_PATH,
        &Options::new().capacity_elements(1 << 14),
    )?;
    // The name last: a client that finds it finds the object too.
    conn.request_name(name.as_str())?;
    println!("dbus-server: serving {INTERFACE} at {name} {DEFAULT_PATH}");
    std::io::stdout().flush()?;
    loop {
        let (rx, caller) = server.accept(None)?;
        let handle = std::thread::spawn(move || serve(rx, caller));
        if once {
            handle.join().expect("client thread panicked");
            return Ok(());
        }
    }
}

fn serve(mut rx: Receiver<f64>, caller: Caller) {
    let who = format!(
        "{} (pid {})",
        caller.name,
        caller.pid.map_or("?".into(), |p| p.to_string())
    );
    let mut buf = vec![0f64; 4096];
    let (mut sum, mut count) = (0f64, 0u64);
    let outcome = loop {
        match rx.recv(&mut buf, None) {
            Ok(n) => {
                sum += buf[..n].iter().sum::<f64>();
                count += n as u64;
            }
            Err(Error::Closed) => break "finished".to_string(),
            Err(Error::PeerGone) => break "vanished (crashed or killed)".to_string(),
            Err(e) => break format!("dropped ({e})"),
        }
    };
    println!("dbus-server: client {who} {outcome} after {count} values, sum = {sum}");
    let _ = std::io::stdout().flush();
}
