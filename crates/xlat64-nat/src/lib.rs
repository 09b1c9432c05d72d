//! Stateful NAT64 (RFC 6146) as a pure state machine.
//!
//! [`Nat64`] owns the translation prefix, the IPv4 pool, the binding table
//! (BIB) and the session table. The daemon hands it packets with the current
//! time and gets back a [`Verdict`]; expiry runs through
//! [`Nat64::poll_timeout`] and [`Nat64::handle_timeout`]. No sockets, no clock
//! reads, no threads.
#![warn(missing_docs, unreachable_pub)]

pub mod binding_log;
pub mod deterministic;
pub mod fuzzing;
mod icmp_rate;
mod ipv4_id;
pub mod pool4;
mod port_alloc;
pub mod reassembly;
mod session_table;
pub mod shard;
pub mod stateful;
mod syn_store;
pub mod table;
mod tcp;
mod tcp_probe;
pub mod timeouts;

pub use binding_log::{BindingChange, BindingEvent, Held};
pub use deterministic::Deterministic;
pub use pool4::Pool4;
pub use reassembly::{FragmentDrop, Reassembler, ReassemblyLimits};
pub use shard::Shard;
pub use stateful::{
    DeniedDestination, Filtering, InPlace, Nat64, Nat64Config, NatCounters, NatDrop, StaticBinding,
    Verdict,
};
pub use table::{BibEntry, SessionEntry, TcpState};
pub use timeouts::{Timeouts, EXPIRY_RESOLUTION};
