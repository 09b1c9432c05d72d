//! Which worker's TUN queue each packet from the kernel goes to.
//!
//! Each worker owns a NAT64 shard outright ([`xlat64_nat::shard`]): the
//! clients whose IPv6 addresses hash to it, and a slice of every pool4
//! address's ports. The kernel must therefore put a flow's IPv6 packets and
//! its IPv4 replies on the owner's queue. A multi-queue TUN device picks the
//! queue with a BPF program of ours (`TUNSETSTEERINGEBPF`) that computes,
//! in the kernel, exactly what [`owner_of_v6`](xlat64_nat::shard::owner_of_v6)
//! and [`owner_of_v4`](xlat64_nat::shard::owner_of_v4) compute:
//!
//! - IPv6: a hash of the source address (for an ICMPv6 error, of the quoted
//!   destination, the client it is about);
//! - IPv4: the destination port, echo identifier, or for an ICMP error the
//!   quoted source port or identifier: `(port >> shift) % workers`, where
//!   runs of `1 << shift` ports are a worker's (pairs, or port blocks);
//! - an IPv4 fragment: its identification modulo the workers, so that all
//!   fragments of a datagram meet; the reassembled datagram is handed to
//!   its owner if that is another worker (rare, counted);
//! - anything else: queue 0, whose worker drops it with a reason.
//!
//! Chosen over handing packets between workers after the kernel's own
//! queue choice (a flow hash that sends a flow's two directions to
//! different queues): with steering, no packet is copied between threads
//! and no worker touches another's state; the program costs a few dozen
//! instructions per packet, once, in the kernel.

use std::os::fd::OwnedFd;
use xlat64_nat::shard::client_mask;
use xlat64_nat::{Deterministic, Shard};

/// BPF instruction classes, sizes, modes and operations (`linux/bpf.h`).
mod op {
    pub(super) const LD: u8 = 0x00;
    pub(super) const ALU: u8 = 0x04;
    pub(super) const JMP: u8 = 0x05;
    pub(super) const ALU64: u8 = 0x07;
    pub(super) const W: u8 = 0x00;
    pub(super) const H: u8 = 0x08;
    pub(super) const B: u8 = 0x10;
    pub(super) const ABS: u8 = 0x20;
    pub(super) const IND: u8 = 0x40;
    pub(super) const K: u8 = 0x00;
    pub(super) const X: u8 = 0x08;
    pub(super) const ADD: u8 = 0x00;
    pub(super) const MUL: u8 = 0x20;
    pub(super) const OR: u8 = 0x40;
    pub(super) const AND: u8 = 0x50;
    pub(super) const LSH: u8 = 0x60;
    pub(super) const RSH: u8 = 0x70;
    pub(super) const MOD: u8 = 0x90;
    pub(super) const XOR: u8 = 0xa0;
    pub(super) const MOV: u8 = 0xb0;
    pub(super) const JA: u8 = 0x00;
    pub(super) const JEQ: u8 = 0x10;
    pub(super) const JGE: u8 = 0x30;
    pub(super) const JNE: u8 = 0x50;
    pub(super) const EXIT: u8 = 0x90;
}

/// Registers: r0 result, r1 context (the packet), r6 must hold the context
/// for packet loads, r7-r9 survive them.
const R0: u8 = 0;
const R1: u8 = 1;
const R6: u8 = 6;
const R7: u8 = 7;
const R8: u8 = 8;
const R9: u8 = 9;

/// A jump target, resolved when the program is finished.
#[derive(Clone, Copy)]
struct Label(usize);

