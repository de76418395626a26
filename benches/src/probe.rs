//! The probe: a raw cross-core atomic ping-pong between this process (on
//! CPU 0) and a peer (on CPU 1), run before and after every row.
//!
//! The 2-vCPU virtual machines this project runs on are bimodal: most of
//! the time a cross-core round trip takes about 140 ns, and in episodes of
//! a few seconds about 3x as long, when everything cross-core is slower.
//! A row is comparable with its neighbours only if the probes around it
//! show the same mode. Between probes the peer sleeps on a futex, so it
//! takes no CPU from the rows.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

use crate::peer::{Peer, PeerEnv};
use crate::SharedPage;

/// The peer role of the probe.
pub const ROLE: &str = "probe";
/// The ping value that ends a probe session.
const STOP: u32 = u32::MAX;
const WARMUP: u32 = 2_000;
const BATCHES: usize = 31;
const BATCH: u32 = 400;

/// The parent's side of the probe.
pub struct Probe {
    page: SharedPage,
    peer: Option<Peer>,
    seq: u32,
}

impl Probe {
    /// Starts the probe's peer.
    pub fn start() -> std::io::Result<Self> {
        let page = SharedPage::new()?;
        let fd = rustix::io::dup(&page)?;
        let peer = Peer::spawn(ROLE, vec![fd], &[])?;
        Ok(Self {
            page,
            peer: Some(peer),
            seq: 0,
        })
    }

    /// One probe: the median over batches of the mean round trip, in ns.
    pub fn measure(&mut self) -> f64 {
        let (cmd, ping, pong) = (self.page.word(0), self.page.word(1), self.page.word(2));
        cmd.fetch_add(1, Ordering::Release);
        futex::wake(cmd, futex::Flags::empty(), 1).expect("futex wake");
        let one = |seq: &mut u32| {
            *seq = seq.wrapping_add(1);
            if *seq == STOP || *seq == 0 {
                *seq = 1;
            }
            ping.store(*seq, Ordering::Release);
            spin_until(pong, *seq);
        };
        for _ in 0..WARMUP {
            one(&mut self.seq);
        }
        let mut means = Vec::with_capacity(BATCHES);
        for _ in 0..BATCHES {
            let t = Instant::now();
            for _ in 0..BATCH {
                one(&mut self.seq);
            }
            means.push(t.elapsed().as_nanos() as f64 / f64::from(BATCH));
        }
        ping.store(STOP, Ordering::Release);
        spin_until(pong, STOP);
        means.sort_by(f64::total_cmp);
        means[BATCHES / 2]
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(peer) = self.peer.take() {
            peer.kill();
        }
    }
}

fn spin_until(word: &AtomicU32, value: u32) {
    let start = Instant::now();
    let mut spins = 0u32;
    while word.load(Ordering::Acquire) != value {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % (1 << 20) == 0 && start.elapsed() > Duration::from_secs(5) {
            panic!("probe peer does not answer");
        }
    }
}

/// The probe's peer: sleeps on the command word; on each new command,
/// echoes pings until `STOP`.
pub fn run_peer(mut env: PeerEnv) {
    let page = SharedPage::map(env.take_fd()).expect("map probe page");
    let (cmd, ping, pong) = (page.word(0), page.word(1), page.word(2));
    let mut seen = 0;
    loop {
        let c = cmd.load(Ordering::Acquire);
        if c == seen {
            // We die with the parent (PR_SET_PDEATHSIG), so no timeout.
            let _ = futex::wait(cmd, futex::Flags::empty(), c, None);
            continue;
        }
        seen = c;
        let mut last = pong.load(Ordering::Relaxed);
        loop {
            let v = ping.load(Ordering::Acquire);
            if v == last {
                std::hint::spin_loop();
                continue;
            }
            last = v;
            pong.store(v, Ordering::Release);
            if v == STOP {
                break;
            }
        }
    }
}
