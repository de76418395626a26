//! One publisher, eight subscriber processes: six honest, one hostile
//! (it tries to write the shared data, floods wake-ups, then stalls), one
//! killed mid-stream. The publisher never waits for any of them; each
//! honest subscriber checks every message it gets, counts what it lost,
//! and the hostile one reports what it achieved: nothing.
//!
//! ```sh
//! cargo run --release --example broadcast
//! ```

use std::io::{IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::{fallocate, ftruncate, open, FallocateFlags, Mode, OFlags};
use rustix::mm::{mmap, mprotect, munmap, MapFlags, MprotectFlags, ProtFlags};
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use sharedring::broadcast::{
    BroadcastError, BroadcastOptions, MsgPublisher, MsgSubscriber, SubscribeOptions,
};
use sharedring::Listener;

const SUBSCRIBERS: usize = 8;
const HOSTILE: usize = 6;
const DOOMED: usize = 7;
const MESSAGES: u64 = 400_000;
const MSG: usize = 64;

/// Message `seq`: its number, then 56 bytes that follow from it.
fn fill(seq: u64, buf: &mut [u8; MSG]) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..].fill(seq as u8);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--subscriber" {
        let n: usize = args[2].parse()?;
        let sock = UnixStream::connect(&args[3])?;
        return if n == HOSTILE {
            hostile(sock)
        } else {
            honest(n, sock)
        };
    }

    let dir = std::env::temp_dir().join(format!("sharedring-broadcast-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("feed.sock");
    let listener = Listener::bind(&path)?;
    let opts = BroadcastOptions::new().slots(1024).max_msg(MSG);
    let mut publisher = MsgPublisher::new(&opts)?;
    let me = rustix::process::getuid().as_raw();

    let mut children: Vec<Child> = Vec::new();
    for n in 0..SUBSCRIBERS {
        children.push(
            Command::new(std::env::current_exe()?)
                .args(["--subscriber", &n.to_string(), path.to_str().ok_or("path")?])
                .stdout(Stdio::inherit())
                .spawn()?,
        );
        // Only our own user may subscribe.
        match publisher.accept_from(&listener, |creds| creds.uid == me)? {
            Some(id) => println!("publisher: subscriber {n} joined as id {id}"),
            None => println!("publisher: refused a stranger"),
        }
    }

    let mut msg = [0u8; MSG];
    let started = Instant::now();
    let mut slowest_publish = Duration::ZERO;
    for seq in 0..MESSAGES {
        fill(seq, &mut msg);
        let t = Instant::now();
        publisher.publish(&msg)?;
        slowest_publish = slowest_publish.max(t.elapsed());
        if seq == MESSAGES / 2 {
            let doomed = &mut children[DOOMED];
            doomed.kill()?;
            doomed.wait()?;
            println!("publisher: killed subscriber {DOOMED} mid-stream at message {seq}");
        }
        if seq % 512 == 0 {
            // A modest pace, so that honest readers can keep up.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let elapsed = started.elapsed();
    println!(
        "publisher: {MESSAGES} messages of {MSG} B in {elapsed:.2?}, slowest publish {slowest_publish:.2?}, \
         {} wake-up syscalls",
        publisher.wake_syscalls()
    );
    std::thread::sleep(Duration::from_millis(200));
    println!("publisher: subscribers now (the killed one has been reaped):");
    for s in publisher.subscribers() {
        let pid = s.credentials.and_then(|c| c.pid).unwrap_or(0);
        match s.cursor {
            Some(_) => println!("  id {} pid {pid}: lag {} messages", s.id, s.lag),
            None => println!("  id {} pid {pid}: publishes an impossible cursor", s.id),
        }
    }
    drop(publisher); // closes the stream: honest subscribers finish
    for (n, mut c) in children.into_iter().enumerate() {
        if n == HOSTILE {
            c.kill()?; // it stalls forever
        }
        let status = c.wait()?;
        if n != HOSTILE && n != DOOMED && !status.success() {
            return Err(format!("subscriber {n} failed: {status}").into());
        }
    }
    drop(listener);
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

/// Reads to the end, checking every message.
fn honest(n: usize, sock: UnixStream) -> Result<(), Box<dyn std::error::Error>> {
    let mut sub = MsgSubscriber::join(sock, &SubscribeOptions::new())?;
    let mut buf = [0u8; MSG];
    let (mut got, mut missed, mut last) = (0u64, 0u64, None::<u64>);
    loop {
        match sub.recv(&mut buf) {
            Ok(len) => {
                let seq = u64::from_le_bytes(buf[..8].try_into()?);
                if len != MSG || buf[8..].iter().any(|&b| b != seq as u8) {
                    return Err(format!("subscriber {n}: message {seq} is damaged").into());
                }
                if last.is_some_and(|l| seq <= l) {
                    return Err(format!("subscriber {n}: {seq} out of order").into());
                }
                last = Some(seq);
                got += 1;
            }
            Err(BroadcastError::Lagged { missed: m }) => missed += m,
            Err(BroadcastError::Closed | BroadcastError::PeerGone) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("subscriber {n}: received {got} intact, lost {missed} to lag");
    Ok(())
}

/// Takes the descriptors the way a hostile process would (without the
/// library's checks), tries to write the shared data every way it can,
/// floods the shared wake-ups, then stalls.
fn hostile(sock: UnixStream) -> Result<(), Box<dyn std::error::Error>> {
    let mut offer = [0u8; 64];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    recvmsg(
        &sock,
        &mut [IoSliceMut::new(&mut offer)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(it) = m {
            fds.extend(it);
        }
    }
    let data = fds.first().ok_or("no data descriptor")?;
    let len = u64::from_ne_bytes(offer[24..32].try_into()?) as usize;
    let mut out = String::new();
    let mut say = |what: &str, r: rustix::io::Result<()>| {
        out.push_str(&match r {
            Ok(()) => format!("subscriber {HOSTILE} (hostile): {what}: SUCCEEDED\n"),
            Err(e) => format!("subscriber {HOSTILE} (hostile): {what}: refused ({e})\n"),
        });
    };
    // SAFETY: fresh mappings of our own, unmapped at once if made.
    unsafe {
        say(
            "mmap(PROT_WRITE, MAP_SHARED)",
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                data,
                0,
            )
            .map(|p| {
                let _ = munmap(p, len);
            }),
        );
        let ro = mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::SHARED,
            data,
            0,
        )?;
        say(
            "mprotect(PROT_WRITE) of a read-only mapping",
            mprotect(ro, len, MprotectFlags::READ | MprotectFlags::WRITE),
        );
        let _ = munmap(ro, len);
    }
    say("write()", rustix::io::write(data, b"evil").map(drop));
    say("pwrite()", rustix::io::pwrite(data, b"evil", 0).map(drop));
    let reopened = format!("/proc/self/fd/{}", data.as_raw_fd());
    say(
        "reopen O_RDWR, then pwrite()",
        open(
            reopened.as_str(),
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|f| rustix::io::pwrite(&f, b"evil", 0).map(drop)),
    );
    say(
        "fallocate(PUNCH_HOLE)",
        fallocate(
            data,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            0,
            4096,
        ),
    );
    say("ftruncate(0)", ftruncate(data, 0));
    // Flood the shared eventfd: others may wake for nothing, never miss one.
    if let Some(event) = fds.get(2) {
        for _ in 0..100_000 {
            let _ = rustix::io::write(event.as_fd(), &1u64.to_ne_bytes());
        }
        out.push_str(&format!(
            "subscriber {HOSTILE} (hostile): flooded the shared eventfd 100000 times\n"
        ));
    }
    print!("{out}");
    std::io::stdout().flush()?;
    // Stall: never read, never leave.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
