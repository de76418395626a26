//! Fast, safe shared-memory rings between two Linux processes that do not
//! trust each other.
//!
//! A ring lives in a sealed memfd that both processes map; elements are
//! copied in and out (or written and read in place) at memory speed, and a
//! wake-up syscall is made only when the other side sleeps. The peer can
//! be buggy or hostile: whatever it writes into the shared memory or sends
//! as descriptors, this side does not crash (no out-of-bounds access, no
//! SIGBUS, no panic), does not block beyond the timeout it asked for, and
//! gets a typed error that names what the peer did wrong.
//!
//! # Quick start
//!
//! One process creates the ring over a connected Unix socket, the other
//! accepts it. The README's quick start (`examples/quickstart.rs` in the
//! repository; `cargo run --example quickstart`) is the two-process
//! version: one process binds a [`Listener`], starts the other, checks
//! that the peer is the process it started ([`PeerCredentials`]), and
//! streams to it. Here is the same in one process, with a socket pair and
//! a thread:
//!
//! ```
//! use std::os::unix::net::UnixStream;
//! use sharedring::{Receiver, Sender};
//!
//! let (a, b) = UnixStream::pair()?;
//! let peer = std::thread::spawn(move || -> Result<u64, sharedring::Error> {
//!     let mut rx = Receiver::<u64>::accept(b)?;
//!     let mut buf = [0u64; 256];
//!     let mut sum = 0;
//!     loop {
//!         match rx.recv(&mut buf, None) {
//!             Ok(n) => sum += buf[..n].iter().sum::<u64>(),
//!             // The sender closed its stream (dropping it does).
//!             Err(sharedring::Error::Closed) => return Ok(sum),
//!             Err(e) => return Err(e),
//!         }
//!     }
//! });
//! let mut tx = Sender::<u64>::create(a, 4096)?;
//! let data: Vec<u64> = (1..=1000).collect();
//! tx.send(&data, None)?;
//! drop(tx); // the end: the receiver drains, then sees Closed
//! assert_eq!(peer.join().unwrap()?, 500_500);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Setting up
//!
//! - Over a Unix socket: [`Sender::create`] pairs with
//!   [`Receiver::accept`], and [`Receiver::create`] with
//!   [`Sender::accept`]. One message with three descriptors (memfd and two
//!   eventfds) goes across; the accepting side validates all of it
//!   against what *it* expects before mapping anything, and answers. The
//!   socket stays as the liveness channel.
//! - A server binds a [`Listener`] (mode 0600) and sees each client's
//!   [`PeerCredentials`] before it sets anything up.
//! - A server with many clients runs one thread: a [`WaitSet`] (epoll)
//!   holds its [`Listener`], the pending [`Handshake`]s and every ring
//!   end, and reports only the ready ones.
//! - [`Offer`] exposes the raw descriptors and values for moving them over
//!   another channel (D-Bus, ...), and [`channel`] makes an in-process
//!   pair for tests.
//!
//! # Messages
//!
//! [`MsgSender`] and [`MsgReceiver`] carry variable-size byte messages
//! (video frames, audio packets with headers, RPC requests), written and
//! read in place through the same handshake and with the same guarantees;
//! [`Duplex`] pairs two of them for request and response.
//!
//! # Waiting
//!
//! Blocking calls spin on the ring for a bounded budget ([`Options::spin`])
//! before they park on an eventfd, so a peer that answers quickly costs no
//! wake-up at all, and an idle blocked call burns no CPU. While the
//! consumer keeps up, streaming costs no syscall per message.
//!
//! # End of stream
//!
//! A sender that is closed ([`Sender::close`]) or dropped (outside a
//! panic) ends its stream: the receiver delivers everything, then
//! [`Error::Closed`] (`io::Read` gives `Ok(0)`), at once even if it is
//! blocked or the peer's socket stays open (a receiver polling an empty
//! ring: within 16 polls). A sender that crashes
//! (killed, aborted, panicking) leaves [`Error::PeerGone`] instead, after
//! the same drain.
//!
//! # Descriptors
//!
//! Each ring end holds 3 descriptors while idle (the liveness socket, its
//! eventfd, the peer's eventfd; the memfd is closed once mapped) and 4
//! once it has woken a sleeping peer (the io_uring its notifier makes
//! then). The async ends add 2 (duplicates registered with tokio).
//!
//! # Element types
//!
//! `T:` [`Element`]: every bit pattern must be a valid `T` (zerocopy's
//! `FromBytes`, because the peer chooses the bits), with no padding, and a
//! [`TypeTag`] that both programs agree on: the handshake refuses a `u64`
//! ring offered to an `f64` receiver. Implemented for the numeric types
//! and arrays; name your own `#[repr(C)]` structs with [`element!`].
//!
//! # Building blocks
//!
//! Re-exported for users who need only a part: [`spsc_core`] (the ring
//! algorithm), [`shmem_seal`] (sealed memfds and write-once blobs such as
//! [`SealedBlob`]), and [`eventfd_notify`] (wake-ups).
//!
//! # Features
//!
//! - `tokio`: async send and receive ([`Sender::into_async`],
//!   [`Receiver::into_async`]).

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod endpoint;
mod barrier;
pub mod broadcast;
mod elements;
mod error;
mod listener;
mod messages;
mod offer;
mod options;
mod setup;
#[cfg(feature = "tokio")]
mod tokio;
mod waitset;

#[cfg(feature = "tokio")]
pub use self::tokio::{AsyncMsgReceiver, AsyncMsgSender, AsyncReceiver, AsyncSender};
pub use elements::{
    channel, channel_with, Element, Receiver, RecvChunk, SendChunk, Sender, TypeTag,
};
pub use endpoint::pending::{Handshake, Progress};
pub use endpoint::RingEnd;
pub use error::{Error, HandshakeError, RefusalReason};
pub use listener::{peer_credentials, AcceptError, Listener, PeerCredentials, ACCEPT_BACKOFF};
pub use messages::{msg_channel, Duplex, MsgReceiver, MsgSender};
pub use offer::{End, Offer, RingKind};
pub use options::{
    Options, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_MSG, DEFAULT_MAX_REGION, DEFAULT_RING_BYTES,
    DEFAULT_SPIN,
};
pub use setup::{Interest, PeerFds};
pub use waitset::{Event, WaitSet, Waitable};

pub use eventfd_notify;
pub use shmem_seal;
pub use shmem_seal::SealedBlob;
pub use spsc_core;
pub use zerocopy;
