//! Bad input from a real second process.
//!
//! Each test re-executes this test binary as the peer (see `testkit`): the
//! child plays a role from `play`, sends descriptors over a Unix socket
//! with `SCM_RIGHTS`, and waits until the parent closes the socket. The
//! parent receives them and checks how this crate answers. A `SIGBUS` in
//! the parent would kill the test binary, so "never SIGBUS" is checked by
//! every test that gets to its end.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::fs::{
    fcntl_add_seals, fcntl_get_seals, fstat, ftruncate, memfd_create, FileType, MemfdFlags, Mode,
    OFlags, SealFlags,
};
use rustix::io::Errno;
use shmem_seal::{
    Culprit, Error, HugePageSize, MemfdBuilder, NotMemfdReason, ReadOnlyMemory, SealedBlob,
    SharedMemory,
};

const PAGE: usize = 4096;

// ---------------------------------------------------------------------
// Plumbing
// ---------------------------------------------------------------------

/// The parent's handle on a peer: the child process and its socket.
struct Peer {
    child: Child,
    sock: Option<UnixStream>,
}

impl Peer {
    fn spawn(test_name: &str, role: &str) -> Peer {
        let (child, sock) = testkit::spawn_peer(test_name, role).expect("spawn peer");
        Peer {
            child,
            sock: Some(sock),
        }
    }

    fn sock(&self) -> &UnixStream {
        self.sock.as_ref().expect("socket open")
    }

    /// Receives one message and the descriptors attached to it.
    fn recv(&self, want: usize) -> Vec<OwnedFd> {
        let mut buf = [0u8; 16];
        let (_, fds) = testkit::recv_fds(self.sock(), &mut buf, want).expect("recv_fds");
        assert_eq!(fds.len(), want, "peer sent {} descriptors", fds.len());
        fds
    }

    /// Receives exactly one byte from the peer.
    fn recv_byte(&self) -> u8 {
        let mut b = [0u8];
        (&mut self.sock()).read_exact(&mut b).expect("peer byte");
        b[0]
    }

    fn send_byte(&self, b: u8) {
        (&mut self.sock()).write_all(&[b]).expect("send byte");
    }

    /// Closes the socket (the peer's cue to leave) and checks it exited
    /// cleanly, i.e. every assertion it made held.
    fn finish(mut self) {
        drop(self.sock.take());
        let status = self.child.wait().expect("wait peer");
        assert!(status.success(), "peer failed: {status}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // On an assertion failure in the parent: close the socket so the
        // child leaves, and reap it.
        drop(self.sock.take());
        let _ = self.child.wait();
    }
}

/// The child side: when this process is a peer, play the role and exit.
fn run_peer_if_child() {
    if let Some((role, sock)) = testkit::as_peer() {
        play(&role, &sock);
        // Wait for the parent to hang up, so our descriptors and mappings
        // stay alive while it tests.
        let mut rest = Vec::new();
        let _ = (&sock).read_to_end(&mut rest);
        std::process::exit(0);
    }
}

/// Says a test skipped its real subject, on stderr directly: the harness
/// captures `eprintln!` of passing tests, and a skip must not be silent.
fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {why}");
}

/// Serialises the tests of this binary, so that the descriptor counts of
/// [`FdCount`] see only the test that takes them.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs a hostile case and checks it left no descriptor open: `case`
/// owns everything it received, so all of it is closed when it returns.
/// Hold [`serial`] meanwhile, so that no other test opens or closes any.
fn without_leaks(case: impl FnOnce()) {
    let before = testkit::FdSnapshot::now();
    case();
    let leaked = testkit::fds_leaked_since(&before);
    assert!(leaked.is_empty(), "descriptors leaked: {leaked:?}");
}

/// Reopens our own descriptor `fd` through `/proc/self/fd` with `flags`,
/// as a peer can: a new open file description of the same memfd.
fn reopen(fd: &OwnedFd, flags: OFlags) -> OwnedFd {
    use std::os::fd::AsRawFd;
    rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("reopen through /proc/self/fd")
}

