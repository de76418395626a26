//! Peers: this same bench binary, re-executed with a role.
//!
//! Forking a process that may have threads (criterion, a scoped thread of
//! an earlier row) is unsound, so every peer is a fresh `exec` of the bench
//! binary. The parent hands it descriptors by clearing their close-on-exec
//! flag and naming them in the environment; the first one is always a
//! control socket on which the parent sends `u64` commands (how many
//! messages to send, how many round trips to answer). The peer pins itself
//! to CPU 1 and dies with its parent.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const ROLE: &str = "SHAREDRING_BENCH_ROLE";
const FDS: &str = "SHAREDRING_BENCH_FDS";
const ARGS: &str = "SHAREDRING_BENCH_ARGS";

/// The parent's handle on a running peer.
pub struct Peer {
    child: Child,
    control: Option<UnixStream>,
}

impl Peer {
    /// Starts the bench binary again as `role`, handing it `fds` (in that
    /// order, after the control socket) and `args`.
    pub fn spawn(role: &str, fds: Vec<OwnedFd>, args: &[String]) -> std::io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        let mut all: Vec<OwnedFd> = vec![theirs.into()];
        all.extend(fds);
        for fd in &all {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
        }
        let numbers: Vec<String> = all.iter().map(|f| f.as_raw_fd().to_string()).collect();
        let child = Command::new(std::env::current_exe()?)
            .env(ROLE, role)
            .env(FDS, numbers.join(","))
            .env(ARGS, args.join(","))
            .spawn()?;
        // Our copies of the peer's descriptors close here.
        drop(all);
        Ok(Self {
            child,
            control: Some(ours),
        })
    }

    /// Sends one command.
    pub fn command(&mut self, value: u64) {
        self.control
            .as_mut()
            .expect("control socket open")
            .write_all(&value.to_ne_bytes())
            .expect("peer control socket");
    }

    /// The peer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the peer's one-word answer to a command.
    pub fn answer(&mut self) -> u64 {
        let mut word = [0u8; 8];
        self.control
            .as_mut()
            .expect("control socket open")
            .read_exact(&mut word)
            .expect("peer answer");
        u64::from_ne_bytes(word)
    }

    /// Kills and reaps the peer at once.
    pub fn kill(mut self) {
        self.control = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Hangs up (the peer exits at its next command read) and reaps the
    /// peer, killing it if it has not exited within two seconds.
    pub fn finish(mut self) {
        self.control = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.control.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a peer process was started with.
pub struct PeerEnv {
    /// The role the parent asked for.
    pub role: String,
    /// The descriptors after the control socket.
    pub fds: Vec<OwnedFd>,
    /// The arguments.
    pub args: Vec<String>,
    control: UnixStream,
}

impl PeerEnv {
    /// If this process is a peer: pins it to CPU 1, arranges for it to die
    /// with its parent, and returns what it was started with.
    pub fn from_env() -> Option<Self> {
        let role = std::env::var(ROLE).ok()?;
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
        crate::pin_to_cpu(1);
        let mut fds: Vec<OwnedFd> = std::env::var(FDS)
            .expect("peer descriptors")
            .split(',')
            .map(|s| {
                let n: i32 = s.parse().expect("descriptor number");
                // SAFETY: the parent cleared close-on-exec on exactly these
                // descriptors for us, and nothing else in this fresh
                // process owns them.
                unsafe { OwnedFd::from_raw_fd(n) }
            })
            .collect();
        for fd in &fds {
            let _ = rustix::io::fcntl_setfd(fd.as_fd(), rustix::io::FdFlags::CLOEXEC);
        }
        let control = UnixStream::from(fds.remove(0));
        let args = std::env::var(ARGS)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Self {
            role,
            fds,
            args,
            control,
        })
    }

    /// The next command, or `None` once the parent hung up.
    pub fn next_command(&mut self) -> Option<u64> {
        let mut word = [0u8; 8];
        self.control.read_exact(&mut word).ok()?;
        Some(u64::from_ne_bytes(word))
    }

    /// Answers the parent with one word.
    pub fn answer(&mut self, value: u64) {
        let _ = self.control.write_all(&value.to_ne_bytes());
    }

    /// Argument `i`, parsed.
    pub fn arg<T: std::str::FromStr>(&self, i: usize) -> T {
        self.args[i]
            .parse()
            .unwrap_or_else(|_| panic!("bad peer argument {:?}", self.args[i]))
    }

    /// Takes the next descriptor.
    pub fn take_fd(&mut self) -> OwnedFd {
        self.fds.remove(0)
    }
}

/// The peer side of "receive `n` messages per command, then answer with
/// `n`" over a message ring it accepts on its descriptor (the message and
/// broadcast benches' reference rows).
pub fn receive_messages(mut env: PeerEnv) {
    let mut rx = sharedring::MsgReceiver::accept(UnixStream::from(env.take_fd()))
        .expect("accept the message ring");
    let mut buf = Vec::new();
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            rx.recv(&mut buf, None).expect("receive a message");
        }
        env.answer(n);
    }
}

/// The same over a datagram socket (`SOCK_SEQPACKET`) given as the
/// descriptor: `recv` per message into a buffer of `max_msg` bytes.
pub fn receive_datagrams(mut env: PeerEnv, max_msg: usize) {
    let sock = env.take_fd();
    let mut buf = vec![0u8; max_msg];
    while let Some(n) = env.next_command() {
        for _ in 0..n {
            rustix::net::recv(&sock, &mut buf, rustix::net::RecvFlags::empty())
                .expect("receive a datagram");
        }
        env.answer(n);
    }
}
