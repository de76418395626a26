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
