//! The DNS64 server: UDP and TCP listeners, the upstream client and the
//! driver of the pure DNS64 logic in `xlat64-dns64` (its batched UDP
//! system calls are in `sys::udp_batch`).

pub mod server;

pub use server::{Dns64Counters, Dns64Server};
