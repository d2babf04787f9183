//! The process's allocator: mimalloc, entered through its plain `mi_malloc` whenever the
//! alignment asked for is one mimalloc gives every block anyway.
//!
//! Why not `mimalloc::MiMalloc` as it is: it passes every Rust allocation to
//! `mi_malloc_aligned`, and mimalloc 3's aligned entry only takes its fast path for blocks of
//! at most 1 KiB whose free-list head happens to be aligned; a larger block whose size is not a
//! power of two (a 2 KiB request body, a log batch) always goes through its over-allocating
//! fallback and the generic allocation path, even at alignment 1. Under `make
//! load-instructions` allocation cost ~60 instructions per call that way, ~33 this way, for
//! hookguard's 53 allocations per request (docs/performance.md, eighth session). Every mimalloc block is at least word-aligned (block sizes are
//! whole words, and pages start 16-byte aligned), which is also the bound mimalloc's own
//! `mi_realloc_aligned` uses to fall back to plain `mi_realloc`; above it, the aligned entry
//! points are used as before.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

/// The largest alignment every mimalloc block has.
const WORD: usize = core::mem::size_of::<usize>();

/// mimalloc as the global allocator (`#[global_allocator]` in `main.rs` and in the ceiling
/// example, so both measure the same allocator).
pub struct Allocator;

// SAFETY: every method forwards to the mimalloc function with the same contract as the
// `GlobalAlloc` method (a block of at least `size` bytes at `layout.align()`, or null), and
// frees with `mi_free`, which takes blocks from either entry point.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            libmimalloc_sys::mi_malloc(layout.size()).cast()
        } else {
            libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            libmimalloc_sys::mi_zalloc(layout.size()).cast()
        } else {
            libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        libmimalloc_sys::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            libmimalloc_sys::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            libmimalloc_sys::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align())
                .cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size class up to a few pages, at every alignment up to a page: the block is
    /// aligned, writable over its whole size, keeps its contents across a realloc, and frees.
    #[test]
    #[allow(unsafe_code)]
    fn blocks_are_aligned_writable_and_survive_realloc() {
        let a = Allocator;
        let mut sizes: Vec<usize> = (1..=256).collect();
        sizes.extend((1..=40).map(|i| i * 97 + 300));
        sizes.extend([1023, 1024, 1025, 2101, 4096, 65_537, 1 << 20]);
        for &align in &[1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for &size in &sizes {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero size; the block is used within its size and freed once.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    core::ptr::write_bytes(p, 0xa5, size);
                    let q = a.realloc(p, layout, size * 2 + 1);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc: size {size} align {align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xa5));
                    a.dealloc(q, Layout::from_size_align(size * 2 + 1, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
