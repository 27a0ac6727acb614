//! Counting heap allocations per thread, for "no allocation" goals.
//!
//! Install [`CountingAlloc`] as the global allocator in the binary (the
//! bench binary, the criterion benches and the smoke test do):
//!
//! ```
//! #[global_allocator]
//! static ALLOC: prodguard_bench::alloc::CountingAlloc = prodguard_bench::alloc::CountingAlloc;
//!
//! fn main() {
//!     assert!(prodguard_bench::alloc::installed());
//!     let per_call = prodguard_bench::alloc::per_call(10, || drop(vec![1u8; 4]));
//!     assert_eq!(per_call, Some(1.0));
//! }
//! ```
//!
//! Without it [`installed`] is false and allocation counts are unknown.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Allocations (alloc, alloc_zeroed, realloc) made by this thread.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting each allocation on the allocating thread.
///
/// The count is per thread, so other threads (a logger, a test harness)
/// never show up in a measurement, and costs one thread-local increment.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

fn bump() {
    // `try_with`: never panic inside the allocator, even during thread teardown.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

#[allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; every method forwards to System unchanged"
)]
// SAFETY: each method forwards its arguments unchanged to `System`, which
// upholds `GlobalAlloc`'s contract; counting touches only a thread-local
// `Cell<u64>` with a const initialiser, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: the caller's guarantees for `layout` are System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: `ptr` came from this allocator, i.e. from System.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from System.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations this thread has made so far (0 forever when not installed).
pub fn allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

/// Whether [`CountingAlloc`] is the global allocator of this program.
pub fn installed() -> bool {
    let before = allocations();
    let probe = std::hint::black_box(Box::new(std::hint::black_box(7u64)));
    drop(probe);
    allocations() > before
}

/// Heap allocations per call of `f` over `calls` calls, or `None` when
/// allocations are not being counted.
pub fn per_call(calls: u64, mut f: impl FnMut()) -> Option<f64> {
    if !installed() || calls == 0 {
        return None;
    }
    let before = allocations();
    for _ in 0..calls {
        f();
    }
    Some((allocations() - before) as f64 / calls as f64)
}
