//! A client datagram through the DNS64 query path: parse -> (error reply
//! or plan) -> encode -> parse. Run with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run parse_query` in `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xlat64_dns64::fuzzing::parse_query_roundtrip(data);
});
