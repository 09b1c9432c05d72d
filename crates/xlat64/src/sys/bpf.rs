//! Loading a BPF socket-filter program and attaching it to a multi-queue TUN
//! device as its queue-steering program (`TUNSETSTEERINGEBPF`, Linux 4.16+).
//!
//! By hand rather than through a BPF crate (aya, libbpf-rs): the program is
//! about forty instructions built at run time for the number of workers,
//! with no maps, no helpers and no ELF object, so two raw calls (`bpf(2)`
//! with `BPF_PROG_LOAD`, and one ioctl) are all it takes, without a build
//! step for BPF or a C library.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `BPF_PROG_LOAD`, the `bpf(2)` command.
const BPF_PROG_LOAD: libc::c_long = 5;
/// `BPF_PROG_TYPE_SOCKET_FILTER`: the type TUN runs for steering.
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
/// `_IOR('T', 224, int)` from `linux/if_tun.h`.
const TUNSETSTEERINGEBPF: libc::c_ulong = 0x8004_54e0;

/// The head of `union bpf_attr` for `BPF_PROG_LOAD`, zero-padded to a size
/// the kernel accepts (it requires the bytes it does not know to be zero).
#[repr(C, align(8))]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    rest: [u8; 80],
}

/// Loads `insns` (encoded `struct bpf_insn`s) as a socket-filter program;
/// on refusal the error carries the verifier's log.
pub(crate) fn load_socket_filter(insns: &[[u8; 8]]) -> io::Result<OwnedFd> {
    let license = c"Dual MIT/GPL";
    let mut log = vec![0u8; 16 * 1024];
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        rest: [0; 80],
    };
    // SAFETY: `attr` is a valid, fully initialized bpf_attr prefix whose
    // pointers (instructions, license, log buffer) outlive the call; the
    // kernel writes at most `log_size` bytes into `log`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let verifier = String::from_utf8_lossy(&log[..end]);
        let last = verifier.lines().last().unwrap_or("").trim();
        return Err(io::Error::new(
            err.kind(),
            format!("bpf(BPF_PROG_LOAD): {err}; verifier: {last}"),
        ));
    }
    // SAFETY: a non-negative return of BPF_PROG_LOAD is a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Makes `prog` the queue-steering program of the TUN device behind `tun`
/// (any of its queues): the program's return value modulo the number of
/// queues picks the queue each packet towards userspace goes to. The device
/// keeps its own reference; `prog` may be closed afterwards.
pub(crate) fn attach_steering(tun: &impl AsRawFd, prog: &OwnedFd) -> io::Result<()> {
    let fd: libc::c_int = prog.as_raw_fd();
    // SAFETY: TUNSETSTEERINGEBPF reads one int (the program descriptor)
    // from the pointer, which points at a live local.
    let r = unsafe {
        libc::ioctl(
            tun.as_raw_fd(),
            TUNSETSTEERINGEBPF,
            &fd as *const libc::c_int,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `prog` once on `frame` (an Ethernet frame: the kernel strips the
/// 14-byte header, as a packet reaching a socket filter) and returns its
/// return value: how tests compare the steering program in the kernel with
/// its reference in Rust.
#[cfg(test)]
pub(crate) fn test_run(prog: &OwnedFd, frame: &[u8]) -> io::Result<u32> {
    /// `BPF_PROG_TEST_RUN`, the `bpf(2)` command.
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    #[repr(C, align(8))]
    struct TestRunAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        rest: [u8; 64],
    }
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        retval: 0,
        data_size_in: frame.len() as u32,
        data_size_out: 0,
        data_in: frame.as_ptr() as u64,
        data_out: 0,
        repeat: 1,
        duration: 0,
        rest: [0; 64],
    };
    // SAFETY: `attr` is a valid bpf_attr prefix for BPF_PROG_TEST_RUN; the
    // input pointer and length describe `frame`, no output buffer is given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(attr.retval)
}