/// A tiny assembler: instructions plus forward jumps patched at the end.
#[derive(Default)]
struct Asm {
    insns: Vec<[u8; 8]>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    fn emit(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        let mut i = [0u8; 8];
        i[0] = code;
        i[1] = (src << 4) | dst;
        i[2..4].copy_from_slice(&off.to_le_bytes());
        i[4..8].copy_from_slice(&imm.to_le_bytes());
        self.insns.push(i);
    }

    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }

    /// 64-bit `dst = src`.
    fn mov_reg(&mut self, dst: u8, src: u8) {
        self.emit(op::ALU64 | op::MOV | op::X, dst, src, 0, 0);
    }

    fn alu64_imm(&mut self, operation: u8, dst: u8, imm: i32) {
        self.emit(op::ALU64 | operation | op::K, dst, 0, 0, imm);
    }

    fn alu32_imm(&mut self, operation: u8, dst: u8, imm: i32) {
        self.emit(op::ALU | operation | op::K, dst, 0, 0, imm);
    }

    fn alu64_reg(&mut self, operation: u8, dst: u8, src: u8) {
        self.emit(op::ALU64 | operation | op::X, dst, src, 0, 0);
    }

    /// r0 = the big-endian value of `size` at packet offset `at`.
    fn load_abs(&mut self, size: u8, at: i32) {
        self.emit(op::LD | op::ABS | size, 0, 0, 0, at);
    }

    /// r0 = the big-endian value of `size` at packet offset `reg + at`.
    fn load_ind(&mut self, size: u8, reg: u8, at: i32) {
        self.emit(op::LD | op::IND | size, 0, reg, 0, at);
    }

    fn jump_if(&mut self, cond: u8, reg: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.emit(op::JMP | cond | op::K, reg, 0, 0, imm);
    }

    /// Jumps when `reg` and `src` compare as `cond` (64-bit).
    fn jump_if_reg(&mut self, cond: u8, reg: u8, src: u8, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.emit(op::JMP | cond | op::X, reg, src, 0, 0);
    }

    fn jump(&mut self, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.emit(op::JMP | op::JA, 0, 0, 0, 0);
    }

    fn exit(&mut self) {
        self.emit(op::JMP | op::EXIT, 0, 0, 0, 0);
    }

    fn finish(mut self) -> Vec<[u8; 8]> {
        for (at, label) in std::mem::take(&mut self.fixups) {
            let target = self.labels[label.0].expect("every label is bound");
            let off = (target as i64 - at as i64 - 1) as i16;
            self.insns[at][2..4].copy_from_slice(&off.to_le_bytes());
        }
        self.insns
    }
}

