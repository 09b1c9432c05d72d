//! Sequences of IPv6 and IPv4 packets and clock steps through the stateful
//! NAT64, every result checked (see `xlat64_nat::fuzzing`). Run with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run nat64_packets` in `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xlat64_nat::fuzzing::nat64_sequence(data);
});
