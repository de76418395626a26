//! Shared memory that a hostile peer cannot use against us.
//!
//! This crate will hold memfd creation with seals, validation of a memfd
//! received from an untrusted peer (is it a memfd, is it sealed against
//! shrinking, is it big enough) before it is mapped, and write-once
//! read-only blobs. It is being built under the shmem-seal issue; until then
//! it deliberately exports nothing.