/// The steering program for `workers` queues (see the module documentation;
/// `owner_of_v4`/`owner_of_v6` are its reference and its tests' oracle).
pub(crate) fn program(split: &Shard) -> Vec<[u8; 8]> {
    let (workers, client_prefix, port_shift) = (split.count, split.client_prefix, split.port_shift);
    let n = i32::from(workers.max(1));
    let mut a = Asm::default();
    let (v6, zero, frag, owner) = (a.label(), a.label(), a.label(), a.label());
    let (ports, echo, error, inner_ports) = (a.label(), a.label(), a.label(), a.label());
    let (v6_source, hash) = (a.label(), a.label());

    a.mov_reg(R6, R1);
    a.load_abs(op::B, 0);
    a.alu64_imm(op::RSH, R0, 4);
    a.jump_if(op::JEQ, R0, 6, v6);
    a.jump_if(op::JNE, R0, 4, zero);

    // IPv4: fragments by identification.
    a.load_abs(op::H, 6);
    a.alu64_imm(op::AND, R0, 0x3fff);
    a.jump_if(op::JNE, R0, 0, frag);
    // r7 = header length, r8 = protocol.
    a.load_abs(op::B, 0);
    a.alu64_imm(op::AND, R0, 0x0f);
    a.alu64_imm(op::LSH, R0, 2);
    a.mov_reg(R7, R0);
    a.load_abs(op::B, 9);
    a.mov_reg(R8, R0);
    a.jump_if(op::JEQ, R8, 6, ports);
    a.jump_if(op::JEQ, R8, 17, ports);
    a.jump_if(op::JNE, R8, 1, zero);
    a.load_ind(op::B, R7, 0);
    a.jump_if(op::JEQ, R0, 0, echo);
    a.jump_if(op::JEQ, R0, 8, echo);
    a.jump_if(op::JEQ, R0, 3, error);
    a.jump_if(op::JEQ, R0, 11, error);
    a.jump_if(op::JEQ, R0, 12, error);
    a.jump(zero);

    a.bind(ports);
    a.load_ind(op::H, R7, 2);
    a.jump(owner);

    a.bind(echo);
    a.load_ind(op::H, R7, 4);
    a.jump(owner);

    // An ICMP error: r9 = offset of the quoted transport header.
    a.bind(error);
    a.load_ind(op::B, R7, 8);
    a.alu64_imm(op::AND, R0, 0x0f);
    a.alu64_imm(op::LSH, R0, 2);
    a.alu64_reg(op::ADD, R0, R7);
    a.alu64_imm(op::ADD, R0, 8);
    a.mov_reg(R9, R0);
    a.load_ind(op::B, R7, 8 + 9);
    a.jump_if(op::JEQ, R0, 6, inner_ports);
    a.jump_if(op::JEQ, R0, 17, inner_ports);
    a.jump_if(op::JNE, R0, 1, zero);
    a.load_ind(op::H, R9, 4);
    a.jump(owner);
    a.bind(inner_ports);
    a.load_ind(op::H, R9, 0);

    a.bind(owner);
    a.alu64_imm(op::RSH, R0, i32::from(port_shift.min(15)));
    a.alu64_imm(op::MOD, R0, n);
    a.exit();

    a.bind(frag);
    a.load_abs(op::H, 4);
    a.alu64_imm(op::MOD, R0, n);
    a.exit();

    // IPv6: the address to hash starts at r7.
    a.bind(v6);
    a.load_abs(op::B, 6);
    a.jump_if(op::JNE, R0, 58, v6_source);
    a.load_abs(op::B, 40);
    a.jump_if(op::JGE, R0, 128, v6_source);
    a.alu64_imm(op::MOV, R7, 72);
    a.jump(hash);
    a.bind(v6_source);
    a.alu64_imm(op::MOV, R7, 8);
    a.bind(hash);
    if let Some(d) = &split.deterministic {
        deterministic_owner(&mut a, d, n);
    }
    // The client's bits only (`nat64.limits.client-prefix`): words beyond
    // the prefix are skipped, a word across its end is masked.
    a.alu64_imm(op::MOV, R8, 0);
    for (at, mask) in [0, 4, 8, 12].into_iter().zip(client_mask(client_prefix)) {
        if mask == 0 {
            continue;
        }
        a.load_ind(op::W, R7, at);
        if mask != u32::MAX {
            a.alu32_imm(op::AND, R0, mask as i32);
        }
        a.alu64_reg(op::XOR, R8, R0);
    }
    a.alu32_imm(op::MUL, R8, 0x9E37_79B1_u32 as i32);
    a.alu32_imm(op::RSH, R8, 16);
    a.alu32_imm(op::MOD, R8, n);
    a.mov_reg(R0, R8);
    a.exit();

    a.bind(zero);
    a.alu64_imm(op::MOV, R0, 0);
    a.exit();
    a.finish()
}

/// RFC 7422 §2: a client in the deterministic range (the address at `r7`)
/// goes to the worker owning its block, `(first + i % per_address) % n`
/// where `i` is the client's index, its bits after the range's
/// ([`Deterministic::owner`]); any other falls through to the hash.
fn deterministic_owner(a: &mut Asm, d: &Deterministic, n: i32) {
    let other = a.label();
    let range = d.range.to_be_bytes();
    for (w, mask) in client_mask(d.range_len).into_iter().enumerate() {
        if mask == 0 {
            continue;
        }
        let want = u32::from_be_bytes([
            range[4 * w],
            range[4 * w + 1],
            range[4 * w + 2],
            range[4 * w + 3],
        ]);
        a.load_ind(op::W, R7, 4 * w as i32);
        if mask != u32::MAX {
            a.alu32_imm(op::AND, R0, mask as i32);
        }
        // A 32-bit constant in a register: `jne` with an immediate would
        // sign-extend it.
        a.alu32_imm(op::MOV, R9, want as i32);
        a.jump_if_reg(op::JNE, R0, R9, other);
    }
    // The index: bits range_len..client_prefix, in one word or across two.
    let (lo, hi) = (u32::from(d.range_len), u32::from(d.client_prefix));
    let (w0, w1) = (lo / 32, (hi - 1) / 32);
    a.load_ind(op::W, R7, 4 * w0 as i32);
    a.mov_reg(R9, R0);
    if w1 != w0 {
        a.alu64_imm(op::LSH, R9, 32);
        a.load_ind(op::W, R7, 4 * w1 as i32);
        a.alu64_reg(op::OR, R9, R0);
    }
    a.alu64_imm(op::RSH, R9, (32 * (w1 + 1) - hi) as i32);
    a.alu64_imm(op::AND, R9, ((1u32 << (hi - lo)) - 1) as i32);
    a.alu64_imm(op::MOD, R9, i32::from(d.per_address.max(1)));
    a.alu64_imm(op::ADD, R9, i32::from(d.first));
    a.alu64_imm(op::MOD, R9, n);
    a.mov_reg(R0, R9);
    a.exit();
    a.bind(other);
}

