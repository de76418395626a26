//! In-process behaviour of the API: what the creator gets, and what the
//! caller is refused. The hostile-peer cases live in `peer.rs`.

use std::io;
use std::os::fd::AsFd;

use rustix::fs::{fcntl_get_seals, fstat, SealFlags};
use rustix::io::Errno;
use shmem_seal::{Culprit, Error, MemfdBuilder, ReadOnlyMemory, SealedBlob, SharedMemory};

#[test]
fn created_memory_is_sealed_zeroed_and_close_on_exec() {
    let mem = SharedMemory::create("t", 10_000).unwrap();
    assert_eq!(mem.len(), 10_000);
    assert!(!mem.is_empty());
    let seals = fcntl_get_seals(&mem).unwrap();
    assert!(seals.contains(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL));
    assert_eq!(fstat(&mem).unwrap().st_size, 10_000);
    let fd_flags = rustix::io::fcntl_getfd(&mem).unwrap();
    assert!(fd_flags.contains(rustix::io::FdFlags::CLOEXEC));
    let mut buf = vec![1u8; 10_000];
    mem.read_at(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn created_memory_cannot_be_resized() {
    let mem = SharedMemory::create("t", 4096).unwrap();
    assert_eq!(rustix::fs::ftruncate(&mem, 0), Err(Errno::PERM));
    assert_eq!(rustix::fs::ftruncate(&mem, 8192), Err(Errno::PERM));
}

#[test]
fn builder_always_adds_the_shrink_seal() {
    let mem = MemfdBuilder::new("t")
        .seals(SealFlags::empty())
        .create(4096)
        .unwrap();
    // F_SEAL_EXEC comes from MFD_NOEXEC_SEAL on kernels that have it.
    assert_eq!(mem.seals().unwrap() - SealFlags::EXEC, SealFlags::SHRINK);
}

#[test]
fn builder_refuses_the_write_seal() {
    let e = MemfdBuilder::new("t")
        .seals(SealFlags::WRITE)
        .create(4096)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidSeals { .. }), "{e:?}");
    assert_eq!(e.culprit(), Culprit::Caller);
}

#[test]
fn zero_length_and_bad_names_are_caller_errors() {
    let e = SharedMemory::create("t", 0).unwrap_err();
    assert!(matches!(e, Error::InvalidLength { len: 0, .. }), "{e:?}");
    let e = SealedBlob::write_once("t", 0, |_| ()).unwrap_err();
    assert!(matches!(e, Error::InvalidLength { len: 0, .. }), "{e:?}");
    let e = SharedMemory::create(&"n".repeat(250), 4096).unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e:?}");
    let e = SharedMemory::create("a\0b", 4096).unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e:?}");
    assert_eq!(e.culprit(), Culprit::Caller);
}

#[test]
fn copies_outside_the_mapping_are_refused() {
    let mem = SharedMemory::create("t", 100).unwrap();
    let mut buf = [0u8; 10];
    assert!(mem.read_at(90, &mut buf).is_ok());
    let e = mem.read_at(91, &mut buf).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfBounds {
                offset: 91,
                len: 10,
                size: 100
            }
        ),
        "{e:?}"
    );
    assert!(mem.write_at(usize::MAX, &buf).is_err());
}

#[test]
fn open_maps_only_the_expected_length() {
    let mem = SharedMemory::create("t", 8192).unwrap();
    let theirs = SharedMemory::open(mem.as_fd().try_clone_to_owned().unwrap(), 4096).unwrap();
    assert_eq!(theirs.len(), 4096);
    let mut b = [0u8];
    assert!(theirs.read_at(4096, &mut b).is_err());
}

#[test]
fn open_adds_the_shrink_seal_to_a_sealable_memfd() {
    // The builder always seals SHRINK, so make a raw memfd instead.
    let fd = rustix::fs::memfd_create("raw", rustix::fs::MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&fd, 4096).unwrap();
    let dup = fd.try_clone().unwrap();
    let _mem = SharedMemory::open(dup, 4096).unwrap();
    assert!(fcntl_get_seals(&fd).unwrap().contains(SealFlags::SHRINK));
    assert_eq!(rustix::fs::ftruncate(&fd, 0), Err(Errno::PERM));
}

