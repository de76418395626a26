//! In-place access to slots: chunks of at most two runs, and accessor types
//! that copy with volatile operations instead of handing out references.

use core::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::copy;
use crate::{Consumer, Producer};

/// A run of slots that we may write and the peer may (wrongly) also touch.
///
/// There is deliberately no `&mut [T]` here: the peer can write these bytes
/// at any time, which a Rust reference forbids. Writes are volatile copies.
#[derive(Debug)]
pub struct SharedSliceMut<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut T>,
}

impl<T: FromBytes + IntoBytes + Immutable> SharedSliceMut<'_, T> {
    /// The number of slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `value` into slot `index`.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`, like slice indexing.
    pub fn set(&mut self, index: usize, value: T) {
        assert!(
            index < self.len,
            "index {index} out of a run of {}",
            self.len
        );
        // SAFETY: `index < len`, the run is inside the data area, aligned
        // for `T` and ours to write until the chunk is committed.
        unsafe { core::ptr::write_volatile(self.ptr.add(index), value) }
    }

    /// Copies `src` into the first `src.len()` slots.
    ///
    /// # Panics
    ///
    /// If `src` is longer than the run.
    pub fn copy_from_slice(&mut self, src: &[T]) {
        assert!(
            src.len() <= self.len,
            "{} elements into a run of {}",
            src.len(),
            self.len
        );
        // SAFETY: the run holds `src.len()` slots; `src` is private.
        unsafe {
            copy::to_shared(
                self.ptr.cast::<u8>(),
                src.as_bytes().as_ptr(),
                core::mem::size_of_val(src),
            )
        }
    }

    /// A raw pointer to the first slot, for code that writes in place
    /// (for example a syscall that reads into it). The pointer is valid for
    /// `len()` slots until the chunk is committed or dropped.
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr
    }
}

/// A run of filled slots that we may read and the peer may (wrongly) still
/// write. Reads are volatile copies; there is no `&[T]`.
#[derive(Debug)]
pub struct SharedSlice<'a, T> {
    ptr: *const T,
    len: usize,
    _borrow: PhantomData<&'a T>,
}