fn send(sock: &UnixStream, fds: &[BorrowedFd<'_>]) {
    testkit::send_fds(sock, b"fd", fds).expect("send_fds");
}

fn new_memfd(flags: MemfdFlags, len: u64) -> OwnedFd {
    let fd = memfd_create("peer", flags | MemfdFlags::CLOEXEC).expect("memfd_create");
    ftruncate(&fd, len).expect("ftruncate");
    fd
}

fn sealable_memfd(len: u64) -> OwnedFd {
    new_memfd(MemfdFlags::ALLOW_SEALING, len)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// Opens every descriptor with all three openers, each on its own
/// duplicate, and returns their errors.
fn open_all(fd: &OwnedFd, len: usize) -> [Error; 3] {
    let dup = || fd.try_clone().expect("dup");
    [
        SharedMemory::open(dup(), len).expect_err("SharedMemory::open must refuse"),
        ReadOnlyMemory::open(dup(), len).expect_err("ReadOnlyMemory::open must refuse"),
        SealedBlob::open(dup(), len).expect_err("SealedBlob::open must refuse"),
    ]
}

/// What the peer does in each role.
fn play(role: &str, sock: &UnixStream) {
    match role {
        "regular-file" => {
            let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("shmem-seal-{}", std::process::id()));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .expect("create file");
            file.set_len(PAGE as u64).expect("set_len");
            std::fs::remove_file(&path).expect("unlink");
            send(sock, &[file.as_fd()]);
        }
        "tmpfs-file" => {
            let path = format!("/dev/shm/shmem-seal-{}", std::process::id());
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .expect("create /dev/shm file");
            file.set_len(PAGE as u64).expect("set_len");
            send(sock, &[file.as_fd()]);
            // Unlink only once the parent has looked: the path is what
            // the kernel shows for it.
            let mut b = [0u8];
            let _ = (&mut &*sock).read(&mut b);
            let _ = std::fs::remove_file(&path);
        }
        "pipe" => {
            let (r, w) = rustix::pipe::pipe().expect("pipe");
            send(sock, &[r.as_fd(), w.as_fd()]);
        }
        "socket" => {
            let (a, _b) = UnixStream::pair().expect("socketpair");
            send(sock, &[a.as_fd()]);
        }
        "dev-zero" => {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/zero")
                .expect("/dev/zero");
            send(sock, &[f.as_fd()]);
        }
        "memfd-without-sealing" => {
            let fd = new_memfd(MemfdFlags::empty(), PAGE as u64);
            send(sock, &[fd.as_fd()]);
        }
        "memfd-reopened-read-only" => {
            // An unsealed memfd, and a sealed one, both reopened read-only
            // through /proc: seals cannot be added through a read-only
            // descriptor, and it cannot be mapped writable.
            let unsealed = sealable_memfd(PAGE as u64);
            let sealed = sealable_memfd(PAGE as u64);
            fcntl_add_seals(&sealed, SealFlags::SHRINK | SealFlags::GROW).expect("seal");
            let reopen = |fd: &OwnedFd| {
                use std::os::fd::AsRawFd;
                std::fs::File::open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                    .expect("reopen read-only")
            };
            let (a, b) = (reopen(&unsealed), reopen(&sealed));
            send(sock, &[a.as_fd(), b.as_fd()]);
        }
        "o-path-and-write-only" => {
            // A sealable memfd sealed against resizing, sent as an O_PATH
            // descriptor and as a write-only one (both reopened through
            // /proc), and an unsealed memfd reopened write-only.
            let sealed = sealable_memfd(PAGE as u64);
            fcntl_add_seals(&sealed, SealFlags::SHRINK | SealFlags::GROW).expect("seal");
            let unsealed = sealable_memfd(PAGE as u64);
            let path = reopen(&sealed, OFlags::PATH);
            let write_only = reopen(&sealed, OFlags::WRONLY);
            let unsealed_write_only = reopen(&unsealed, OFlags::WRONLY);
            send(
                sock,
                &[
                    path.as_fd(),
                    write_only.as_fd(),
                    unsealed_write_only.as_fd(),
                ],
            );
        }
        "seal-after-open" => {
            // An unsealed memfd. Once the parent has opened it, try every
            // seal that would hurt a read-write mapping, and report.
            let fd = sealable_memfd(PAGE as u64);
            send(sock, &[fd.as_fd()]);
            let mut b = [0u8];
            (&mut &*sock).read_exact(&mut b).expect("parent opened");
            for seal in [SealFlags::FUTURE_WRITE, SealFlags::WRITE, SealFlags::GROW] {
                (&mut &*sock)
                    .write_all(&[seal_answer(fcntl_add_seals(&fd, seal))])
                    .expect("report");
            }
        }
        "seal-race" => {
            // Each round, on the parent's "next": a fresh unsealed memfd;
            // on its "go" (sent right before it opens the memfd), wait a
            // varying few microseconds and seal it against writing, racing
            // the parent's checks and mmap; report whether the seal went
            // on. The parent hanging up ends the game.
            let mut round = 0u64;
            let mut b = [0u8];
            while (&mut &*sock).read_exact(&mut b).is_ok() && b[0] == b'n' {
                let fd = sealable_memfd(PAGE as u64);
                send(sock, &[fd.as_fd()]);
                (&mut &*sock).read_exact(&mut b).expect("go");
                let delay = Duration::from_nanos(round * 7919 % 60_000);
                let t = Instant::now();
                while t.elapsed() < delay {
                    std::hint::spin_loop();
                }
                let answer = seal_answer(fcntl_add_seals(&fd, SealFlags::FUTURE_WRITE));
                (&mut &*sock).write_all(&[answer]).expect("report");
                round += 1;
            }
        }
        "small-memfds" => {
            // Memfds of 0, 1 and PAGE - 1 bytes, sealed against resizing
            // (then the same, also sealed against writing), and an
            // unsealed one of 100 bytes.
            let mut fds = Vec::new();
            let resize = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
            for seals in [resize, resize | SealFlags::WRITE] {
                for len in [0, 1, PAGE as u64 - 1] {
                    let fd = sealable_memfd(len);
                    fcntl_add_seals(&fd, seals).expect("seal");
                    fds.push(fd);
                }
            }
            fds.push(sealable_memfd(100));
            let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
            send(sock, &borrowed);
        }
        "shrink-after-open" => {
            let len = 16 * PAGE;
            let fd = sealable_memfd(len as u64);
            rustix::io::pwrite(&fd, &pattern(len), 0).expect("pwrite");
            send(sock, &[fd.as_fd()]);
            // Wait until the parent has opened (and so sealed) it.
            let mut b = [0u8];
            (&mut &*sock).read_exact(&mut b).expect("parent opened");
            for target in [0, PAGE as u64] {
                let answer = match ftruncate(&fd, target) {
                    Ok(()) => 1,
                    Err(Errno::PERM) => 0,
                    Err(_) => 2,
                };
                (&mut &*sock).write_all(&[answer]).expect("report");
            }
        }
        "hold-writable-mapping" => {
            let fd = sealable_memfd(PAGE as u64);
            fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).expect("seal");
            let map = memmap2::MmapOptions::new()
                .len(PAGE)
                .map_raw(&fd)
                .expect("map");
            // SAFETY: in bounds of our own fresh mapping.
            unsafe { map.as_mut_ptr().write_volatile(0x5a) };
            send(sock, &[fd.as_fd()]);
            // Keep the mapping until the parent hangs up.
            let mut rest = Vec::new();
            let _ = (&mut &*sock).read_to_end(&mut rest);
            drop(map);
        }
        "write-once" => {
            let blob = SealedBlob::write_once("blob", 3 * PAGE, |buf| {
                buf.copy_from_slice(&pattern(3 * PAGE))
            })
            .expect("write_once");
            send(sock, &[blob.as_fd()]);
        }
        "future-write" => {
            let mem = MemfdBuilder::new("feed")
                .read_only_for_peers()
                .create(PAGE)
                .expect("create");
            mem.write_at(0, b"v1").expect("write");
            send(sock, &[mem.as_fd()]);
            let mut b = [0u8];
            (&mut &*sock).read_exact(&mut b).expect("parent read v1");
            mem.write_at(0, b"v2").expect("creator keeps writing");
            (&mut &*sock).write_all(b"w").expect("report");
        }
        "hugetlb" => {
            let mem = MemfdBuilder::new("huge")
                .hugetlb(HugePageSize::Default)
                .create(PAGE)
                .expect("hugetlb create (huge pages were reported free)");
            let page = mem.huge_page_size().expect("hugetlb page size") as usize;
            assert_eq!(mem.len(), page, "length rounded up to one huge page");
            mem.write_at(0, &pattern(PAGE)).expect("write");
            send(sock, &[mem.as_fd()]);
        }
        other => panic!("unknown role {other}"),
    }
}