#[test]
fn write_once_blob_is_sealed_against_writing_and_cannot_be_mapped_writable() {
    let blob = SealedBlob::write_once("t", 4096, |b| b[..3].copy_from_slice(b"abc")).unwrap();
    assert_eq!(&blob.as_bytes()[..4], b"abc\0");
    assert_eq!(blob.len(), 4096);
    assert_eq!(
        blob.seals().unwrap() - SealFlags::EXEC,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL
    );
    assert_eq!(rustix::io::pwrite(&blob, b"x", 0), Err(Errno::PERM));
    // SAFETY: a fresh mapping at a kernel-chosen address, unmapped at once
    // if it were (wrongly) granted.
    let r = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &blob,
            0,
        )
    };
    if let Ok(p) = r {
        // SAFETY: `p` is the 4096-byte mapping just made.
        unsafe { rustix::mm::munmap(p, 4096).unwrap() };
    }
    assert_eq!(r.err(), Some(Errno::PERM));
}

#[test]
fn future_write_creator_keeps_writing_and_readers_see_it() {
    let mine = MemfdBuilder::new("t")
        .read_only_for_peers()
        .create(4096)
        .unwrap();
    let theirs = ReadOnlyMemory::open(mine.as_fd().try_clone_to_owned().unwrap(), 4096).unwrap();
    let mut b = [0u8];
    for v in 1..=3u8 {
        mine.write_at(4095, &[v]).unwrap();
        theirs.read_at(4095, &mut b).unwrap();
        assert_eq!(b, [v]);
    }
    // SAFETY: in bounds of the read-only mapping; a volatile read.
    assert_eq!(unsafe { theirs.as_ptr().add(4095).read_volatile() }, 3);
}

#[test]
fn mlock_option_locks_the_mapping() {
    // 64 KiB fits the default RLIMIT_MEMLOCK (8 MiB) even without
    // CAP_IPC_LOCK.
    let mem = MemfdBuilder::new("t").mlock(true).create(64 << 10).unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let locked_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(locked_kib >= 64, "VmLck {locked_kib} kB");
    drop(mem);
}

#[test]
fn errors_keep_the_errno_and_name_the_culprit() {
    let e = Error::CannotSeal {
        seals: SealFlags::SEAL,
        missing: SealFlags::SHRINK,
        source: Errno::PERM,
    };
    let src = std::error::Error::source(&e).unwrap();
    assert_eq!(src.downcast_ref::<Errno>(), Some(&Errno::PERM));
    let io: io::Error = e.into();
    assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
    let e = io.get_ref().unwrap().downcast_ref::<Error>().unwrap();
    assert_eq!(e.culprit(), Culprit::Peer);

    let e: io::Error = Error::TooSmall {
        expected: 4096,
        actual: 0,
    }
    .into();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        e.to_string(),
        "peer sent a memfd too small: 0 bytes, expected at least 4096"
    );
}

#[test]
fn display_never_repeats_the_source() {
    let os = || io::Error::from_raw_os_error(Errno::NOMEM.raw_os_error());
    let errors = [
        Error::CannotSeal {
            seals: SealFlags::SEAL,
            missing: SealFlags::SHRINK,
            source: Errno::PERM,
        },
        Error::WriteSealBusy {
            seals: SealFlags::SHRINK,
            source: Errno::BUSY,
        },
        Error::Syscall {
            op: "fstat",
            source: Errno::BADF,
        },
        Error::Map {
            len: 4096,
            source: os(),
        },
        Error::Lock {
            len: 4096,
            source: os(),
        },
        Error::HugePagesUnavailable {
            page_size: 2 << 20,
            source: os(),
        },
    ];
    for e in errors {
        let source = std::error::Error::source(&e).expect("has a source");
        let (msg, src) = (e.to_string(), source.to_string());
        assert!(!msg.contains(&src), "{msg:?} repeats its source {src:?}");
        // Nor the bare errno text (e.g. "Cannot allocate memory").
        let bare = src.split(" (os error").next().unwrap();
        assert!(!msg.contains(bare), "{msg:?} repeats {bare:?}");
    }
}

#[test]
fn peer_errors_about_the_descriptor_blame_the_peer() {
    let path_only = Error::NotMemfd {
        reason: shmem_seal::NotMemfdReason::PathOnly,
        link: Some("/memfd:x (deleted)".into()),
    };
    for e in [path_only, Error::NotReadable, Error::NotWritable] {
        assert_eq!(e.culprit(), Culprit::Peer, "{e:?}");
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
    }
}
