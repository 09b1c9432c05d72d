//! The process's own credentials, file-creation mask and descriptor limit.

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

/// Raises the soft limit on open file descriptors (`RLIMIT_NOFILE`) to the
/// hard limit, so that sockets (DNS64 TCP connections, upstream queries)
/// do not run out at the usual soft limit of 1024 while the hard limit
/// allows far more. Returns the limit before and after.
pub(crate) fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads one rlimit; the soft limit asked for is
        // the hard one, which an unprivileged process may do.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}

/// `CAP_NET_ADMIN` (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;

/// Drops to user `name` after setup (`[runtime] user`): its group, no
/// supplementary groups, its user id on every thread; the calling thread
/// keeps `CAP_NET_ADMIN` alone (to remove the routes and rules at exit),
/// every other thread keeps nothing.
pub(crate) fn drop_to_user(name: &str) -> Result<(u32, u32), String> {
    let (uid, gid) = lookup_user(name)?;
    let fail = |what: &str| {
        format!(
            "runtime.user {name}: {what}: {}",
            std::io::Error::last_os_error()
        )
    };
    // SAFETY: plain system calls with valid arguments; setgid/setuid are
    // glibc's, which apply them to every thread of the process.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(fail("prctl(PR_SET_KEEPCAPS)"));
        }
        if libc::setgroups(1, &gid) != 0 {
            return Err(fail("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(fail("setuid"));
        }
    }
    // linux/capability.h, version 3: two 32-bit words per set.
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let keep = Data {
        effective: 1 << CAP_NET_ADMIN,
        permitted: 1 << CAP_NET_ADMIN,
        inheritable: 0,
    };
    let none = Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    };
    let data = [keep, none];
    // SAFETY: capset with a version 3 header and two data words.
    let set = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if set != 0 {
        return Err(fail("capset"));
    }
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    Ok((uid, gid))
}

/// The user and group ids of user `name`.
pub(crate) fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| format!("runtime.user: `{name}` is not a user name"))?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r with a buffer of the given length and out pointers.
    let r = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if r != 0 || result.is_null() {
        return Err(format!("runtime.user: no user `{name}` on this system"));
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}