/// What the peer reports for an `F_ADD_SEALS`: 1 added, 0 refused with
/// `EPERM`, 2 anything else.
fn seal_answer(r: Result<(), Errno>) -> u8 {
    match r {
        Ok(()) => 1,
        Err(Errno::PERM) => 0,
        Err(_) => 2,
    }
}

fn assert_not_memfd(errors: [Error; 3], want: NotMemfdReason) {
    for e in errors {
        match &e {
            Error::NotMemfd { reason, .. } if *reason == want => {}
            _ => panic!("expected NotMemfd({want:?}), got {e:?}"),
        }
        assert_eq!(e.culprit(), Culprit::Peer);
        assert!(e.to_string().contains("not a memfd"), "{e}");
    }
}

// ---------------------------------------------------------------------
// Not a memfd
// ---------------------------------------------------------------------

#[test]
fn regular_file_is_refused_as_not_a_memfd() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn("regular_file_is_refused_as_not_a_memfd", "regular-file");
        let fd = peer.recv(1).remove(0);
        // A file on a disk filesystem has no seals at all. (Should the target
        // dir sit on tmpfs, the file has seals and is told apart by its name.)
        let on_tmpfs = rustix::fs::fstatfs(&fd).unwrap().f_type as u32 == 0x0102_1994;
        let want = if on_tmpfs {
            NotMemfdReason::NotFromMemfdCreate
        } else {
            NotMemfdReason::NoSealSupport
        };
        assert_not_memfd(open_all(&fd, PAGE), want);
        peer.finish();
    });
}

