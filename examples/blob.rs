//! Share a write-once blob with a child process: the parent fills a sealed
//! memfd, the child maps it read-only and checks it. Sealing against writes
//! makes a plain `&[u8]` view sound on both sides.
//!
//! ```sh
//! cargo run --example blob
//! ```

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

use sharedring::SealedBlob;

const LEN: usize = 1 << 20;

fn pattern(i: usize) -> u8 {
    (i * 31 % 253) as u8
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let fd: i32 = args[2].parse()?;
        // SAFETY: inherited from the parent, owned by nothing else here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let blob = SealedBlob::open(fd, LEN)?;
        let ok = blob
            .as_bytes()
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(i));
        println!(
            "child: mapped {} read-only bytes, contents {}",
            blob.len(),
            if ok { "intact" } else { "WRONG" }
        );
        return if ok {
            Ok(())
        } else {
            Err("blob contents differ".into())
        };
    }

    let blob = SealedBlob::write_once("demo-blob", LEN, |bytes| {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = pattern(i);
        }
    })?;
    println!(
        "parent: sealed a {} byte blob (seals: {:?})",
        blob.len(),
        blob.seals()?
    );
    // Hand a duplicate to the child, inheritable across exec.
    let dup = blob.as_fd().try_clone_to_owned()?;
    rustix::io::fcntl_setfd(&dup, rustix::io::FdFlags::empty())?;
    let status = Command::new(std::env::current_exe()?)
        .args(["--child", &dup.as_raw_fd().to_string()])
        .status()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }
    println!("parent: child verified the blob");
    Ok(())
}
