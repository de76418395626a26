//! The type contract of an element ring: what the two ends agree on at
//! set-up, so that a `u64` sender and an `f64` receiver do not connect.

use zerocopy::{FromBytes, Immutable, IntoBytes};

/// A type that can cross a ring between processes.
///
/// Every bit pattern must be a valid value (the peer chooses the bits:
/// `FromBytes`), the type must have no padding (`IntoBytes`), and it must
/// carry a [`TypeTag`] that names it the same way in both programs. The
/// handshake carries the element's size, alignment and tag, and the
/// accepting side refuses a ring whose element type differs from its own
/// ([`HandshakeError::TypeMismatch`](crate::HandshakeError::TypeMismatch)).
///
/// Implemented for the integer and floating-point types and for arrays of
/// elements. For your own `#[repr(C)]` struct, derive zerocopy's traits
/// and name it with [`element!`](crate::element), choosing a name that
/// both programs share (a version in the name lets you change the layout
/// safely):
///
/// ```
/// use sharedring::zerocopy::{FromBytes, Immutable, IntoBytes};
///
/// #[derive(FromBytes, IntoBytes, Immutable, Clone, Copy)]
/// #[repr(C)]
/// struct Sample {
///     t_ns: u64,
///     value: f64,
/// }
/// sharedring::element!(Sample, "com.example.Sample.v1");
///
/// let (mut tx, mut rx) = sharedring::channel::<Sample>(64)?;
/// tx.send(&[Sample { t_ns: 1, value: 2.5 }], None)?;
/// let mut out = [Sample { t_ns: 0, value: 0.0 }; 1];
/// rx.recv(&mut out, None)?;
/// assert_eq!(out[0].value, 2.5);
/// # Ok::<(), sharedring::Error>(())
/// ```
pub trait Element: FromBytes + IntoBytes + Immutable {
    /// The name both ends agree on.
    const TAG: TypeTag;
}

/// The name of an element type on the wire: a 64-bit hash of a name that
/// both programs use for the type (for the built-in types, the Rust name:
/// `"u64"`, `"f64"`, ...).
///
/// ```
/// use sharedring::{Element, TypeTag};
/// assert_eq!(<u64 as Element>::TAG, TypeTag::named("u64"));
/// assert_ne!(<u64 as Element>::TAG.hash(), <f64 as Element>::TAG.hash());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeTag {
    name: &'static str,
    hash: u64,
}

/// FNV-1a, 64-bit: a `const fn` hash that a C peer can compute too.
const fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

impl TypeTag {
    /// The tag of the type named `name` (its FNV-1a 64-bit hash).
    ///
    /// ```
    /// let tag = sharedring::TypeTag::named("com.example.Sample.v1");
    /// assert_eq!(tag.name(), "com.example.Sample.v1");
    /// ```
    pub const fn named(name: &'static str) -> Self {
        Self {
            name,
            hash: fnv1a(name.as_bytes(), FNV_OFFSET),
        }
    }

    /// The tag of `[T; n]` where `T` has the tag `elem`: the hash of
    /// `elem`'s hash and `n`, so `[u8; 4]` and `[u8; 8]` differ.
    ///
    /// ```
    /// use sharedring::{Element, TypeTag};
    /// assert_eq!(<[u16; 3] as Element>::TAG, TypeTag::array_of(<u16 as Element>::TAG, 3));
    /// assert_ne!(<[u16; 3] as Element>::TAG, <[u16; 4] as Element>::TAG);
    /// ```
    pub const fn array_of(elem: TypeTag, n: usize) -> Self {
        let h = fnv1a(&elem.hash.to_le_bytes(), FNV_OFFSET);
        Self {
            name: "array",
            hash: fnv1a(&(n as u64).to_le_bytes(), h),
        }
    }

    /// The name the tag was made from (`"array"` for arrays).
    ///
    /// ```
    /// assert_eq!(<f32 as sharedring::Element>::TAG.name(), "f32");
    /// ```
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The 64-bit value on the wire.
    ///
    /// ```
    /// // FNV-1a of the bytes "u8".
    /// assert_eq!(<u8 as sharedring::Element>::TAG.hash(), 0x08c48207b56753d8);
    /// ```
    pub const fn hash(&self) -> u64 {
        self.hash
    }
}

/// Implements [`Element`] for a type of yours, with the name both programs
/// use for it. The type must implement zerocopy's `FromBytes`,
/// `IntoBytes` and `Immutable`; see [`Element`] for an example.
#[macro_export]
macro_rules! element {
    ($ty:ty, $name:expr) => {
        impl $crate::Element for $ty {
            const TAG: $crate::TypeTag = $crate::TypeTag::named($name);
        }
    };
}

macro_rules! primitives {
    ($($t:ty),*) => {
        $(impl Element for $t {
            const TAG: TypeTag = TypeTag::named(stringify!($t));
        })*

        /// The name of a built-in element type with this hash, if any.
        fn builtin_name(hash: u64) -> Option<&'static str> {
            $(if hash == <$t as Element>::TAG.hash() {
                return Some(stringify!($t));
            })*
            None
        }
    };
}

primitives!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

impl<T: Element, const N: usize> Element for [T; N] {
    const TAG: TypeTag = TypeTag::array_of(T::TAG, N);
}

/// Describes an element type for an error message: ours by its Rust
/// name, the peer's by its tag (named when it is a built-in type).
pub(crate) fn describe(name: Option<&str>, hash: u64, size: u32, align: u32) -> String {
    let name = name
        .map(str::to_owned)
        .or_else(|| builtin_name(hash).map(str::to_owned))
        .unwrap_or_else(|| format!("a type tagged {hash:#018x}"));
    format!("{name} ({size} B, align {align})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_types_have_different_tags() {
        assert_ne!(u64::TAG, f64::TAG);
        assert_ne!(u32::TAG, i32::TAG);
        assert_ne!(<[u8; 8]>::TAG, u64::TAG);
        assert_eq!(builtin_name(f64::TAG.hash()), Some("f64"));
        assert_eq!(builtin_name(0), None);
    }
}