#[test]
fn tmpfs_file_is_refused_as_not_a_memfd() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        if rustix::fs::statfs("/dev/shm").map(|s| s.f_type as u32) != Ok(0x0102_1994) {
            skipped("tmpfs_file_is_refused_as_not_a_memfd: /dev/shm is not a tmpfs here");
            return;
        }
        let peer = Peer::spawn("tmpfs_file_is_refused_as_not_a_memfd", "tmpfs-file");
        let fd = peer.recv(1).remove(0);
        let errors = open_all(&fd, PAGE);
        if let Error::NotMemfd { link, .. } = &errors[0] {
            let link = link.as_deref().expect("procfs link");
            assert!(link.starts_with("/dev/shm/shmem-seal-"), "{link}");
        }
        assert_not_memfd(errors, NotMemfdReason::NotFromMemfdCreate);
        // Kernel fact the check relies on: a tmpfs file answers F_GET_SEALS
        // with F_SEAL_SEAL, like a memfd made without MFD_ALLOW_SEALING.
        assert_eq!(rustix::fs::fcntl_get_seals(&fd), Ok(SealFlags::SEAL));
        peer.send_byte(b'k');
        peer.finish();
    });
}

#[test]
fn pipe_is_refused_as_not_a_memfd() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn("pipe_is_refused_as_not_a_memfd", "pipe");
        for fd in peer.recv(2) {
            assert_not_memfd(
                open_all(&fd, PAGE),
                NotMemfdReason::NotRegularFile(FileType::Fifo),
            );
        }
        peer.finish();
    });
}

#[test]
fn socket_is_refused_as_not_a_memfd() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn("socket_is_refused_as_not_a_memfd", "socket");
        let fd = peer.recv(1).remove(0);
        assert_not_memfd(
            open_all(&fd, PAGE),
            NotMemfdReason::NotRegularFile(FileType::Socket),
        );
        peer.finish();
    });
}

#[test]
fn dev_zero_is_refused_as_not_a_memfd() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn("dev_zero_is_refused_as_not_a_memfd", "dev-zero");
        let fd = peer.recv(1).remove(0);
        let errors = open_all(&fd, PAGE);
        if let Error::NotMemfd { link, .. } = &errors[0] {
            assert_eq!(link.as_deref(), Some("/dev/zero"));
        }
        assert_not_memfd(
            errors,
            NotMemfdReason::NotRegularFile(FileType::CharacterDevice),
        );
        peer.finish();
    });
}

// ---------------------------------------------------------------------
// Cannot seal
// ---------------------------------------------------------------------