impl<T: FromBytes + IntoBytes + Immutable> SharedSlice<'_, T> {
    /// The number of slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads slot `index` (once; any bytes are a valid `T`).
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`, like slice indexing.
    pub fn get(&self, index: usize) -> T {
        assert!(
            index < self.len,
            "index {index} out of a run of {}",
            self.len
        );
        // SAFETY: `index < len`, the run is inside the data area and aligned
        // for `T`; `T: FromBytes` makes any bytes valid.
        unsafe { core::ptr::read_volatile(self.ptr.add(index)) }
    }

    /// Copies the first `dst.len()` slots into `dst`.
    ///
    /// # Panics
    ///
    /// If `dst` is longer than the run.
    pub fn copy_to_slice(&self, dst: &mut [T]) {
        assert!(
            dst.len() <= self.len,
            "{} elements from a run of {}",
            dst.len(),
            self.len
        );
        let len = core::mem::size_of_val(dst);
        // SAFETY: the run holds `dst.len()` slots; `dst` is private.
        unsafe { copy::from_shared(dst.as_mut_bytes().as_mut_ptr(), self.ptr.cast::<u8>(), len) }
    }

    /// A raw pointer to the first slot, valid for `len()` slots until the
    /// chunk is released or dropped.
    pub fn as_ptr(&self) -> *const T {
        self.ptr
    }
}

/// Free slots reserved for writing in place: up to two runs (the second
/// one starts when the first reaches the end of the ring). Dropping the
/// chunk without committing publishes nothing.
#[derive(Debug)]
pub struct WriteChunk<'a, T> {
    producer: &'a mut Producer<T>,
    first: *mut T,
    first_len: usize,
    second: *mut T,
    second_len: usize,
}

impl<'a, T: FromBytes + IntoBytes + Immutable> WriteChunk<'a, T> {
    pub(crate) fn new(
        producer: &'a mut Producer<T>,
        first: *mut u8,
        first_len: usize,
        second: *mut u8,
        second_len: usize,
    ) -> Self {
        Self {
            producer,
            first: first.cast(),
            first_len,
            second: second.cast(),
            second_len,
        }
    }

    /// Total number of slots in the chunk.
    pub fn len(&self) -> usize {
        self.first_len + self.second_len
    }

    /// Whether the chunk has no slots (the ring was full).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The two runs, in order.
    pub fn runs(&mut self) -> (SharedSliceMut<'_, T>, SharedSliceMut<'_, T>) {
        (
            SharedSliceMut {
                ptr: self.first,
                len: self.first_len,
                _borrow: PhantomData,
            },
            SharedSliceMut {
                ptr: self.second,
                len: self.second_len,
                _borrow: PhantomData,
            },
        )
    }

    /// Writes `value` into slot `index` of the chunk.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    pub fn set(&mut self, index: usize, value: T) {
        let (mut a, mut b) = self.runs();
        if index < a.len() {
            a.set(index, value)
        } else {
            b.set(index - a.len(), value)
        }
    }

    /// Copies as much of `src` as fits into the chunk's first slots and
    /// returns how many elements that was.
    pub fn copy_from_slice(&mut self, src: &[T]) -> usize {
        let n = src.len().min(self.len());
        let (mut a, mut b) = self.runs();
        let split = n.min(a.len());
        a.copy_from_slice(&src[..split]);
        b.copy_from_slice(&src[split..n]);
        n
    }

    /// The two runs as mutable slices, for code that trusts its peer.
    ///
    /// # Safety
    ///
    /// While the slices live, no other party (the peer process included)
    /// may read or write these slots. Against a hostile peer that promise
    /// cannot be kept; use [`runs`](Self::runs) instead.
    pub unsafe fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        // SAFETY: the runs are inside the data area, aligned and ours until
        // commit; the caller promises nobody else accesses them meanwhile.
        unsafe {
            (
                core::slice::from_raw_parts_mut(self.first, self.first_len),
                core::slice::from_raw_parts_mut(self.second, self.second_len),
            )
        }
    }

    /// Publishes the first `n` slots. Returns whether the consumer must be
    /// woken (it announced sleep); the fence this needs is paid once per
    /// commit.
    ///
    /// # Panics
    ///
    /// If `n > self.len()`.
    #[must_use = "if this returns true, the consumer is asleep and must be woken"]
    pub fn commit(self, n: usize) -> bool {
        assert!(
            n <= self.len(),
            "commit of {n} slots in a chunk of {}",
            self.len()
        );
        self.producer.commit_chunk(n)
    }

    /// Publishes every slot of the chunk; see [`commit`](Self::commit).
    #[must_use = "if this returns true, the consumer is asleep and must be woken"]
    pub fn commit_all(self) -> bool {
        let n = self.len();
        self.producer.commit_chunk(n)
    }
}

/// Filled slots to read in place: up to two runs. Dropping the chunk
/// without releasing frees nothing.
#[derive(Debug)]
pub struct ReadChunk<'a, T> {
    consumer: &'a mut Consumer<T>,
    first: *const T,
    first_len: usize,
    second: *const T,
    second_len: usize,
}

impl<'a, T: FromBytes + IntoBytes + Immutable> ReadChunk<'a, T> {
    pub(crate) fn new(
        consumer: &'a mut Consumer<T>,
        first: *mut u8,
        first_len: usize,
        second: *mut u8,
        second_len: usize,
    ) -> Self {
        Self {
            consumer,
            first: first.cast_const().cast(),
            first_len,
            second: second.cast_const().cast(),
            second_len,
        }
    }

    /// Total number of slots in the chunk.
    pub fn len(&self) -> usize {
        self.first_len + self.second_len
    }

    /// Whether the chunk has no slots (the ring was empty).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The two runs, in order.
    pub fn runs(&self) -> (SharedSlice<'_, T>, SharedSlice<'_, T>) {
        (
            SharedSlice {
                ptr: self.first,
                len: self.first_len,
                _borrow: PhantomData,
            },
            SharedSlice {
                ptr: self.second,
                len: self.second_len,
                _borrow: PhantomData,
            },
        )
    }

    /// Reads slot `index` of the chunk.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    pub fn get(&self, index: usize) -> T {
        let (a, b) = self.runs();
        if index < a.len() {
            a.get(index)
        } else {
            b.get(index - a.len())
        }
    }

    /// Copies as many of the chunk's first elements as fit into `dst` and
    /// returns how many that was.
    pub fn copy_to_slice(&self, dst: &mut [T]) -> usize {
        let n = dst.len().min(self.len());
        let (a, b) = self.runs();
        let split = n.min(a.len());
        a.copy_to_slice(&mut dst[..split]);
        b.copy_to_slice(&mut dst[split..n]);
        n
    }

    /// The two runs as slices, for code that trusts its peer.
    ///
    /// # Safety
    ///
    /// While the slices live, no other party (the peer process included)
    /// may write these slots. Against a hostile peer that promise cannot be
    /// kept; use [`runs`](Self::runs) instead.
    pub unsafe fn as_slices(&self) -> (&[T], &[T]) {
        // SAFETY: the runs are inside the data area, aligned, and filled;
        // the caller promises nobody writes them meanwhile.
        unsafe {
            (
                core::slice::from_raw_parts(self.first, self.first_len),
                core::slice::from_raw_parts(self.second, self.second_len),
            )
        }
    }

    /// Releases the first `n` slots back to the producer. Returns whether
    /// the producer must be woken (it announced it waits for room).
    ///
    /// # Panics
    ///
    /// If `n > self.len()`.
    #[must_use = "if this returns true, the producer is asleep and must be woken"]
    pub fn release(self, n: usize) -> bool {
        assert!(
            n <= self.len(),
            "release of {n} slots in a chunk of {}",
            self.len()
        );
        self.consumer.release_chunk(n)
    }

    /// Releases every slot of the chunk; see [`release`](Self::release).
    #[must_use = "if this returns true, the producer is asleep and must be woken"]
    pub fn release_all(self) -> bool {
        let n = self.len();
        self.consumer.release_chunk(n)
    }
}
