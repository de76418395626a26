//! Is a received descriptor really an eventfd, and a usable one?
//!
//! The kernel names an eventfd's inode `anon_inode:[eventfd]` in
//! `/proc/self/fd/N`, and its `/proc/self/fdinfo/N` carries
//! `eventfd-count:` and (since Linux 6.6 or so) `eventfd-semaphore:`. Other
//! kinds of descriptor are told apart by their `st_mode` file type and
//! their link, so that the error says what the peer really sent.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use rustix::fs::FileType;

use crate::error::{Error, NotEventfd};

/// Checks that `fd` is an eventfd that is not in semaphore mode.
///
/// # References
///  - [proc_pid_fdinfo(5)](https://man7.org/linux/man-pages/man5/proc_pid_fdinfo.5.html)
///  - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
pub(crate) fn check_eventfd(fd: BorrowedFd<'_>) -> Result<(), Error> {
    let raw = fd.as_raw_fd();
    let link_path = format!("/proc/self/fd/{raw}");
    let link = std::fs::read_link(&link_path).map_err(|source| Error::Inspect {
        path: link_path.clone(),
        source,
    })?;
    let link = link.to_string_lossy().into_owned();

    // An O_PATH descriptor of an eventfd (opened through /proc/<pid>/fd,
    // which refuses every other mode with ENXIO) has the eventfd's link but
    // none of its fdinfo, and every read or io_uring registration of it
    // would fail with EBADF, which reads as a failure of ours or of the
    // system. Refuse it here, as the peer's.
    let flags = rustix::fs::fcntl_getfl(fd).map_err(Error::syscall("fcntl(F_GETFL)"))?;
    if flags.contains(rustix::fs::OFlags::PATH) {
        return Err(Error::NotAnEventfd(NotEventfd::PathOnly { link }));
    }

    if link != "anon_inode:[eventfd]" {
        return Err(Error::NotAnEventfd(classify(fd, link)?));
    }

    let info_path = format!("/proc/self/fdinfo/{raw}");
    let info = std::fs::read_to_string(&info_path).map_err(|source| Error::Inspect {
        path: info_path.clone(),
        source,
    })?;
    if !info.lines().any(|l| l.starts_with("eventfd-count:")) {
        // The link said eventfd but the fdinfo does not: not an eventfd we
        // understand. Say what we saw rather than guess.
        return Err(Error::NotAnEventfd(NotEventfd::Other { link }));
    }
    let semaphore = info
        .lines()
        .filter_map(|l| l.strip_prefix("eventfd-semaphore:"))
        .any(|v| v.trim() != "0");
    if semaphore {
        return Err(Error::SemaphoreEventfd);
    }
    Ok(())
}

/// Names what a non-eventfd descriptor is, from its file type and link.
fn classify(fd: BorrowedFd<'_>, link: String) -> Result<NotEventfd, Error> {
    if let Some(name) = link
        .strip_prefix("anon_inode:")
        .map(|n| n.trim_start_matches('[').trim_end_matches(']'))
    {
        return Ok(NotEventfd::OtherAnonInode {
            name: name.to_owned(),
        });
    }
    let stat = rustix::fs::fstat(fd.as_fd()).map_err(Error::syscall("fstat"))?;
    Ok(match FileType::from_raw_mode(stat.st_mode) {
        FileType::Fifo => NotEventfd::Pipe,
        FileType::Socket => NotEventfd::Socket,
        FileType::RegularFile if link.starts_with("/memfd:") => NotEventfd::Memfd,
        FileType::RegularFile => NotEventfd::RegularFile { path: link },
        FileType::Directory => NotEventfd::Directory,
        FileType::CharacterDevice | FileType::BlockDevice => NotEventfd::Device,
        _ => NotEventfd::Other { link },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{eventfd, EventfdFlags};

    #[test]
    fn accepts_a_plain_eventfd() {
        let fd = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        check_eventfd(fd.as_fd()).unwrap();
    }

    #[test]
    fn rejects_a_semaphore_eventfd() {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::SEMAPHORE).unwrap();
        assert!(matches!(
            check_eventfd(fd.as_fd()),
            Err(Error::SemaphoreEventfd)
        ));
    }

    #[test]
    fn refuses_an_o_path_descriptor_of_an_eventfd() {
        let fd = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        let path = rustix::fs::open(
            format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        match check_eventfd(path.as_fd()) {
            Err(Error::NotAnEventfd(NotEventfd::PathOnly { link })) => {
                assert_eq!(link, "anon_inode:[eventfd]")
            }
            other => panic!("expected PathOnly, got {other:?}"),
        }
    }

    #[test]
    fn names_a_directory_and_another_anon_inode() {
        let dir = std::fs::File::open("/").unwrap();
        assert!(matches!(
            check_eventfd(dir.as_fd()),
            Err(Error::NotAnEventfd(NotEventfd::Directory))
        ));
        let ep = rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC).unwrap();
        match check_eventfd(ep.as_fd()) {
            Err(Error::NotAnEventfd(NotEventfd::OtherAnonInode { name })) => {
                assert_eq!(name, "eventpoll")
            }
            other => panic!("expected OtherAnonInode, got {other:?}"),
        }
    }
}