#[test]
fn memfd_without_allow_sealing_is_refused_as_cannot_seal() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn(
            "memfd_without_allow_sealing_is_refused_as_cannot_seal",
            "memfd-without-sealing",
        );
        let fd = peer.recv(1).remove(0);
        for e in open_all(&fd, PAGE) {
            match &e {
                Error::CannotSeal {
                    seals,
                    missing,
                    source,
                } => {
                    assert_eq!(*seals, SealFlags::SEAL);
                    assert!(missing.contains(SealFlags::SHRINK));
                    assert_eq!(*source, Errno::PERM);
                }
                _ => panic!("expected CannotSeal, got {e:?}"),
            }
            assert_eq!(e.culprit(), Culprit::Peer);
            assert!(e.to_string().contains("cannot be sealed"), "{e}");
        }
        peer.finish();
    });
}

#[test]
fn memfd_reopened_read_only_cannot_be_sealed_or_opened_writable() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn(
            "memfd_reopened_read_only_cannot_be_sealed_or_opened_writable",
            "memfd-reopened-read-only",
        );
        let mut fds = peer.recv(2);
        let sealed = fds.pop().unwrap();
        let unsealed = fds.pop().unwrap();
        // No F_SEAL_SHRINK and no write access: the kernel refuses to add
        // it, so not even a read-only mapping is safe.
        match ReadOnlyMemory::open(unsealed.try_clone().unwrap(), PAGE) {
            Err(e @ Error::CannotSeal { source, .. }) => {
                assert_eq!(source, Errno::PERM);
                assert_eq!(e.culprit(), Culprit::Peer);
            }
            other => panic!("expected CannotSeal, got {other:?}"),
        }
        // A writable mapping cannot come from a read-only descriptor, sealed
        // or not: refused for that, before any seal is tried.
        for fd in [unsealed, sealed.try_clone().unwrap()] {
            match SharedMemory::open(fd, PAGE) {
                Err(e @ Error::NotWritable) => assert_eq!(e.culprit(), Culprit::Peer),
                other => panic!("expected NotWritable, got {other:?}"),
            }
        }
        // ...while a read-only one can.
        let ro = ReadOnlyMemory::open(sealed, PAGE).expect("read-only open");
        let mut buf = vec![1u8; PAGE];
        ro.read_at(0, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        peer.finish();
    });
}

#[test]
fn o_path_and_write_only_descriptors_are_the_peers_fault() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn(
            "o_path_and_write_only_descriptors_are_the_peers_fault",
            "o-path-and-write-only",
        );
        let mut fds = peer.recv(3).into_iter();
        let (path, write_only, unsealed_write_only) = (
            fds.next().unwrap(),
            fds.next().unwrap(),
            fds.next().unwrap(),
        );
        // The kernel facts that used to surface as our own failures: an
        // O_PATH descriptor cannot even be asked for its seals, and a
        // write-only one cannot be mapped.
        assert_eq!(fcntl_get_seals(&path), Err(Errno::BADF));
        // SAFETY: a fresh read-only mapping at a kernel-chosen address;
        // unmapped below if it were (wrongly) granted.
        let r = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                PAGE,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                &write_only,
                0,
            )
        };
        if let Ok(p) = r {
            // SAFETY: `p` is the PAGE-byte mapping just made.
            unsafe { rustix::mm::munmap(p, PAGE).unwrap() };
        }
        assert_eq!(r.err(), Some(Errno::ACCESS));

        let errors = open_all(&path, PAGE);
        if let Error::NotMemfd { link, .. } = &errors[0] {
            let link = link.as_deref().expect("procfs link");
            assert!(link.starts_with("/memfd:peer"), "{link}");
        }
        assert_not_memfd(errors, NotMemfdReason::PathOnly);
        for fd in [&write_only, &unsealed_write_only] {
            for e in open_all(fd, PAGE) {
                assert!(
                    matches!(e, Error::NotReadable),
                    "expected NotReadable, got {e:?}"
                );
                assert_eq!(e.culprit(), Culprit::Peer);
                assert!(e.to_string().contains("write-only"), "{e}");
            }
        }
        // Refused before any seal was added: the peer's memfd is as it was.
        assert_eq!(
            fcntl_get_seals(&unsealed_write_only).map(|s| s - SealFlags::EXEC),
            Ok(SealFlags::empty())
        );
        peer.finish();
    });
}

// ---------------------------------------------------------------------
// Seals frozen by the read-write opener
// ---------------------------------------------------------------------

