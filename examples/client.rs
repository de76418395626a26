//! A client of the `server` example: connects, says what it streams (one
//! byte: `e` for `f64` values, `m` for messages), accepts the ring the
//! server creates for it, streams, and closes the stream so that the
//! server counts it as finished (a client killed midway is reported as
//! killed instead).
//!
//! ```sh
//! cargo run --release --example client -- /tmp/sharedring.sock 1000000
//! cargo run --release --example client -- /tmp/sharedring.sock 10000 --messages 4096
//! ```

use std::io::Write;
use std::os::unix::net::UnixStream;

use sharedring::{MsgSender, Sender};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .cloned()
        .unwrap_or_else(|| "/tmp/sharedring.sock".into());
    let count: u64 = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let messages = args.iter().position(|a| a == "--messages");
    let mut stream = UnixStream::connect(&path)?;
    match messages {
        None => {
            stream.write_all(b"e")?;
            let mut tx = Sender::<f64>::accept(stream)?;
            let batch: Vec<f64> = (0..1024).map(|i| i as f64 * 0.5).collect();
            let (mut sent, mut sum) = (0u64, 0f64);
            while sent < count {
                let n = (count - sent).min(batch.len() as u64) as usize;
                tx.send(&batch[..n], None)?;
                sum += batch[..n].iter().sum::<f64>();
                sent += n as u64;
            }
            tx.close()?;
            println!(
                "client {}: sent {sent} values, sum = {sum}",
                std::process::id()
            );
        }
        Some(at) => {
            let size: usize = args
                .get(at + 1)
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(4096);
            stream.write_all(b"m")?;
            let mut tx = MsgSender::accept(stream)?;
            let msg = vec![0x5au8; size];
            for _ in 0..count {
                tx.send(&msg, None)?;
            }
            tx.close()?;
            println!(
                "client {}: sent {count} messages of {size} bytes",
                std::process::id()
            );
        }
    }
    Ok(())
}
