//! Fast, safe shared-memory rings between two Linux processes that do not
//! trust each other.
//!
//! This is the facade most users will depend on: typed senders and
//! receivers, the setup handshake over a Unix socket and peer-death
//! detection, built on [`spsc_core`]. The building blocks are re-exported so
//! that a user needs only this one dependency.

pub use spsc_core;