#[test]
fn peer_cannot_seal_shared_memory_against_writing_after_we_opened_it() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn(
            "peer_cannot_seal_shared_memory_against_writing_after_we_opened_it",
            "seal-after-open",
        );
        let fd = peer.recv(1).remove(0);
        assert_eq!(
            fcntl_get_seals(&fd).map(|s| s - SealFlags::EXEC),
            Ok(SealFlags::empty())
        );
        let mem = SharedMemory::open(fd, PAGE).expect("open");
        // Shrink and seal went on together.
        assert_eq!(
            mem.seals().unwrap() - SealFlags::EXEC,
            SealFlags::SHRINK | SealFlags::SEAL
        );
        peer.send_byte(b'o');
        assert_eq!(
            peer.recv_byte(),
            0,
            "F_SEAL_FUTURE_WRITE must fail with EPERM"
        );
        assert_eq!(peer.recv_byte(), 0, "F_SEAL_WRITE must fail with EPERM");
        assert_eq!(peer.recv_byte(), 0, "F_SEAL_GROW must fail with EPERM");
        // Our mapping stays writable, and so would a new one.
        mem.write_at(PAGE - 1, &[7]).unwrap();
        let again =
            SharedMemory::open(mem.as_fd().try_clone_to_owned().unwrap(), PAGE).expect("reopen");
        let mut b = [0u8];
        again.read_at(PAGE - 1, &mut b).unwrap();
        assert_eq!(b, [7]);
        peer.finish();
    });
}

#[test]
fn peer_racing_a_write_seal_against_our_open_gets_a_consistent_answer() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn(
            "peer_racing_a_write_seal_against_our_open_gets_a_consistent_answer",
            "seal-race",
        );
        let (mut opened, mut refused) = (0u32, 0u32);
        for round in 0..400 {
            peer.send_byte(b'n');
            let fd = peer.recv(1).remove(0);
            peer.send_byte(b'g');
            let r = SharedMemory::open(fd, PAGE);
            let sealed = peer.recv_byte();
            match r {
                // We won: our F_SEAL_SEAL went on first, so the peer's
                // write seal was refused, and the mapping is writable.
                Ok(mem) => {
                    assert_eq!(sealed, 0, "round {round}: opened, yet the peer sealed it");
                    mem.write_at(0, &[1]).unwrap();
                    opened += 1;
                }
                // The peer won: its seal went on before ours, and we saw
                // it, before or after our F_SEAL_SEAL.
                Err(e @ Error::SealedAgainstWriting { seals }) => {
                    assert!(seals.contains(SealFlags::FUTURE_WRITE), "{e}");
                    assert_eq!(e.culprit(), Culprit::Peer);
                    assert_eq!(sealed, 1, "round {round}: refused, yet the seal failed");
                    refused += 1;
                }
                // Never an mmap failure (or anything else) blamed on us.
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        eprintln!("seal race: opened {opened}, refused {refused}");
        peer.finish();
    });
}

// ---------------------------------------------------------------------
// Too small
// ---------------------------------------------------------------------

#[test]
fn memfd_smaller_than_expected_is_refused_as_too_small_without_sigbus() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn(
            "memfd_smaller_than_expected_is_refused_as_too_small_without_sigbus",
            "small-memfds",
        );
        let fds = peer.recv(7);
        let sizes = [0u64, 1, PAGE as u64 - 1, 0, 1, PAGE as u64 - 1, 100];
        for (i, (fd, size)) in fds.iter().zip(sizes).enumerate() {
            let mut errors = Vec::from(open_all(fd, PAGE));
            if i < 3 || i == 6 {
                // Sealed with F_SEAL_SEAL but not F_SEAL_WRITE: the write-once
                // opener needs a seal it cannot add, and says so before it
                // looks at the size. (The unsealed one got F_SEAL_SEAL from
                // the read-write opener that `open_all` tried first: it
                // freezes the seals in the same call that adds
                // F_SEAL_SHRINK, before the size is read.)
                let e = errors.pop().unwrap();
                assert!(matches!(e, Error::CannotSeal { .. }), "{e:?}");
            } else if i < 6 {
                // Sealed against writing: the read-write opener refuses it
                // for that, before it looks at the size.
                let e = errors.remove(0);
                assert!(matches!(e, Error::SealedAgainstWriting { .. }), "{e:?}");
            }
            for e in errors {
                match &e {
                    Error::TooSmall { expected, actual } => {
                        assert_eq!(*expected, PAGE as u64);
                        assert_eq!(*actual, size);
                    }
                    _ => panic!("expected TooSmall for a {size}-byte memfd, got {e:?}"),
                }
                let msg = e.to_string();
                assert!(
                    msg.contains("too small")
                        && msg.contains(&format!(" {size} bytes"))
                        && msg.contains(&PAGE.to_string()),
                    "{msg}"
                );
            }
        }
        // The unsealed one got F_SEAL_SHRINK (and F_SEAL_SEAL) from us
        // before its size was read.
        assert!(rustix::fs::fcntl_get_seals(&fds[6])
            .unwrap()
            .contains(SealFlags::SHRINK | SealFlags::SEAL));
        // And a length that fits is accepted: the check is not just "refuse".
        let ok = ReadOnlyMemory::open(fds[2].try_clone().unwrap(), PAGE - 1).expect("fits");
        let mut last = [9u8];
        ok.read_at(PAGE - 2, &mut last).unwrap();
        assert_eq!(last, [0]);
        peer.finish();
    });
}

