//! A client of the `dbus-server` example: asks the server for a ring over
//! the session bus and streams `f64` values through it.
//!
//! ```sh
//! cargo run --example dbus-client -- 1000000
//! ```
//!
//! Options: `--name NAME` (default `org.sharedring.Example`), then the
//! number of values (default 1,000,000). The bus is the one in
//! `DBUS_SESSION_BUS_ADDRESS`.

use std::io::Write;

use sharedring::{Options, Sender};
use sharedring_dbus::DEFAULT_PATH;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut name = "org.sharedring.Example".to_string();
    let mut count = 1_000_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--name" => name = args.next().ok_or("--name needs a value")?,
            n => count = n.parse()?,
        }
    }
    let conn = sharedring_dbus::connect(zbus::blocking::Connection::session)?;
    let mut tx: Sender<f64> = sharedring_dbus::open(&conn, &name, DEFAULT_PATH, &Options::new())?;
    println!(
        "dbus-client: ring of {} values from {name}",
        tx.capacity_elements()
    );
    std::io::stdout().flush()?;
    let batch: Vec<f64> = (0..1024).map(|i| i as f64 * 0.5).collect();
    let (mut sent, mut sum) = (0u64, 0f64);
    while sent < count {
        let n = (count - sent).min(batch.len() as u64) as usize;
        tx.send(&batch[..n], None)?;
        sum += batch[..n].iter().sum::<f64>();
        sent += n as u64;
    }
    println!(
        "dbus-client {}: sent {sent} values, sum = {sum}",
        std::process::id()
    );
    Ok(())
}
