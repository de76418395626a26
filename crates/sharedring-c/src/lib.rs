//! The C API of `sharedring`: opaque handles over the Rust facade, for
//! programs written in C or C++ (and anything with a C FFI).
//!
//! The header `include/sharedring.h` is generated from this crate by
//! cbindgen (`cargo xtask c-header`; `cargo xtask ci` fails if the
//! committed header drifts). `cargo xtask c-lib` builds the release
//! libraries and writes `libsharedring.{so,a}`, the header and a
//! `sharedring.pc` into one directory, so that a C project links with
//! `pkg-config --cflags --libs sharedring`.
//!
//! # Conventions
//!
//! - Every function returns an `int` status: [`SHAREDRING_OK`] (0),
//!   [`SHAREDRING_AGAIN`] (a non-blocking call found nothing to do now),
//!   [`SHAREDRING_READY`] (an `arm` call found the ring ready: do not
//!   poll), or a negative `SHAREDRING_ERR_*` code.
//!   [`sharedring_strerror`] names a code; [`sharedring_last_error`] is
//!   the full message of the last failure on the calling thread (what went
//!   wrong and how to fix it).
//! - No Rust panic crosses the boundary: every entry point runs under
//!   `catch_unwind` and reports a panic as [`SHAREDRING_ERR_PANIC`].
//! - Handles are opaque, owned by the caller, released with their `free`
//!   function, and used by one thread at a time (they may move between
//!   threads).
//! - Timeouts are in microseconds; a negative timeout waits without limit.
//! - Descriptors given to a `create`/`accept`/`from_offer` function are
//!   owned by the library from then on, also when the call fails.
//! - Pointers into the ring (chunks, reservations, records) point into
//!   memory the peer maps too and may (wrongly) write at any time: copy
//!   what you validate before you use it. They stay valid until the next
//!   call on the same handle.
//!
//! # Element types
//!
//! An element ring carries one of the built-in numeric types
//! ([`sharedring_elem`]), chosen at run time. Element types of any size
//! are not offered: the Rust side names an element type by a compile-time
//! [`TypeTag`](sharedring::TypeTag) and size (the handshake refuses a ring
//! whose type differs), so the C library can only carry the types compiled
//! into it. Structs of your own travel as bytes (`SHAREDRING_ELEM_U8`) or
//! as messages.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]

mod elements;
mod error;
mod listener;
mod messages;
mod offer;
mod options;

pub use elements::*;
pub use error::*;
pub use listener::*;
pub use messages::*;
pub use offer::*;
pub use options::*;
