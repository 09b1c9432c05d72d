//! Giving freed heap memory back to the kernel.

/// Returns the free memory of every malloc arena to the kernel
/// (`malloc_trim(3)`): after a flood of sessions expired and the tables
/// shrank, the freed pages would otherwise stay in the process (glibc
/// keeps freed memory of its heaps and raises its mmap threshold after
/// large frees).
pub(crate) fn release_free_memory() {
    // SAFETY: malloc_trim only reorganizes the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
