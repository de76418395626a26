//! The `tokio` feature: `AsyncWaiter::wait` on tokio's reactor.
#![cfg(feature = "tokio")]

use std::time::Duration;

use eventfd_notify::{AsyncWaiter, Notifier, Waiter};

#[tokio::test(flavor = "current_thread")]
async fn async_wait_completes_when_another_thread_notifies() {
    let waiter = Waiter::new().unwrap();
    let notifier = Notifier::from_received(waiter.try_clone_fd().unwrap()).unwrap();
    let waiter = AsyncWaiter::new(waiter).unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        notifier.notify().unwrap();
    });
    tokio::time::timeout(Duration::from_secs(10), waiter.wait())
        .await
        .expect("woken before the timeout")
        .unwrap();
    t.join().unwrap();
    assert!(
        !waiter.try_wait().unwrap(),
        "the wait consumed the notification"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn async_wait_sleeps_again_when_the_counter_was_drained_behind_its_back() {
    let waiter = Waiter::new().unwrap();
    let thief = Waiter::from_received(waiter.try_clone_fd().unwrap()).unwrap();
    let notifier = Notifier::from_received(waiter.try_clone_fd().unwrap()).unwrap();
    let waiter = AsyncWaiter::new(waiter).unwrap();
    // A readiness edge whose notification someone else consumes.
    notifier.notify().unwrap();
    assert!(thief.try_wait().unwrap());
    let r = tokio::time::timeout(Duration::from_millis(100), waiter.wait()).await;
    assert!(
        r.is_err(),
        "nothing left to consume: the wait must keep sleeping"
    );
    // And a later notification still wakes it.
    notifier.notify().unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter.wait())
        .await
        .expect("woken by the later notification")
        .unwrap();
}

#[test]
fn async_waiter_outside_a_runtime_is_an_error_not_a_panic() {
    let waiter = Waiter::new().unwrap();
    assert!(AsyncWaiter::new(waiter).is_err());
}

/// A thread writing to the eventfd as fast as it can, until dropped.
struct Flood {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Flood {
    fn start(fd: std::os::fd::OwnedFd) -> Flood {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut writes = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let _ = rustix::io::write(&fd, &1u64.to_ne_bytes());
                writes += 1;
            }
            writes
        });
        Flood {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn a_loop_of_async_waits_under_tokio_timeout_ends_at_its_deadline_despite_a_flood() {
    const DEADLINE: Duration = Duration::from_millis(200);
    let waiter = Waiter::new().unwrap();
    let flood = Flood::start(waiter.try_clone_fd().unwrap());
    // Run the runtime on its own thread, so that a wait loop that never
    // yields fails this test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = rt.block_on(async {
            let waiter = AsyncWaiter::new(waiter).unwrap();
            let start = std::time::Instant::now();
            let r = tokio::time::timeout(DEADLINE, async {
                loop {
                    waiter.wait().await.unwrap();
                }
            })
            .await;
            (r.is_err(), start.elapsed())
        });
        let _ = tx.send(result);
    });
    let (timed_out, took) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the wait loop never yielded to the timer");
    assert!(flood.stop() > 0);
    assert!(timed_out, "the loop cannot end but by the timeout");
    assert!(took >= DEADLINE, "timed out early: {took:?}");
    assert!(took < DEADLINE + Duration::from_secs(1), "took {took:?}");
}