// ---------------------------------------------------------------------
// Shrink after open
// ---------------------------------------------------------------------

#[test]
fn peer_cannot_shrink_an_unsealed_memfd_after_we_opened_it() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn(
            "peer_cannot_shrink_an_unsealed_memfd_after_we_opened_it",
            "shrink-after-open",
        );
        let len = 16 * PAGE;
        let fd = peer.recv(1).remove(0);
        assert_eq!(rustix::fs::fcntl_get_seals(&fd), Ok(SealFlags::empty()));
        let mem = SharedMemory::open(fd, len).expect("open");
        assert!(mem.seals().unwrap().contains(SealFlags::SHRINK));
        peer.send_byte(b'o');
        // The peer's ftruncate to 0 and to one page both failed with EPERM.
        assert_eq!(peer.recv_byte(), 0, "ftruncate(0) must fail with EPERM");
        assert_eq!(peer.recv_byte(), 0, "ftruncate(PAGE) must fail with EPERM");
        assert_eq!(fstat(&mem).unwrap().st_size, len as i64);
        // We keep working: read and write every byte of the mapping.
        let mut buf = vec![0u8; len];
        mem.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, pattern(len));
        mem.write_at(0, &vec![0xee; len]).unwrap();
        let base = mem.as_ptr().as_ptr();
        for i in (0..len).step_by(PAGE).chain([len - 1]) {
            // SAFETY: `i < mem.len()`; the mapping is read-write and cannot
            // be truncated under us.
            assert_eq!(unsafe { base.add(i).read_volatile() }, 0xee);
        }
        peer.finish();
    });
}

// ---------------------------------------------------------------------
// Write seals
// ---------------------------------------------------------------------

#[test]
fn write_once_open_is_refused_while_peer_holds_writable_mapping() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn(
            "write_once_open_is_refused_while_peer_holds_writable_mapping",
            "hold-writable-mapping",
        );
        let fd = peer.recv(1).remove(0);
        let e = SealedBlob::open(fd.try_clone().unwrap(), PAGE).expect_err("must refuse");
        match &e {
            Error::WriteSealBusy { seals, source } => {
                assert_eq!(*seals, SealFlags::SHRINK | SealFlags::GROW);
                assert_eq!(*source, Errno::BUSY);
            }
            _ => panic!("expected WriteSealBusy, got {e:?}"),
        }
        assert_eq!(e.culprit(), Culprit::Peer);
        assert!(e.to_string().contains("writable mapping"), "{e}");
        // The memfd is left as it was, and can still be read as memory that
        // may change.
        assert_eq!(
            rustix::fs::fcntl_get_seals(&fd),
            Ok(SealFlags::SHRINK | SealFlags::GROW)
        );
        let ro = ReadOnlyMemory::open(fd, PAGE).expect("read-only open");
        let mut b = [0u8];
        ro.read_at(0, &mut b).unwrap();
        assert_eq!(b, [0x5a]);
        peer.finish();
    });
}

