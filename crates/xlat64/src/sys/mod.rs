//! Every unsafe or Linux-specific system call the daemon makes beyond what
//! its crates (tun-rs, rtnetlink, tokio) wrap, each behind a safe function.

pub(crate) mod bpf;
pub mod host_addrs;
pub(crate) mod memory;
pub mod netlink;
pub mod notify;
pub(crate) mod process;
pub mod shared_address;
pub(crate) mod udp_batch;
