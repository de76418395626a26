//! The io_uring a `Notifier` signals through is created by its first
//! `notify`; when it cannot be created then (here: no descriptor left,
//! `EMFILE`, in a child process with a lowered `RLIMIT_NOFILE`), that
//! wake-up still arrives (by the write path), and a later notify, with a
//! descriptor free again, works as before.

use std::os::fd::OwnedFd;

use eventfd_notify::{Notifier, Waiter};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

const TEST: &str = "a_wake_up_is_not_lost_when_the_io_uring_cannot_be_created";

fn child() {
    let waiter = Waiter::new().unwrap();
    let notifier = Notifier::for_waiter(&waiter).unwrap();
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(64),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    // Fill the descriptor table.
    let mut hoard: Vec<OwnedFd> = Vec::new();
    loop {
        match waiter.try_clone_fd() {
            Ok(fd) => hoard.push(fd),
            Err(_) => break,
        }
        assert!(hoard.len() < 100, "the limit did not take");
    }
    notifier
        .notify()
        .expect("no io_uring possible: the write path wakes");
    assert!(waiter.try_wait().unwrap(), "the wake-up arrived");
    // A descriptor free again: the next notify makes its io_uring.
    hoard.clear();
    notifier.notify().unwrap();
    assert!(waiter.try_wait().unwrap());
}

#[test]
fn a_wake_up_is_not_lost_when_the_io_uring_cannot_be_created() {
    if let Some((_role, _sock)) = testkit::as_peer() {
        drop(_sock);
        child();
        std::process::exit(0);
    }
    let (mut child, _sock) = testkit::spawn_peer(TEST, "child").unwrap();
    assert!(child.wait().unwrap().success(), "the child's checks failed");
}
