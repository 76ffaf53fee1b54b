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
//! memory; growing maps memory and is for ordinary context and the keeper's
//! bare thread (raw system calls, no errno written).

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

    /// Makes room for `additional` more values. Ordinary context, and the
    /// keeper's thread (raw system calls only).
    ///
    /// # Errors
    /// `ENOMEM` (or another `mmap`/`mremap`/`madvise` error) when the
    /// mapping cannot be made or grown; the array is unchanged then.
    pub fn try_reserve(&mut self, additional: usize) -> io::Result<()> {
        let needed = self.len.checked_add(additional).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        if needed <= self.cap {
            return Ok(());
        }
        let bytes = needed
            .max(self.cap * 2)
            .checked_mul(Self::SIZE)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let bytes = bytes.div_ceil(GRAIN) * GRAIN;
        let old_bytes = self.cap * Self::SIZE;
        let raw = |number, args| {
            // SAFETY: a fresh anonymous mapping, or the one this array owns
            // (old_bytes long) grown in place or moved whole, or advice on
            // it; nothing else points into it.
            unsafe { super::bare::syscall6(number, args) }.map_err(io::Error::from_raw_os_error)
        };
        let new = if self.cap == 0 {
            let prot = (libc::PROT_READ | libc::PROT_WRITE) as usize;
            let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as usize;
            raw(libc::SYS_mmap, [0, bytes, prot, flags, usize::MAX, 0])?
        } else {
            let moved = libc::MREMAP_MAYMOVE as usize;
            raw(libc::SYS_mremap, [self.ptr.as_ptr() as usize, old_bytes, bytes, moved, 0, 0])?
        };
        if self.cap == 0 && !self.inherited {
            if let Err(e) = raw(libc::SYS_madvise, [new, bytes, libc::MADV_DONTFORK as usize, 0, 0, 0]) {
                let _ = raw(libc::SYS_munmap, [new, bytes, 0, 0, 0, 0]);
                return Err(e);
            }
        }
        self.ptr = NonNull::new(new as *mut T).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        self.cap = bytes / Self::SIZE;
        Ok(())
    }

    /// Appends a value, growing the mapping if needed (ordinary context).
    ///
    /// # Panics
    /// When the mapping cannot grow, as `Vec::push` aborts when memory runs out.
    pub fn push(&mut self, value: T) {
        if let Err(e) = self.try_push(value) {
            panic!("zreap: cannot grow a table: {e}");
        }
    }

    /// Appends a value, growing the mapping if needed; never panics.
    ///
    /// # Errors
    /// As [`MappedVec::try_reserve`]; the array is unchanged then.
    pub fn try_push(&mut self, value: T) -> io::Result<()> {
        self.try_reserve(1)?;
        // SAFETY: len < cap, so the slot is inside the mapping.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
        Ok(())
    }

    /// Grows to at least `len` values, the new ones `value`; never panics.
    ///
    /// # Errors
    /// As [`MappedVec::try_reserve`]; the array is unchanged then.
    pub fn grow_to(&mut self, len: usize, value: T) -> io::Result<()> {
        self.try_reserve(len.saturating_sub(self.len))?;
        while self.len < len {
            // SAFETY: len < cap after the reserve, so the slot is inside the mapping.
            unsafe { self.ptr.as_ptr().add(self.len).write(value) };
            self.len += 1;
        }
        Ok(())
    }

    /// Removes value `i` and puts the last one in its place.
    ///
    /// # Panics
    /// When `i` is out of bounds, as `Vec::swap_remove`.
    pub fn swap_remove(&mut self, i: usize) -> T {
        let value = self[i];
        let last = self.len - 1;
        self[i] = self[last];
        self.len = last;
        value
    }

    /// Removes every value, keeping the mapping.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Whether a fork gives the child a copy of the values (`MADV_DOFORK`)
    /// or leaves them out (`MADV_DONTFORK`, the default). One raw system call:
    /// also for the signal handler and the keeper, which move children to the
    /// fallback list.
    ///
    /// # Errors
    /// As `madvise(2)`; the setting is unchanged then.
    pub fn set_inherited(&mut self, inherited: bool) -> io::Result<()> {
        if inherited == self.inherited {
            return Ok(());
        }
        if self.cap > 0 {
            let advice = if inherited { libc::MADV_DOFORK } else { libc::MADV_DONTFORK };
            let args = [self.ptr.as_ptr() as usize, self.cap * Self::SIZE, advice as usize, 0, 0, 0];
            // SAFETY: the mapping this array owns, cap values long.
            unsafe { super::bare::syscall6(libc::SYS_madvise, args) }.map_err(io::Error::from_raw_os_error)?;
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
            let args = [self.ptr.as_ptr() as usize, self.cap * Self::SIZE, 0, 0, 0, 0];
            // SAFETY: the mapping this array owns; nothing uses it after drop.
            let _ = unsafe { super::bare::syscall6(libc::SYS_munmap, args) };
        }
    }
}

