//! The process's own credentials and file-creation mask.

/// Whether the process runs as root (effective user id 0).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `f` with the file-creation mask narrowed to `mask`, then restores
/// it: files `f` creates get their final mode at once (the mask is
/// process-wide; call it before threads that create files exist, or where
/// none do).
pub(crate) fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask only swaps the process's file mode mask.
    let old = unsafe { libc::umask(mask) };
    let result = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    result
}
