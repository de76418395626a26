//! The broadcast data memfd is read-only for every process but its
//! creator, enforced by the kernel (`F_SEAL_FUTURE_WRITE`, `SHRINK`,
//! `GROW`, `SEAL`): a real subscriber process tries every way to write it,
//! and each fails; and a memfd without `F_SEAL_FUTURE_WRITE` is refused.

mod broadcast_attacks;

use std::io::{Read, Write};
use std::os::fd::AsFd;

use sharedring::shmem_seal::{Error, MemfdBuilder, ReadOnlyMemory, SharedMemory};

const LEN: usize = 64 * 1024;
const MARK: &[u8] = b"published by the creator only";

/// The child: receives the memfd, opens it as a subscriber does, tries
/// every write, and reports each outcome.
fn play_if_child() {
    let Some((role, mut sock)) = testkit::as_peer() else {
        return;
    };
    assert_eq!(role, "attacker");
    let mut b = [0u8; 1];
    let (_, mut fds) = testkit::recv_fds(&sock, &mut b, 1).unwrap();
    let fd = fds.pop().expect("one descriptor");
    let dup = fd.try_clone().unwrap();
    let mem = ReadOnlyMemory::open_write_sealed(fd, LEN).expect("a sealed memfd is accepted");
    let attempts = broadcast_attacks::try_every_write(dup.as_fd(), LEN, mem.as_ptr());
    sock.write_all(broadcast_attacks::report(&attempts).as_bytes())
        .unwrap();
    std::process::exit(0);
}

#[test]
fn a_subscriber_process_cannot_write_the_sealed_data_memfd_in_any_way() {
    play_if_child();
    let mem = MemfdBuilder::new("bcast-data")
        .read_only_for_peers()
        .create(LEN)
        .unwrap();
    mem.write_at(0, MARK).unwrap();
    let (mut child, mut sock) = testkit::spawn_peer(
        "a_subscriber_process_cannot_write_the_sealed_data_memfd_in_any_way",
        "attacker",
    )
    .unwrap();
    testkit::send_fds(&sock, &[0], &[mem.as_fd()]).unwrap();
    let mut report = String::new();
    sock.read_to_string(&mut report).unwrap();
    assert!(child.wait().unwrap().success(), "{report}");
    eprint!("{report}");
    let lines: Vec<&str> = report.lines().collect();
    for must in [
        "mmap(PROT_WRITE, MAP_SHARED)",
        "mprotect(read-only MAP_SHARED -> PROT_WRITE)",
        "write()",
        "pwrite()",
        "reopen O_RDWR + write()",
        "reopen O_RDWR + pwrite()",
        "reopen O_RDWR + mmap(PROT_WRITE, MAP_SHARED)",
        "reopen O_RDWR + fallocate(PUNCH_HOLE)",
        "reopen O_RDWR + ftruncate(0)",
        "fallocate(PUNCH_HOLE)",
        "ftruncate(0)",
        "ftruncate(grow)",
        "madvise(MADV_REMOVE)",
        "pwrite(/proc/self/mem) at the mapping",
        "mmap(PROT_WRITE, MAP_PRIVATE) reaching the shared bytes",
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{must}: ")))
            .unwrap_or_else(|| panic!("attempt {must:?} not reported:\n{report}"));
        assert!(line.contains(": refused ("), "{line}\n{report}");
    }
    // The bytes and the size are as the creator left them.
    let mut buf = vec![0u8; MARK.len()];
    mem.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, MARK);
    let st = rustix::fs::fstat(mem.as_fd()).unwrap();
    assert_eq!(st.st_size as usize, LEN);
    // The creator still writes through the mapping it made before sealing.
    mem.write_at(0, b"X").unwrap();
}

#[test]
fn a_data_memfd_without_future_write_is_refused() {
    let writable = SharedMemory::create("bcast-data", LEN).unwrap();
    let r = ReadOnlyMemory::open_write_sealed(writable.as_fd().try_clone_to_owned().unwrap(), LEN);
    match r {
        Err(e @ Error::NotWriteSealed { .. }) => {
            assert_eq!(e.culprit(), sharedring::shmem_seal::Culprit::Peer);
            assert!(e.to_string().contains("F_SEAL_FUTURE_WRITE"), "{e}");
        }
        other => panic!("expected NotWriteSealed, got {other:?}"),
    }
    // Without F_SEAL_SEAL a subscriber could not add the seal for the
    // creator either: it is the creator's to add.
    let sealed = MemfdBuilder::new("bcast-data")
        .read_only_for_peers()
        .create(LEN)
        .unwrap();
    ReadOnlyMemory::open_write_sealed(sealed.as_fd().try_clone_to_owned().unwrap(), LEN).unwrap();
}

/// The attempts are real: on a memfd sealed only against resizing (what
/// a SPSC ring uses), the same code writes the bytes.
#[test]
fn the_same_attempts_write_a_memfd_without_the_write_seal() {
    let mem = SharedMemory::create("not-read-only", LEN).unwrap();
    let ro = ReadOnlyMemory::open(mem.as_fd().try_clone_to_owned().unwrap(), LEN).unwrap();
    let attempts = broadcast_attacks::try_every_write(mem.as_fd(), LEN, ro.as_ptr());
    for must in [
        "mmap(PROT_WRITE, MAP_SHARED)",
        "write()",
        "pwrite()",
        "reopen O_RDWR + pwrite()",
        "fallocate(PUNCH_HOLE)",
    ] {
        let (_, r) = attempts.iter().find(|(n, _)| *n == must).unwrap();
        assert_eq!(*r, Ok(()), "{must} should write an unsealed memfd");
    }
}
