//! Options as a plain C struct: zero means "the default" in every field.

use std::time::Duration;

use sharedring::Options;

use crate::error::{invalid, Fail};

/// Options of a ring. Zero in a field means its default, so
/// `sharedring_options opts = {0};` (or a NULL pointer) is the defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct sharedring_options {
    /// Creating side: capacity, a power of two, in elements for element
    /// rings and in bytes for message rings. 0: 1 MiB of data.
    pub capacity: u64,
    /// Message rings: the largest message. Creating side: the ring's
    /// maximum; accepting side: the largest maximum it accepts. 0: 1 MiB
    /// (at most `capacity / 2 - 8` on the creating side).
    pub max_msg: u64,
    /// Accepting side: the largest ring it maps, in bytes of data. 0: 1 GiB.
    pub max_region: u64,
    /// Blocking calls spin this long before they sleep, in nanoseconds.
    /// 0: 100 us; negative: no spinning.
    pub spin_ns: i64,
    /// The deadline of the whole handshake, in milliseconds. 0: 10 s;
    /// negative: none.
    pub handshake_timeout_ms: i64,
    /// Creating side: lock the ring's pages in memory (`mlock`).
    pub mlock: bool,
    /// Accepting side: accept a ring in huge pages.
    pub allow_hugetlb: bool,
}

/// What the element or message ring counts its capacity in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Elements,
    Bytes,
}

/// The facade's options from the C struct (`opts` may be null).
///
/// # Safety
///
/// `opts` is null or points to a readable `sharedring_options`.
pub(crate) unsafe fn convert(opts: *const sharedring_options, unit: Unit) -> Result<Options, Fail> {
    let o = if opts.is_null() {
        sharedring_options::default()
    } else {
        // SAFETY: the caller's contract.
        unsafe { opts.read() }
    };
    let size = |v: u64, what: &str| {
        usize::try_from(v)
            .or_else(|_| invalid(format!("options: {what} {v} does not fit in memory")))
    };
    let mut out = Options::new();
    if o.capacity != 0 {
        let c = size(o.capacity, "capacity")?;
        out = match unit {
            Unit::Elements => out.capacity_elements(c),
            Unit::Bytes => out.capacity_bytes(c),
        };
    }
    if o.max_msg != 0 && unit == Unit::Bytes {
        out = out.max_msg(size(o.max_msg, "max_msg")?);
    }
    if o.max_region != 0 {
        out = out.max_region(size(o.max_region, "max_region")?);
    }
    if o.spin_ns < 0 {
        out = out.spin(Duration::ZERO);
    } else if o.spin_ns > 0 {
        out = out.spin(Duration::from_nanos(o.spin_ns as u64));
    }
    if o.handshake_timeout_ms < 0 {
        out = out.handshake_timeout(None);
    } else if o.handshake_timeout_ms > 0 {
        out = out.handshake_timeout(Some(Duration::from_millis(o.handshake_timeout_ms as u64)));
    }
    Ok(out.mlock(o.mlock).allow_hugetlb(o.allow_hugetlb))
}
