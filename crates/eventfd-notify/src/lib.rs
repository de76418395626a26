//! Wake-ups between processes that a hostile peer cannot use to block us.
//!
//! This crate will hold a notifying half and a waiting half over one
//! eventfd, validation of a received descriptor, a `notify` that never
//! blocks and a `wait` whose timeout always holds. It is being built under
//! the eventfd-notify issue; until then it deliberately exports nothing.
