//! A client of the `server` example: connects, accepts the ring the server
//! creates for it, and streams `f64` values.
//!
//! ```sh
//! cargo run --release --example client -- /tmp/sharedring.sock 1000000
//! ```

use std::os::unix::net::UnixStream;

use sharedring::Sender;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/tmp/sharedring.sock".into());
    let count: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let mut tx = Sender::<f64>::accept(UnixStream::connect(&path)?)?;
    let batch: Vec<f64> = (0..1024).map(|i| i as f64 * 0.5).collect();
    let mut sent = 0u64;
    let mut sum = 0f64;
    while sent < count {
        let n = (count - sent).min(batch.len() as u64) as usize;
        tx.send(&batch[..n], None)?;
        sum += batch[..n].iter().sum::<f64>();
        sent += n as u64;
    }
    println!(
        "client {}: sent {sent} values, sum = {sum}",
        std::process::id()
    );
    Ok(())
}
