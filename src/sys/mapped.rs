//! [`MappedVec`]: a growable array in an anonymous mapping of its own that a
//! fork does not copy.
//!
//! Why: a fork copies the page-table entries of every page the parent has
//! written and makes each read-only again, so the parent's next write to it
//! costs a fault and a copy. The library's per-child records (about 100 bytes
//! a child, 1 MiB with 10,000 tracked children) would make every fork of the
//! process, the program's own included, slower as children pile up. Marked
//! `MADV_DONTFORK`, they are simply not in the child, which has no use for
//! its parent's children anyway.
//!
//! Signal context: indexing and [`MappedVec::reset_in_child`] only touch
//! memory; growing maps memory and is for ordinary context.

use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A growable array of plain values, like `Vec<T>`, in its own mapping.
/// By default a fork leaves the mapping out of the child; see
/// [`MappedVec::set_inherited`]. Used as `Vec<T>` is, through `push` and
/// the slice it derefs to.
pub struct MappedVec<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    cap: usize,
    /// A fork gives the child a copy (`MADV_DOFORK`).
    inherited: bool,
}

// SAFETY: a MappedVec owns its mapping alone, as a Vec owns its buffer.
unsafe impl<T: Copy + Send> Send for MappedVec<T> {}

impl<T: Copy> MappedVec<T> {
    const SIZE: usize = {
        assert!(std::mem::size_of::<T>() > 0, "MappedVec holds sized values only");
        std::mem::size_of::<T>()
    };

    pub const fn new() -> MappedVec<T> {
        MappedVec { ptr: NonNull::dangling(), len: 0, cap: 0, inherited: false }
    }

    /// Makes room for `additional` more values. Ordinary context.
    ///
    /// # Errors
    /// `ENOMEM` (or another `mmap`/`mremap`/`madvise` error) when the
    /// mapping cannot be made or grown; the array is unchanged then.
    pub fn try_reserve(&mut self, additional: usize) -> io::Result<()> {
        let needed = self.len.checked_add(additional).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        if needed <= self.cap {
            return Ok(());
        }
        let page = page_size();
        let bytes = needed
            .max(self.cap * 2)
            .checked_mul(Self::SIZE)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let bytes = bytes.div_ceil(page) * page;
        let old_bytes = self.cap * Self::SIZE;
        // SAFETY: a fresh anonymous mapping, or the one this array owns
        // (old_bytes long) grown in place or moved whole; nothing else
        // points into it.
        let new = unsafe {
            if self.cap == 0 {
                libc::mmap(
                    std::ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            } else {
                libc::mremap(self.ptr.as_ptr().cast(), old_bytes, bytes, libc::MREMAP_MAYMOVE)
            }
        };
        if new == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        if self.cap == 0 && !self.inherited {
            // SAFETY: new is a mapping of `bytes` this array owns.
            if unsafe { libc::madvise(new, bytes, libc::MADV_DONTFORK) } == -1 {
                let e = io::Error::last_os_error();
                // SAFETY: the mapping just made, not yet handed out.
                unsafe { libc::munmap(new, bytes) };
                return Err(e);
            }
        }
        self.ptr = NonNull::new(new.cast()).expect("mmap never returns address 0 here");
        self.cap = bytes / Self::SIZE;
        Ok(())
    }

    /// Appends a value, growing the mapping if needed (ordinary context).
    ///
    /// # Panics
    /// When the mapping cannot grow, as `Vec::push` aborts when memory runs out.
    pub fn push(&mut self, value: T) {
        if self.len == self.cap {
            if let Err(e) = self.try_reserve(1) {
                panic!("zreap: cannot grow a table: {e}");
            }
        }
        // SAFETY: len < cap, so the slot is inside the mapping.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
    }

    /// Grows to `len` values, the new ones `value` (ordinary context).
    ///
    /// # Panics
    /// As [`MappedVec::push`].
    pub fn grow_to(&mut self, len: usize, value: T) {
        while self.len < len {
            self.push(value);
        }
    }

    /// Whether a fork gives the child a copy of the values (`MADV_DOFORK`)
    /// or leaves them out (`MADV_DONTFORK`, the default). Ordinary context.
    ///
    /// # Errors
    /// As `madvise(2)`; the setting is unchanged then.
    pub fn set_inherited(&mut self, inherited: bool) -> io::Result<()> {
        if inherited == self.inherited {
            return Ok(());
        }
        if self.cap > 0 {
            let advice = if inherited { libc::MADV_DOFORK } else { libc::MADV_DONTFORK };
            // SAFETY: the mapping this array owns, cap values long.
            if unsafe { libc::madvise(self.ptr.as_ptr().cast(), self.cap * Self::SIZE, advice) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        self.inherited = inherited;
        Ok(())
    }

    pub fn inherited(&self) -> bool {
        self.inherited
    }

    /// In the child of a fork: an array the fork left out is gone, so it is
    /// forgotten without touching its memory; an inherited one is emptied.
    /// Async-signal-safe.
    pub fn reset_in_child(&mut self) {
        if !self.inherited {
            self.ptr = NonNull::dangling();
            self.cap = 0;
        }
        self.len = 0;
    }
}

impl<T: Copy> Deref for MappedVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the first len values are initialised; ptr is dangling but
        // aligned when len is 0.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for MappedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for MappedVec<T> {
    fn drop(&mut self) {
        if self.cap > 0 {
            // SAFETY: the mapping this array owns; nothing uses it after drop.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.cap * Self::SIZE) };
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf with a valid name.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_past_pages_and_keeps_values() {
        let mut v: MappedVec<u64> = MappedVec::new();
        for i in 0..10_000 {
            v.push(i);
        }
        assert_eq!(v.len(), 10_000);
        assert!(v.iter().copied().eq(0..10_000));
        v[5] = 42;
        assert_eq!(v[5], 42);
        v.grow_to(20_000, 3);
        assert_eq!((v.len(), v[9_999], v[10_000], v[19_999]), (20_000, 9_999, 3, 3));
    }

    #[test]
    fn a_fork_leaves_it_out_unless_inherited() {
        let mut left_out: MappedVec<u8> = MappedVec::new();
        left_out.push(1);
        let mut inherited: MappedVec<u8> = MappedVec::new();
        inherited.set_inherited(true).unwrap();
        inherited.push(2);
        let (a, b) = (left_out.as_ptr() as usize, inherited.as_ptr() as usize);
        // SAFETY: the child only makes system calls (mincore) and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let mapped = |addr: usize| {
                let mut vec = 0u8;
                // SAFETY: mincore on a page-aligned address with room for one byte.
                unsafe { libc::mincore(addr as *mut libc::c_void, 1, &mut vec) == 0 }
            };
            let code = if !mapped(a) && mapped(b) { 0 } else { 1 };
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child made above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(status, 0, "in the child, the left-out array must be unmapped and the inherited one mapped");
    }
}
