//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Written by hand: it is a dozen lines, and the translator needs the
//! incremental form over address changes, which no small crate offers.
