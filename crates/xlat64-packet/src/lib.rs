//! Pure packet code for xlat64: RFC 6052 address mapping and the RFC 7915
//! IP/ICMP translation algorithm.
//!
//! Nothing here touches sockets, clocks or threads, and nothing allocates per
//! packet: every function takes the input bytes and a caller-supplied output
//! buffer and returns a length or a [`DropReason`].
//!
//! Panic rule: no function in this crate panics on any input bytes. Lengths
//! are validated once by the `parse_*` functions; translation works only on
//! what they validated.
#![warn(missing_docs, unreachable_pub)]

mod bytes;
pub mod checksum;
pub mod drop;
pub mod flow;
pub mod fragment;
pub mod icmp_build;
pub mod icmp_error;
pub mod icmp_map;
pub mod ipv6_ext;
pub mod partial_checksum;
pub mod prefix;
pub mod special;
pub mod tcp_mss;
pub mod translate;

pub use drop::DropReason;
pub use flow::{Flow4, Flow6, L4Proto, Parsed4, Parsed6, Quoted, QuotedFragment};
pub use prefix::{Prefix6052, PrefixError};
pub use translate::{
    is_fragment_v4, parse_v4, parse_v6, translate_4to6, translate_4to6_in_place, translate_6to4,
    translate_6to4_in_place,
};
