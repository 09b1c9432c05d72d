//! DNS64 (RFC 6147): deciding when to synthesize AAAA records and building
//! the synthesized answer. Pure: bytes and messages in, messages out.
#![warn(missing_docs, unreachable_pub)]
