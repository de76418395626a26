//! Cross-process wake-up round trip: the parent wakes a forked child, which
//! wakes the parent back; both sides wait blocking (no spinning). Compared
//! side by side in one run:
//!
//! - `eventfd-notify/io_uring`: this crate's default path,
//! - `eventfd-notify/write`: this crate's fallback path,
//! - `pipe`: one byte each way over two pipes, blocking read/write,
//! - `futex`: a raw futex ping-pong on two words of a `MAP_SHARED` page.
//!
//! The children are forked before criterion starts (no threads exist yet),
//! and killed at the end. Run: `cargo bench -p eventfd-notify --bench roundtrip`.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use criterion::Criterion;
use eventfd_notify::{Notifier, NotifyPath, Waiter, Wake};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use rustix::thread::futex;

/// Forks a child that runs `child` forever; returns its pid.
fn spawn(child: impl FnOnce()) -> Pid {
    // SAFETY: called from `main` before criterion or anything else has
    // started a thread, so the child is a full copy of a single-threaded
    // process and may allocate and make any call.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            pin_to_cpu(1);
            child();
            std::process::exit(0)
        }
        ForkResult::Parent { child } => child,
    }
}

/// Pins the calling thread to `cpu` (if the machine has it). The parent
/// runs on CPU 0 and every peer on CPU 1, so each round trip crosses CPUs
/// the same way: without pinning, the scheduler sometimes puts both on one
/// CPU (a ~2 µs context-switch ping-pong) and sometimes not (an idle vCPU
/// wake-up, tens of µs on these VMs), and which one a case gets is luck.
fn pin_to_cpu(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn eventfd() -> OwnedFd {
    rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap()
}

fn dup(fd: &OwnedFd) -> OwnedFd {
    fd.try_clone().unwrap()
}

/// Our crate, with the notifier on `path`. Returns (child pid, parent's
/// notifier towards the child, parent's waiter for the child's answer).
fn ours(path: NotifyPath) -> (Pid, OwnedFd, OwnedFd) {
    let (to_child, to_parent) = (eventfd(), eventfd());
    let (c_wait, c_notify) = (dup(&to_child), dup(&to_parent));
    let pid = spawn(move || {
        let w = Waiter::from_received(c_wait).unwrap();
        let n = Notifier::from_received_on(c_notify, path).unwrap();
        loop {
            assert_eq!(w.wait(None).unwrap(), Wake::Woken);
            n.notify().unwrap();
        }
    });
    (pid, to_child, to_parent)
}

fn main() {
    pin_to_cpu(0);
    // --- fork every peer first, while the process is single-threaded ---
    let (pid_uring, uring_tx, uring_rx) = ours(NotifyPath::IoUring);
    let (pid_write, write_tx, write_rx) = ours(NotifyPath::Write);

    let (p_to_child_r, p_to_child_w) = rustix::pipe::pipe().unwrap();
    let (p_to_parent_r, p_to_parent_w) = rustix::pipe::pipe().unwrap();
    let pid_pipe = spawn(move || {
        let mut r = std::fs::File::from(p_to_child_r);
        let mut w = std::fs::File::from(p_to_parent_w);
        let mut b = [0u8; 1];
        loop {
            r.read_exact(&mut b).unwrap();
            w.write_all(&b).unwrap();
        }
    });

    // SAFETY: a fresh anonymous shared mapping (null hint, no MAP_FIXED);
    // it stays mapped for the whole process lifetime (never unmapped).
    let page = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
        )
    }
    .unwrap();
    // SAFETY: the page is zeroed, 4096 bytes, page-aligned, shared with the
    // child, and only ever accessed through these atomics.
    let (ping, pong): (&'static AtomicU32, &'static AtomicU32) = unsafe {
        let p = page.cast::<AtomicU32>();
        (&*p, &*p.add(16))
    };
    let pid_futex = spawn(move || {
        let mut seen = 0;
        loop {
            let v = ping.load(Ordering::Acquire);
            if v == seen {
                let _ = futex::wait(ping, futex::Flags::empty(), v, None);
                continue;
            }
            seen = v;
            pong.store(v, Ordering::Release);
            futex::wake(pong, futex::Flags::empty(), 1).unwrap();
        }
    });

    // --- the parent's halves ---
    let uring_n = Notifier::from_received_on(uring_tx, NotifyPath::IoUring).unwrap();
    let uring_w = Waiter::from_received(uring_rx).unwrap();
    let write_n = Notifier::from_received_on(write_tx, NotifyPath::Write).unwrap();
    let write_w = Waiter::from_received(write_rx).unwrap();
    let mut pipe_w = std::fs::File::from(p_to_child_w);
    let mut pipe_r = std::fs::File::from(p_to_parent_r);

    let futex_seq = std::cell::Cell::new(ping.load(Ordering::Relaxed));
    let pipe_w = std::cell::RefCell::new(&mut pipe_w);
    let pipe_r = std::cell::RefCell::new(&mut pipe_r);
    let rt_uring = || {
        uring_n.notify().unwrap();
        uring_w.wait(None).unwrap();
    };
    let rt_write = || {
        write_n.notify().unwrap();
        write_w.wait(None).unwrap();
    };
    let rt_pipe = || {
        let mut byte = [0u8; 1];
        pipe_w.borrow_mut().write_all(&byte).unwrap();
        pipe_r.borrow_mut().read_exact(&mut byte).unwrap();
    };
    let rt_futex = || {
        let seq = futex_seq.get().wrapping_add(1);
        futex_seq.set(seq);
        ping.store(seq, Ordering::Release);
        futex::wake(ping, futex::Flags::empty(), 1).unwrap();
        loop {
            let v = pong.load(Ordering::Acquire);
            if v == seq {
                break;
            }
            let _ = futex::wait(pong, futex::Flags::empty(), v, None);
        }
    };
    let cases: [(&str, &dyn Fn()); 4] = [
        ("eventfd-notify/io_uring", &rt_uring),
        ("eventfd-notify/write", &rt_write),
        ("pipe", &rt_pipe),
        ("futex", &rt_futex),
    ];

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    let mut g = c.benchmark_group("wakeup_roundtrip");
    for (name, rt) in cases {
        g.bench_function(name, |b| b.iter(rt));
    }
    g.finish();
    c.final_summary();
    interleaved(&cases);

    for pid in [pid_uring, pid_write, pid_pipe, pid_futex] {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
}