#[test]
fn write_once_blob_from_peer_is_readable_and_immutable() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn(
            "write_once_blob_from_peer_is_readable_and_immutable",
            "write-once",
        );
        let fd = peer.recv(1).remove(0);
        let blob = SealedBlob::open(fd.try_clone().unwrap(), 3 * PAGE).expect("open blob");
        assert_eq!(blob.as_bytes(), &pattern(3 * PAGE)[..]);
        assert!(blob
            .seals()
            .unwrap()
            .contains(SealFlags::WRITE | SealFlags::SHRINK | SealFlags::SEAL));
        // It cannot be opened for writing.
        match SharedMemory::open(fd, 3 * PAGE) {
            Err(Error::SealedAgainstWriting { seals }) => assert!(seals.contains(SealFlags::WRITE)),
            other => panic!("expected SealedAgainstWriting, got {other:?}"),
        }
        peer.finish();
    });
}

#[test]
fn future_write_sealed_memfd_is_read_only_for_us_and_still_changes() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        let peer = Peer::spawn(
            "future_write_sealed_memfd_is_read_only_for_us_and_still_changes",
            "future-write",
        );
        let fd = peer.recv(1).remove(0);
        let ro = ReadOnlyMemory::open(fd.try_clone().unwrap(), PAGE).expect("open");
        let mut buf = [0u8; 2];
        ro.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"v1");
        match SharedMemory::open(fd.try_clone().unwrap(), PAGE) {
            Err(Error::SealedAgainstWriting { seals }) => {
                assert!(seals.contains(SealFlags::FUTURE_WRITE))
            }
            other => panic!("expected SealedAgainstWriting, got {other:?}"),
        }
        // The guarantee itself: the kernel refuses us a writable mapping.
        // SAFETY: a fresh mapping at a kernel-chosen address; unmapped below
        // if it were (wrongly) granted.
        let r = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                PAGE,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &fd,
                0,
            )
        };
        if let Ok(p) = r {
            // SAFETY: `p` is the PAGE-byte mapping just made.
            unsafe { rustix::mm::munmap(p, PAGE).unwrap() };
        }
        assert_eq!(r.err(), Some(Errno::PERM));
        // And the creator keeps writing: the bytes change under us.
        peer.send_byte(b'r');
        assert_eq!(peer.recv_byte(), b'w');
        ro.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"v2");
        peer.finish();
    });
}

// ---------------------------------------------------------------------
// Huge pages
// ---------------------------------------------------------------------

/// `HugePages_Free` of the default size, from /proc/meminfo.
fn free_huge_pages() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    info.lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn hugetlb_works_or_fails_clearly_when_no_huge_pages() {
    run_peer_if_child();
    let _serial = serial();
    without_leaks(|| {
        if free_huge_pages() == 0 {
            let e = MemfdBuilder::new("huge")
                .hugetlb(HugePageSize::Default)
                .create(PAGE)
                .expect_err("no huge pages are free, creation must fail");
            match &e {
                Error::HugePagesUnavailable { page_size, source } => {
                    assert!(page_size.is_power_of_two(), "{page_size}");
                    assert_eq!(source.raw_os_error(), Some(Errno::NOMEM.raw_os_error()));
                }
                _ => panic!("expected HugePagesUnavailable, got {e:?}"),
            }
            assert_eq!(e.culprit(), Culprit::System);
            assert!(e.to_string().contains("huge pages"), "{e}");
            skipped(&format!(
                "hugetlb exchange between processes: no free huge pages \
             (HugePages_Free is 0); asserted the clear error instead: {e}"
            ));
            return;
        }
        let peer = Peer::spawn(
            "hugetlb_works_or_fails_clearly_when_no_huge_pages",
            "hugetlb",
        );
        let fd = peer.recv(1).remove(0);
        // Not sealed against writing, so holes can be punched in it: refused
        // unless the caller accepts the risk.
        for e in [
            SharedMemory::open(fd.try_clone().unwrap(), PAGE).unwrap_err(),
            ReadOnlyMemory::open(fd.try_clone().unwrap(), PAGE).unwrap_err(),
        ] {
            assert!(matches!(e, Error::HugetlbRefused { .. }), "{e:?}");
        }
        let mem = SharedMemory::open_allowing_hugetlb(fd, PAGE).expect("open hugetlb memfd");
        assert_eq!(mem.len(), PAGE);
        let page = mem.huge_page_size().expect("seen as hugetlb") as usize;
        assert!(page > PAGE);
        let mut buf = vec![0u8; PAGE];
        mem.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, pattern(PAGE));
        peer.finish();
    });
}
