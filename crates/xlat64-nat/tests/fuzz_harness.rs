//! The `nat64_packets` fuzz target's harness
//! (`xlat64_nat::fuzzing::nat64_sequence`) on random bytes and on a few
//! hand-made sequences, so that CI runs it without a fuzzer.

use proptest::prelude::*;
use xlat64_nat::fuzzing::nat64_sequence;

/// Configuration bytes: documentation prefix, 8 ports and 8 ICMP
/// identifiers per pool address, IPv6 MTU 1500, reassembly limits.
const CONFIG: [u8; 7] = [0x00, 0xe7, 0x00, 0x3f, 0x3f, 0x12, 0x34];

/// Opcodes (the first byte of an operation, modulo 18).
const V6: u8 = 0;
const V4: u8 = 3;
const V6_FRAGMENTS: u8 = 7;
const V4_FRAGMENTS: u8 = 8;
const V6_ERROR: u8 = 9;
const V4_ERROR: u8 = 11;
const CLOCK: u8 = 15;

fn seq(ops: &[&[u8]]) -> Vec<u8> {
    let mut v = CONFIG.to_vec();
    for op in ops {
        v.extend_from_slice(op);
    }
    v
}

/// Sequences that reach sessions both ways, fragments, errors and expiry.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        // UDP out, the answer in, an ICMP error about it both ways, expiry.
        seq(&[
            &[V6, 0, 0, 1, 0, 0, 10],
            &[V4, 0, 0, 0, 0, 0, 10],
            &[V4_ERROR, 0, 0, 0, 3, 0],
            &[V6_ERROR, 0, 0, 0, 1, 0],
            &[CLOCK, 2, 0x10, 0x00, 0xff],
        ]),
        // TCP SYN out, SYN-ACK in, ACK out, RST in, expiry.
        seq(&[
            &[V6, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0],
            &[V4, 0, 0, 0, 0, 2, 0, 0],
            &[V6, 1, 1, 0, 1, 1, 3, 0, 0, 0, 0],
            &[V4, 0, 0, 0, 0, 6, 0, 0],
            &[CLOCK, 1, 0x01, 0x00, 0xff],
        ]),
        // Echo out and in; a large UDP answer that must be fragmented.
        seq(&[
            &[V6, 2, 2, 2, 2, 0, 0, 0, 5],
            &[V4, 0, 0, 0, 0, 0, 0, 0, 5],
            &[V6, 0, 1, 1, 0, 0, 5],
            &[V4, 0, 0, 1, 200, 0, 0, 0, 0],
        ]),
        // Fragmented datagrams both ways, then their expiry.
        seq(&[
            &[V6_FRAGMENTS, 0, 0, 1, 0, 0, 0, 200, 0, 0, 0, 0, 1, 0],
            &[V6, 0, 0, 1, 0, 0, 10],
            &[V4_FRAGMENTS, 0, 0, 0, 1, 0, 0, 200, 0, 0, 0, 2],
            &[CLOCK, 0, 0x0f, 0xff, 0],
        ]),
        // Pool exhaustion: one port per pool address, many client ports.
        [0x00, 0x00, 0x00, 0x3f, 0x3f, 0x12, 0x34]
            .into_iter()
            .chain((0u8..40).flat_map(|i| [V6, i % 4, 0, 1, i % 6, 0, 1]))
            .collect(),
    ]
}

#[test]
fn hand_made_sequences() {
    for s in seeds() {
        nat64_sequence(&s);
    }
    // Every prefix and MTU choice, with a short sequence.
    for b0 in 0..=0x7fu8 {
        for mtu in [0u8, 2, 3, 4, 5, 0x85] {
            let mut s = seeds()[0].clone();
            s[0] = b0;
            s[1] = mtu;
            nat64_sequence(&s);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        nat64_sequence(&bytes);
    }

    /// Random operations after a fixed configuration, mostly structured.
    #[test]
    fn random_operations(
        ops in proptest::collection::vec(
            (0u8..18, proptest::collection::vec(any::<u8>(), 0..24)),
            0..40,
        )
    ) {
        let mut bytes = CONFIG.to_vec();
        for (op, args) in ops {
            bytes.push(op);
            bytes.extend_from_slice(&args);
        }
        nat64_sequence(&bytes);
    }

    /// The hand-made sequences with bytes changed.
    #[test]
    fn mutated_seeds(
        which in 0usize..5,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = seeds()[which].clone();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        nat64_sequence(&bytes);
    }
}

/// Inputs on which the fuzzer once found a fault, kept so that it stays
/// fixed: `in_place_fallback_kept_allocation_state.bin` made the in-place
/// path plan a binding, fall back to the copying path, and so advance the
/// port allocator and the IPv4 ids twice (its twin NAT, copying only,
/// chose another ICMP identifier next).
#[test]
fn regressions_found_by_the_fuzzer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).expect("the regressions folder") {
        let path = entry.unwrap().path();
        nat64_sequence(&std::fs::read(&path).unwrap());
        ran += 1;
    }
    assert!(ran >= 1, "no regression inputs in {}", dir.display());
}