/// Criterion runs the cases one after another, so a change in machine load
/// between them (other builds on a shared 2-vCPU VM) skews the ratios. This
/// pass interleaves them: `ROUNDS` rounds, each timing `BATCH` round trips
/// of every case in turn, then reports each case's median batch and the
/// ratios of those medians, which drift hits evenly.
fn interleaved(cases: &[(&str, &dyn Fn()); 4]) {
    const ROUNDS: usize = 41;
    const BATCH: u32 = 1000;
    let mut per_case: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, rt)) in cases.iter().enumerate() {
            let t = std::time::Instant::now();
            for _ in 0..BATCH {
                rt();
            }
            per_case[i].push(t.elapsed() / BATCH);
        }
    }
    let medians: Vec<Duration> = per_case
        .iter_mut()
        .map(|v| {
            v.sort();
            v[v.len() / 2]
        })
        .collect();
    println!(
        "\ninterleaved: {ROUNDS} rounds x {BATCH} round trips per case, median per round trip"
    );
    for ((name, _), m) in cases.iter().zip(&medians) {
        println!("  {name:<26} {m:>10.2?}");
    }
    let (ours, pipe, futex) = (
        medians[0].as_secs_f64(),
        medians[2].as_secs_f64(),
        medians[3].as_secs_f64(),
    );
    println!(
        "  ratio io_uring / futex     {:>10.2}x  (target <= 1.10)",
        ours / futex
    );
    println!(
        "  ratio io_uring / pipe      {:>10.2}x  (target <= 1.00)",
        ours / pipe
    );
    println!(
        "  ratio write    / futex     {:>10.2}x",
        medians[1].as_secs_f64() / futex
    );
}