/// Loads the steering program for `split` (its `count` of queues, client
/// prefix, port runs and deterministic clients) into the kernel.
pub(crate) fn load(split: &Shard) -> std::io::Result<OwnedFd> {
    crate::sys::bpf::load_socket_filter(&program(split))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use xlat64_nat::shard::owner_of_v4;

    /// Packets of every kind the program tells apart, and some it does not.
    fn packets() -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        for i in 0..64u16 {
            let client = [
                0x20,
                0x01,
                0x0d,
                0xb8,
                0,
                1,
                // Bits on both sides of a /56 and a /64.
                (i * 13) as u8,
                (i * 37) as u8,
                (i * 5) as u8,
                0,
                0,
                0,
                0,
                0,
                (i >> 8) as u8,
                i as u8,
            ];
            let server6 = [
                0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 203, 0, 113, 5,
            ];
            let port = 1000 + 997 * i;
            let mut v = Vec::new();
            PacketBuilder::ipv6(client, server6, 64)
                .udp(port, 53)
                .write(&mut v, b"q")
                .unwrap();
            all.push(v);
            let mut v = Vec::new();
            PacketBuilder::ipv6(client, server6, 64)
                .icmpv6_echo_request(i, 1)
                .write(&mut v, b"ping")
                .unwrap();
            all.push(v);
            // An ICMPv6 error from a router about a packet to the client.
            let mut quoted = Vec::new();
            PacketBuilder::ipv6(server6, client, 64)
                .udp(53, port)
                .write(&mut quoted, b"a")
                .unwrap();
            let mut v = Vec::new();
            PacketBuilder::ipv6([0xfe; 16], client, 64)
                .icmpv6(etherparse::Icmpv6Type::TimeExceeded(
                    etherparse::icmpv6::TimeExceededCode::HopLimitExceeded,
                ))
                .write(&mut v, &quoted)
                .unwrap();
            all.push(v);
            let pool = [192, 0, 2, 1];
            let server = [203, 0, 113, 5];
            let mut v = Vec::new();
            PacketBuilder::ipv4(server, pool, 64)
                .tcp(80, port, 1, 100)
                .write(&mut v, b"t")
                .unwrap();
            all.push(v);
            let mut v = Vec::new();
            PacketBuilder::ipv4(server, pool, 64)
                .icmpv4_echo_reply(port, 2)
                .write(&mut v, b"p")
                .unwrap();
            all.push(v);
            // An ICMP error quoting a packet from pool port `port`.
            let mut quoted = Vec::new();
            PacketBuilder::ipv4(pool, server, 64)
                .udp(port, 53)
                .write(&mut quoted, b"q")
                .unwrap();
            let mut v = Vec::new();
            PacketBuilder::ipv4([198, 51, 100, 1], pool, 64)
                .icmpv4(etherparse::Icmpv4Type::TimeExceeded(
                    etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
                ))
                .write(&mut v, &quoted)
                .unwrap();
            all.push(v);
            // The same, quoting an echo request with identifier `port`.
            let mut quoted = Vec::new();
            PacketBuilder::ipv4(pool, server, 64)
                .icmpv4_echo_request(port, 1)
                .write(&mut quoted, b"q")
                .unwrap();
            let mut v = Vec::new();
            PacketBuilder::ipv4(server, pool, 64)
                .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::Host,
                ))
                .write(&mut v, &quoted)
                .unwrap();
            all.push(v);
            // A UDP reply with IPv4 options (header of 24 bytes).
            let mut opt = all[all.len() - 4].clone();
            opt[9] = 17;
            let mut with_options = vec![0x46];
            with_options.extend_from_slice(&opt[1..20]);
            with_options.extend_from_slice(&[1, 1, 1, 0]);
            with_options.extend_from_slice(&opt[20..]);
            all.push(with_options);
            // A fragment.
            let mut frag = all[all.len() - 5].clone();
            frag[4..6].copy_from_slice(&(i * 31).to_be_bytes());
            frag[6] = 0x20;
            all.push(frag);
        }
        // What goes to queue 0: other protocols, other versions, truncated.
        let mut gre = all[3].clone();
        gre[9] = 47;
        all.push(gre);
        all.push(vec![0x50; 40]);
        all.push(vec![0x45, 0, 0]);
        all
    }

    #[test]
    fn the_kernel_computes_what_the_reference_computes() {
        if !crate::sys::process::is_root() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the steering test needs root to load BPF (CI=true: it must run)"
            );
            eprintln!("SKIPPED the_kernel_computes_what_the_reference_computes: needs root");
            return;
        }
        // Deterministic clients: the test packets' clients 2001:db8:1:XX...
        // in a /48 (index across two words with /72 clients) or a /40.
        let range = u128::from(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0));
        let det = |len, prefix, block, span| {
            Some(Deterministic::new(range, len, prefix, span, block, 65536).unwrap())
        };
        for (workers, client_prefix, shift, deterministic) in [
            (1u16, 128, 1, None),
            (2, 128, 1, None),
            (3, 64, 1, None),
            (4, 56, 1, None),
            (7, 128, 1, None),
            (4, 32, 1, None),
            (2, 128, 9, None),
            (3, 64, 6, None),
            (3, 64, 8, det(48, 64, 256, 1024..=65535)),
            (4, 72, 6, det(56, 72, 64, 1024..=65535)),
            (2, 56, 10, det(40, 56, 1024, 1024..=65535)),
        ] {
            let split = Shard {
                count: workers,
                client_prefix,
                port_shift: shift,
                deterministic,
                ..Shard::ONE
            };
            let prog = load(&split).expect("the verifier accepts the steering program");
            for pkt in packets() {
                let expected = match pkt.first().map(|b| b >> 4) {
                    Some(6) => split.v6_owner(&pkt),
                    Some(4) => owner_of_v4(&pkt, workers, shift),
                    _ => None,
                }
                .unwrap_or(0);
                let ethertype: [u8; 2] = if pkt[0] >> 4 == 6 {
                    [0x86, 0xdd]
                } else {
                    [0x08, 0x00]
                };
                let mut frame = vec![0u8; 12];
                frame.extend_from_slice(&ethertype);
                frame.extend_from_slice(&pkt);
                // Ethernet frames are at least 60 bytes: pad (after the
                // packet, where the program never looks for a shorter one).
                frame.resize(frame.len().max(60), 0);
                let got = crate::sys::bpf::test_run(&prog, &frame).expect("BPF_PROG_TEST_RUN");
                assert_eq!(
                    got % u32::from(workers),
                    u32::from(expected),
                    "workers {workers}, packet {pkt:02x?}"
                );
            }
        }
    }

    #[test]
    fn jumps_land_inside_the_program() {
        let p = program(&Shard {
            count: 4,
            client_prefix: 60,
            ..Shard::ONE
        });
        for (at, i) in p.iter().enumerate() {
            if i[0] & 0x07 == op::JMP && i[0] != op::JMP | op::EXIT {
                let off = i16::from_le_bytes([i[2], i[3]]) as i64;
                let target = at as i64 + 1 + off;
                assert!((0..p.len() as i64).contains(&target), "insn {at}");
            }
        }
        assert_eq!(p.last().unwrap()[0], op::JMP | op::EXIT);
    }
}
