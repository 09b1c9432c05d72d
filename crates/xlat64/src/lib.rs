//! The xlat64 daemon: configuration, CLI, TUN and netlink I/O, the DNS64
//! server, the control socket and counters. The translation logic itself lives
//! in the pure crates `xlat64-packet`, `xlat64-nat` and `xlat64-dns64`.

pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod demo;
pub mod dns64_server;
mod dns64_udp_batch;
pub mod host_addrs;
pub mod lab;
pub mod netlink;
mod sys;