/// Makes the page-aligned `len` bytes at `at` (which must not lie in a
/// mapping shared with other data) an anonymous mapping of their own with the
/// same contents, marked `MADV_WIPEONFORK`: a fork gives the child these pages
/// zero-filled, and does not make the parent's copies read-only, so the
/// parent's next write to them costs no page fault. Ordinary context.
///
/// # Errors
/// As `mmap(2)`, `madvise(2)` (`EINVAL` before Linux 4.14) or `mremap(2)`;
/// the range is left as it was then.
///
/// # Safety
/// `at` is page-aligned, `len` a multiple of the page size, the range belongs
/// to the caller alone (no other object shares its pages), and nothing writes
/// to it until this returns: a write made meanwhile could be lost.
pub unsafe fn wipe_on_fork(at: *const u8, len: usize) -> io::Result<()> {
    let raw = |number, args| {
        // SAFETY: a fresh anonymous mapping of `len` bytes, advice on it, or
        // its move over the caller's range, which the caller gives up.
        unsafe { super::bare::syscall6(number, args) }.map_err(io::Error::from_raw_os_error)
    };
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as usize;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as usize;
    let new = raw(libc::SYS_mmap, [0, len, prot, flags, usize::MAX, 0])?;
    // SAFETY: both ranges are len bytes, readable, and distinct (new is fresh).
    unsafe { std::ptr::copy_nonoverlapping(at, new as *mut u8, len) };
    let moved = raw(libc::SYS_madvise, [new, len, libc::MADV_WIPEONFORK as usize, 0, 0, 0]).and_then(|_| {
        let how = (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as usize;
        raw(libc::SYS_mremap, [new, len, len, how, at as usize, 0])
    });
    if moved.is_err() {
        let _ = raw(libc::SYS_munmap, [new, len, 0, 0, 0, 0]);
    }
    moved.map(|_| ())
}

/// The granularity of growth: a page on most machines; the kernel rounds
/// lengths up to larger pages itself.
const GRAIN: usize = 4096;

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
        v.grow_to(20_000, 3).unwrap();
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

    #[test]
    fn a_wiped_range_keeps_its_values_and_comes_zeroed_to_a_fork_child() {
        #[repr(C, align(4096))]
        struct Page([std::sync::atomic::AtomicU8; 4096]);
        static PAGE: Page = Page([const { std::sync::atomic::AtomicU8::new(0) }; 4096]);
        use std::sync::atomic::Ordering::SeqCst;
        PAGE.0[0].store(7, SeqCst);
        PAGE.0[4095].store(9, SeqCst);
        // SAFETY: PAGE is one page, page-aligned, used by this test alone.
        unsafe { wipe_on_fork(PAGE.0.as_ptr().cast(), 4096) }.unwrap();
        assert_eq!((PAGE.0[0].load(SeqCst), PAGE.0[4095].load(SeqCst)), (7, 9));
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", PAGE.0.as_ptr() as usize);
        let flags =
            smaps.split_once(start.as_str()).and_then(|(_, rest)| rest.lines().find(|l| l.starts_with("VmFlags:")));
        assert!(flags.is_some_and(|f| f.contains(" wf")), "no wipe-on-fork mapping of its own: {flags:?}");
        // SAFETY: the child only reads memory and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = if PAGE.0[0].load(SeqCst) == 0 && PAGE.0[4095].load(SeqCst) == 0 { 0 } else { 1 };
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child made above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(status, 0, "the fork child must see the range zero-filled");
        assert_eq!(PAGE.0[0].load(SeqCst), 7, "the parent keeps its values");
    }
}
