//! The Rust side of `examples/c/rust_peer.c` (run both with `cargo xtask
//! c-examples`): it accepts the element ring of `u64` that the C program
//! creates and sums what arrives, then creates a message ring, sends the
//! sum and 1000 text messages, and closes its stream.
//!
//! Usage: `c_partner FD-ELEMENTS FD-MESSAGES` (two connected Unix stream
//! sockets the C program passed down).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use sharedring::{Error, MsgSender, Options, Receiver};

fn socket(arg: Option<String>) -> UnixStream {
    let fd: RawFd = arg
        .and_then(|a| a.parse().ok())
        .expect("usage: c_partner FD-ELEMENTS FD-MESSAGES");
    // SAFETY: the C parent passed this descriptor down for us alone and
    // closed its own copy; nothing else in this process owns it.
    UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (elements, messages) = (socket(args.next()), socket(args.next()));

    let mut rx = Receiver::<u64>::accept(elements)?;
    let mut buf = [0u64; 1024];
    let mut sum = 0u64;
    loop {
        match rx.recv(&mut buf, None) {
            Ok(n) => sum += buf[..n].iter().sum::<u64>(),
            Err(Error::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    eprintln!("c_partner: the C sender closed its stream; sum {sum}");

    let mut tx = MsgSender::create_with(messages, &Options::new().capacity_bytes(1 << 12))?;
    tx.send(&sum.to_ne_bytes(), None)?;
    for i in 0..1000 {
        tx.send(format!("line {i} from Rust").as_bytes(), None)?;
    }
    tx.close()?;
    Ok(())
}
