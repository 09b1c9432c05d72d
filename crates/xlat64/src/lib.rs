//! The xlat64 daemon: the command line (`cli`), configuration (`config`),
//! the packet data path over a multi-queue TUN device (`datapath`), the
//! DNS64 server (`dns64`), the control socket (`control`), the process
//! lifecycle (`daemon`), repeated warnings rate-limited (`log_limit`), and
//! every Linux-specific call (`sys`). The
//! translation logic itself lives in the pure crates `xlat64-packet`,
//! `xlat64-nat` and `xlat64-dns64`; see ARCHITECTURE.md.

#![warn(missing_docs, unreachable_pub)]

pub mod binding_log;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod dns64;
pub mod log_limit;
pub mod logging;
pub mod sys;
