//! Fragment reassembly with bounded memory, for the stateful NAT64.
//!
//! A stateful NAT64 needs the transport ports of every packet, and only the
//! first fragment carries them. RFC 6146 §3.4 lets the NAT64 queue fragments
//! and translate the datagram once it is whole, keeping an incomplete datagram
//! for at least FRAGMENT_MIN (2 s), and warns about the classic attacks on
//! reassembly (RFC 1858, RFC 3128, RFC 4963). This module is that queue:
//! IPv4 per RFC 791 §3.2 (key: source, destination, protocol, identification),
//! IPv6 per RFC 8200 §4.5 (key: source, destination, identification) with the
//! overlap rule of RFC 5722, applied to IPv4 as well.
//!
//! Memory is fixed by [`ReassemblyLimits`]: at most `max_datagrams` slots, each
//! with one buffer of 64 KiB plus header room and a list of at most
//! `max_fragments` received ranges, allocated the first time the slot is used
//! and reused afterwards. Fragment data is copied once, into the slot's buffer
//! at its offset, behind room for the first fragment's headers, so the
//! reassembled packet is returned as one slice of that buffer.
//!
//! Incomplete datagrams expire `timeout` after their first fragment, never
//! later: later fragments do not refresh it, so a slow trickle cannot keep a
//! slot. Since that deadline is the creation time plus a constant, creation
//! order is deadline order, and the slots in use form a doubly linked list in
//! that order (the caller's `now` never goes backwards, as `Instant` does
//! not); removing a completed datagram from the middle is O(1).
//!
//! A datagram found to be bogus (overlap, inconsistent ends, too many
//! fragments, too long) keeps its slot until its deadline, emptied and marked
//! with the reason, so that the fragments still on their way are discarded too
//! (RFC 5722 §4: "including those not yet received") instead of starting a new
//! datagram that could only time out.

use foldhash::fast::FixedState;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use xlat64_packet::checksum;

/// Largest reassembled payload: the IPv4 Total Length (RFC 791 §3.1) and the
/// IPv6 Payload Length (RFC 8200 §3) are 16-bit fields.
const MAX_LENGTH: usize = 65_535;

/// Room kept in front of the data for the first fragment's headers: the IPv4
/// header (at most 60 bytes) or the IPv6 unfragmentable part (fixed header
/// plus the extension headers before the Fragment header, RFC 8200 §4.5).
/// A longer IPv6 unfragmentable part is refused as [`FragmentDrop::TooLarge`].
pub const MAX_UNFRAGMENTABLE: usize = 512;

/// Every non-last fragment carries at least 8 bytes, so no datagram can
/// consist of more distinct fragments than this; larger limits are clamped.
const MAX_FRAGMENTS_POSSIBLE: usize = MAX_LENGTH / 8 + 1;

const IPV4_MIN_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const FRAGMENT_HEADER: usize = 8;
/// Next Header value of the IPv6 Fragment header (RFC 8200 §4.5).
const NEXT_HEADER_FRAGMENT: u8 = 44;
const IPV4_DF: u16 = 0x4000;
const IPV4_MF: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1fff;

/// End of the expiry list.
const NIL: usize = usize::MAX;

/// Limits of the fragment store; they bound its memory (RFC 6146 §3.4 and
/// RFC 4963 §4 on why reassembly state must be bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Datagrams being reassembled at once, all sources together (default
    /// 256). Each costs about 66 KiB once its slot has been used.
    pub max_datagrams: usize,
    /// Datagrams being reassembled at once per source (IPv4: the /32, IPv6:
    /// the /64 of the source address; default 16), so that one source's
    /// flood cannot take the slots the others need.
    pub max_per_source: usize,
    /// Fragments per datagram (default 64); one more and the datagram is
    /// discarded. Bounds the cost of the range list walk per fragment.
    pub max_fragments: usize,
    /// How long an incomplete datagram is kept after its first fragment
    /// (default 2 s, the FRAGMENT_MIN of RFC 6146 §3.4).
    pub timeout: Duration,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_datagrams: 256,
            max_per_source: 16,
            max_fragments: 64,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Why a fragment was dropped; each reason is a counter so that an attack
/// (or a broken sender) shows up by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FragmentDrop {
    /// Lengths that no correct sender produces: a non-last fragment whose data
    /// is not a multiple of 8 bytes (RFC 791 §3.2, RFC 8200 §4.5), an empty
    /// fragment, header lengths that do not fit the packet, a truncated
    /// Fragment header, or a packet that is not a fragment at all (atomic
    /// fragments are processed in isolation, RFC 6946 §4, by the caller).
    Malformed,
    /// Data overlapping data already received: the whole datagram is
    /// discarded, with the fragments still to come (RFC 5722 §4; done for
    /// IPv4 too, against the overlap attacks of RFC 1858 §4 and RFC 3128).
    /// An exact duplicate of a received fragment is not an overlap: it is
    /// ignored.
    Overlap,
    /// The reassembled packet would be longer than 65535 bytes of IPv4 Total
    /// Length or IPv6 Payload Length (RFC 8200 §4.5, the "ping of death"), or
    /// the IPv6 unfragmentable part is longer than [`MAX_UNFRAGMENTABLE`].
    TooLarge,
    /// More than `max_fragments` fragments for one datagram: the datagram is
    /// discarded, since a tiny-fragment train only serves to exhaust memory
    /// (RFC 1858 §3).
    TooManyFragments,
    /// The source already has `max_per_source` datagrams in progress.
    SourceLimit,
    /// All `max_datagrams` slots are busy; datagrams in progress keep theirs
    /// until complete or timed out, so new ones are refused.
    TableFull,
    /// Two different ends given by last fragments, or data beyond the end a
    /// last fragment gave (RFC 8200 §4.5 leaves such trains undefined; they
    /// cannot reassemble): the datagram is discarded.
    Inconsistent,
}

impl FragmentDrop {
    /// Every variant, in declaration order (index = `self as usize`).
    pub const ALL: [FragmentDrop; 7] = [
        FragmentDrop::Malformed,
        FragmentDrop::Overlap,
        FragmentDrop::TooLarge,
        FragmentDrop::TooManyFragments,
        FragmentDrop::SourceLimit,
        FragmentDrop::TableFull,
        FragmentDrop::Inconsistent,
    ];

    /// The counter name shown by `xlat64 stats` (snake case, prefixed
    /// `drop_fragment_`, apart from the translator's plain `drop_fragment`).
    pub const fn counter_name(self) -> &'static str {
        match self {
            FragmentDrop::Malformed => "drop_fragment_malformed",
            FragmentDrop::Overlap => "drop_fragment_overlap",
            FragmentDrop::TooLarge => "drop_fragment_too_large",
            FragmentDrop::TooManyFragments => "drop_fragment_too_many",
            FragmentDrop::SourceLimit => "drop_fragment_source_limit",
            FragmentDrop::TableFull => "drop_fragment_table_full",
            FragmentDrop::Inconsistent => "drop_fragment_inconsistent",
        }
    }
}

/// Which datagram a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DatagramKey {
    /// RFC 791 §3.2: source, destination, protocol, identification.
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        id: u16,
    },
    /// RFC 8200 §4.5: source, destination, identification.
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        id: u32,
    },
}

/// Whose quota a datagram counts against: an IPv6 host picks any address in
/// its /64, so counting per address would not limit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl DatagramKey {
    fn source(&self) -> SourceKey {
        match self {
            DatagramKey::V4 { src, .. } => SourceKey::V4(*src),
            DatagramKey::V6 { src, .. } => {
                let mut net = [0; 8];
                for (n, s) in net.iter_mut().zip(src) {
                    *n = *s;
                }
                SourceKey::V6(net)
            }
        }
    }
}

/// One fragment, parsed and checked on its own.
#[derive(Debug)]
struct Fragment<'p> {
    key: DatagramKey,
    /// Byte offset of `data` in the fragmentable part.
    offset: usize,
    data: &'p [u8],
    /// MF clear (IPv4) / M clear (IPv6): this fragment fixes the end.
    last: bool,
    /// Headers kept from the offset-0 fragment: the IPv4 header with its
    /// options, or the IPv6 unfragmentable part.
    head: &'p [u8],
    /// IPv6: where in `head` the Next Header byte naming the Fragment header
    /// is, and the value it takes once that header is gone.
    next_header: Option<(usize, u8)>,
}

/// A received range of the fragmentable part, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// What a fragment did to its datagram.
enum Progress {
    Held,
    /// The reassembled packet is `buf[range]`.
    Complete(std::ops::Range<usize>),
}

/// One datagram in progress.
#[derive(Debug)]
struct Slot {
    /// Header room, then the fragmentable part at `MAX_UNFRAGMENTABLE`.
    buf: Box<[u8]>,
    /// Received ranges, sorted by start, disjoint; one per fragment (never
    /// merged, so that an exact duplicate is recognised).
    spans: Vec<Span>,
    /// `None` while the slot is free.
    key: Option<DatagramKey>,
    deadline: Option<Instant>,
    /// Length of the kept headers; 0 until the offset-0 fragment arrives.
    head_len: usize,
    /// End of the fragmentable part, once a last fragment has given it.
    end: Option<usize>,
    /// Bytes of fragmentable part received; equal to `end` exactly when
    /// complete, since the spans are disjoint and within `end`.
    received: usize,
    /// Set when the datagram was discarded; its late fragments get this.
    discarded: Option<FragmentDrop>,
    /// Expiry list, in creation (= deadline) order.
    prev: usize,
    next: usize,
}

impl Slot {
    fn new(max_fragments: usize) -> Slot {
        Slot {
            buf: vec![0; MAX_UNFRAGMENTABLE + MAX_LENGTH].into_boxed_slice(),
            spans: Vec::with_capacity(max_fragments),
            key: None,
            deadline: None,
            head_len: 0,
            end: None,
            received: 0,
            discarded: None,
            prev: NIL,
            next: NIL,
        }
    }

    fn bytes_held(&self) -> usize {
        self.received + self.head_len
    }

    /// Forgets the data, keeps key, deadline and list links.
    fn clear_data(&mut self) {
        self.spans.clear();
        self.head_len = 0;
        self.end = None;
        self.received = 0;
    }

    /// Bytes the reassembled length field counts besides the fragmentable
    /// part: the whole IPv4 header (Total Length), or the IPv6 extension
    /// headers of the unfragmentable part (Payload Length).
    fn overhead(&self) -> Option<usize> {
        if self.head_len == 0 {
            return None;
        }
        match self.key? {
            DatagramKey::V4 { .. } => Some(self.head_len),
            DatagramKey::V6 { .. } => self.head_len.checked_sub(IPV6_HEADER),
        }
    }

    /// Adds one fragment; an error means the datagram must be discarded.
    fn insert(
        &mut self,
        frag: &Fragment<'_>,
        max_fragments: usize,
    ) -> Result<Progress, FragmentDrop> {
        let off = frag.offset;
        let len = frag.data.len();
        let end = off.checked_add(len).ok_or(FragmentDrop::TooLarge)?;
        let max_end = self.spans.last().map_or(0, |s| s.end);
        match self.end {
            Some(known) if end > known || (frag.last && end != known) => {
                return Err(FragmentDrop::Inconsistent)
            }
            None if frag.last && max_end > end => return Err(FragmentDrop::Inconsistent),
            _ => {}
        }
        if let Some(overhead) = self.overhead() {
            if overhead.saturating_add(end) > MAX_LENGTH {
                return Err(FragmentDrop::TooLarge);
            }
        }
        // First span starting at or after this one; only it and the one
        // before can overlap, the spans being sorted and disjoint.
        let pos = self.spans.partition_point(|s| s.start < off);
        let after = self.spans.get(pos).copied();
        let duplicate = after == Some(Span { start: off, end });
        if !duplicate {
            let overlaps_after = after.is_some_and(|s| s.start < end);
            let overlaps_before = pos
                .checked_sub(1)
                .and_then(|i| self.spans.get(i))
                .is_some_and(|s| s.end > off);
            if overlaps_after || overlaps_before {
                return Err(FragmentDrop::Overlap);
            }
            if self.spans.len() >= max_fragments {
                return Err(FragmentDrop::TooManyFragments);
            }
            if off == 0 {
                self.store_head(frag, end.max(max_end))?;
            }
            let dst = MAX_UNFRAGMENTABLE
                .checked_add(off)
                .zip(MAX_UNFRAGMENTABLE.checked_add(end))
                .and_then(|(a, b)| self.buf.get_mut(a..b))
                .ok_or(FragmentDrop::TooLarge)?;
            dst.copy_from_slice(frag.data);
            self.spans.insert(pos, Span { start: off, end });
            self.received += len;
        }
        // A duplicate may still be the first to say it is the last.
        if frag.last {
            self.end = Some(end);
        }
        match self.end {
            Some(total) if self.received == total && self.head_len != 0 => {
                self.finish(total).map(Progress::Complete)
            }
            _ => Ok(Progress::Held),
        }
    }

    /// Keeps the offset-0 fragment's headers just in front of the data, with
    /// the IPv6 Next Header already pointing past the Fragment header.
    fn store_head(&mut self, frag: &Fragment<'_>, max_end: usize) -> Result<(), FragmentDrop> {
        let h = frag.head.len();
        let overhead = match frag.key {
            DatagramKey::V4 { .. } => h,
            DatagramKey::V6 { .. } => h.saturating_sub(IPV6_HEADER),
        };
        if overhead.saturating_add(max_end) > MAX_LENGTH {
            return Err(FragmentDrop::TooLarge);
        }
        let at = MAX_UNFRAGMENTABLE
            .checked_sub(h)
            .ok_or(FragmentDrop::TooLarge)?;
        let room = self
            .buf
            .get_mut(at..MAX_UNFRAGMENTABLE)
            .ok_or(FragmentDrop::TooLarge)?;
        room.copy_from_slice(frag.head);
        if let Some((pos, value)) = frag.next_header {
            if let Some(b) = room.get_mut(pos) {
                *b = value;
            }
        }
        self.head_len = h;
        Ok(())
    }

    /// Sets the length fields (and the IPv4 checksum) of the kept headers;
    /// returns where the whole packet lies in `buf`.
    fn finish(&mut self, total: usize) -> Result<std::ops::Range<usize>, FragmentDrop> {
        let h = self.head_len;
        let start = MAX_UNFRAGMENTABLE
            .checked_sub(h)
            .ok_or(FragmentDrop::Malformed)?;
        let stop = MAX_UNFRAGMENTABLE
            .checked_add(total)
            .ok_or(FragmentDrop::TooLarge)?;
        let key = self.key.ok_or(FragmentDrop::Malformed)?;
        let head = self
            .buf
            .get_mut(start..MAX_UNFRAGMENTABLE)
            .ok_or(FragmentDrop::Malformed)?;
        match key {
            DatagramKey::V4 { .. } => {
                let total_len =
                    u16::try_from(h.saturating_add(total)).map_err(|_| FragmentDrop::TooLarge)?;
                let flags = be16(head, 6).ok_or(FragmentDrop::Malformed)? & IPV4_DF;
                put16(head, 2, total_len)?;
                put16(head, 6, flags)?;
                put16(head, 10, 0)?;
                put16(head, 10, checksum::finish(checksum::sum(head)))?;
            }
            DatagramKey::V6 { .. } => {
                let payload_len =
                    u16::try_from(h.saturating_sub(IPV6_HEADER).saturating_add(total))
                        .map_err(|_| FragmentDrop::TooLarge)?;
                put16(head, 4, payload_len)?;
            }
        }
        Ok(start..stop)
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..)?.first_chunk::<2>()?;
    Some(u16::from_be_bytes(*bytes))
}

fn put16(b: &mut [u8], at: usize, v: u16) -> Result<(), FragmentDrop> {
    let bytes = b
        .get_mut(at..)
        .and_then(|s| s.first_chunk_mut::<2>())
        .ok_or(FragmentDrop::Malformed)?;
    *bytes = v.to_be_bytes();
    Ok(())
}

fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..)?.first_chunk::<N>().copied()
}

/// Parses an IPv4 fragment (RFC 791 §3.1), trusting none of its lengths.
fn parse_v4(pkt: &[u8]) -> Result<Fragment<'_>, FragmentDrop> {
    let first = *pkt.first().ok_or(FragmentDrop::Malformed)?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < IPV4_MIN_HEADER {
        return Err(FragmentDrop::Malformed);
    }
    let total = usize::from(be16(pkt, 2).ok_or(FragmentDrop::Malformed)?);
    // Bytes after Total Length are link padding, not data.
    let pkt = pkt.get(..total).ok_or(FragmentDrop::Malformed)?;
    let head = pkt.get(..ihl).ok_or(FragmentDrop::Malformed)?;
    let data = pkt.get(ihl..).ok_or(FragmentDrop::Malformed)?;
    let id = be16(pkt, 4).ok_or(FragmentDrop::Malformed)?;
    let flags = be16(pkt, 6).ok_or(FragmentDrop::Malformed)?;
    let proto = *pkt.get(9).ok_or(FragmentDrop::Malformed)?;
    let src = array::<4>(pkt, 12).ok_or(FragmentDrop::Malformed)?;
    let dst = array::<4>(pkt, 16).ok_or(FragmentDrop::Malformed)?;
    let offset = usize::from(flags & IPV4_OFFSET_MASK) * 8;
    let last = flags & IPV4_MF == 0;
    check_lengths(offset, data.len(), last)?;
    // Total Length counts the header too (RFC 791 §3.1).
    if ihl + offset + data.len() > MAX_LENGTH {
        return Err(FragmentDrop::TooLarge);
    }
    Ok(Fragment {
        key: DatagramKey::V4 {
            src,
            dst,
            proto,
            id,
        },
        offset,
        data,
        last,
        head,
        next_header: None,
    })
}

/// Parses an IPv6 fragment (RFC 8200 §4.5) whose Fragment header the caller
/// located, trusting neither its lengths nor the caller's offsets.
fn parse_v6(
    pkt: &[u8],
    frag_at: usize,
    next_header_at: usize,
) -> Result<Fragment<'_>, FragmentDrop> {
    let first = *pkt.first().ok_or(FragmentDrop::Malformed)?;
    if first >> 4 != 6 {
        return Err(FragmentDrop::Malformed);
    }
    let payload_len = usize::from(be16(pkt, 4).ok_or(FragmentDrop::Malformed)?);
    let pkt = pkt
        .get(..IPV6_HEADER + payload_len)
        .ok_or(FragmentDrop::Malformed)?;
    // The Next Header byte is the fixed header's, or lies in an extension
    // header before the Fragment header.
    let names_fragment = pkt.get(next_header_at) == Some(&NEXT_HEADER_FRAGMENT);
    if frag_at < IPV6_HEADER
        || !(next_header_at == 6 || (IPV6_HEADER..frag_at).contains(&next_header_at))
        || !names_fragment
    {
        return Err(FragmentDrop::Malformed);
    }
    let head = pkt.get(..frag_at).ok_or(FragmentDrop::Malformed)?;
    let fh = array::<FRAGMENT_HEADER>(pkt, frag_at).ok_or(FragmentDrop::Malformed)?;
    let data = pkt
        .get(frag_at + FRAGMENT_HEADER..)
        .ok_or(FragmentDrop::Malformed)?;
    let [next, _reserved, o1, o2, i0, i1, i2, i3] = fh;
    let off_flags = u16::from_be_bytes([o1, o2]);
    let offset = usize::from(off_flags >> 3) * 8;
    let last = off_flags & 1 == 0;
    check_lengths(offset, data.len(), last)?;
    // Payload Length of the result counts the unfragmentable extension
    // headers, not the fixed header nor the Fragment header (RFC 8200 §4.5).
    if (frag_at - IPV6_HEADER) + offset + data.len() > MAX_LENGTH {
        return Err(FragmentDrop::TooLarge);
    }
    if offset == 0 && frag_at > MAX_UNFRAGMENTABLE {
        return Err(FragmentDrop::TooLarge);
    }
    let src = array::<16>(pkt, 8).ok_or(FragmentDrop::Malformed)?;
    let dst = array::<16>(pkt, 24).ok_or(FragmentDrop::Malformed)?;
    Ok(Fragment {
        key: DatagramKey::V6 {
            src,
            dst,
            id: u32::from_be_bytes([i0, i1, i2, i3]),
        },
        offset,
        data,
        last,
        head,
        next_header: Some((next_header_at, next)),
    })
}

/// Length rules shared by both versions (RFC 791 §3.2, RFC 8200 §4.5).
fn check_lengths(offset: usize, len: usize, last: bool) -> Result<(), FragmentDrop> {
    let not_a_fragment = offset == 0 && last;
    if len == 0 || (!last && len % 8 != 0) || not_a_fragment {
        return Err(FragmentDrop::Malformed);
    }
    Ok(())
}

/// Keyed maps: keys carry attacker-chosen addresses and identifications.
type Map<K, V> = HashMap<K, V, FixedState>;

/// IPv4 and IPv6 fragment reassembly (RFC 6146 §3.4) in fixed memory.
///
/// Pure: every call takes `now`; expiry runs through
/// [`Reassembler::poll_timeout`] and [`Reassembler::handle_timeout`].
#[derive(Debug)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    /// Created on first use, up to `max_datagrams`, then reused.
    slots: Vec<Slot>,
    /// Indices of created slots not in use.
    free: Vec<usize>,
    index: Map<DatagramKey, usize>,
    per_source: Map<SourceKey, usize>,
    /// Oldest and newest slot in use (expiry list ends).
    oldest: usize,
    newest: usize,
    bytes_held: usize,
    /// Timeouts found by packet calls, reported by the next `handle_timeout`.
    unreported_timeouts: u64,
}

impl Reassembler {
    /// Name of the counter fed by [`Reassembler::handle_timeout`].
    pub const TIMEOUT_COUNTER: &'static str = "fragment_timeouts";

    /// An empty store. `seed` keys the hash maps, so that a sender cannot
    /// pick identifications that collide (draw it at random in production).
    ///
    /// Allocates the tables for `limits.max_datagrams` datagrams now; the
    /// slots' buffers come when first used.
    pub fn new(limits: ReassemblyLimits, seed: u64) -> Self {
        let limits = ReassemblyLimits {
            max_fragments: limits.max_fragments.min(MAX_FRAGMENTS_POSSIBLE),
            ..limits
        };
        let n = limits.max_datagrams;
        // Twice the entries: the std map may resize once to clear tombstones
        // when nearly full; with room to spare it rehashes in place.
        let map_capacity = n.saturating_mul(2);
        Reassembler {
            limits,
            slots: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            index: Map::with_capacity_and_hasher(map_capacity, FixedState::with_seed(seed)),
            per_source: Map::with_capacity_and_hasher(
                map_capacity,
                FixedState::with_seed(seed.rotate_left(32)),
            ),
            oldest: NIL,
            newest: NIL,
            bytes_held: 0,
            unreported_timeouts: 0,
        }
    }

    /// The limits in force (`max_fragments` clamped to what 65535 bytes can
    /// hold).
    pub fn limits(&self) -> ReassemblyLimits {
        self.limits
    }

    /// An IPv4 fragment (MF set or offset not 0, RFC 791 §3.2). `pkt` is a
    /// whole IPv4 packet whose header the caller has validated; its lengths
    /// are checked again, never trusted.
    ///
    /// `Ok(Some(packet))` when this fragment completed the datagram: the first
    /// fragment's header with its options, MF and offset cleared, DF as in
    /// the first fragment, Total Length set and the header checksum
    /// recomputed, followed by the data. `Ok(None)` when the fragment is held
    /// (or was an exact duplicate). The slice lives in the store and stays
    /// valid until the next `&mut` call.
    pub fn add_v4(&mut self, now: Instant, pkt: &[u8]) -> Result<Option<&[u8]>, FragmentDrop> {
        let frag = parse_v4(pkt)?;
        self.add(now, &frag)
    }

    /// An IPv6 fragment: a packet with a Fragment header whose offset is not
    /// 0 or whose M flag is set (RFC 8200 §4.5); atomic fragments are the
    /// caller's, to be processed in isolation (RFC 6946 §4).
    ///
    /// `frag_offset` is where the Fragment header starts in `pkt`, so
    /// `pkt[..frag_offset]` is the unfragmentable part; `next_header_at` is
    /// the Next Header byte that names the Fragment header (6 when it follows
    /// the fixed header, else inside the last extension header before it).
    ///
    /// `Ok(Some(packet))` when complete: the unfragmentable part of the
    /// offset-0 fragment without the Fragment header (its Next Header moved to
    /// `next_header_at`), Payload Length set, then the fragmentable part.
    /// Only the offset-0 fragment's headers and Next Header are used, as
    /// RFC 8200 §4.5 prescribes.
    pub fn add_v6(
        &mut self,
        now: Instant,
        pkt: &[u8],
        frag_offset: usize,
        next_header_at: usize,
    ) -> Result<Option<&[u8]>, FragmentDrop> {
        let frag = parse_v6(pkt, frag_offset, next_header_at)?;
        self.add(now, &frag)
    }

    fn add(&mut self, now: Instant, frag: &Fragment<'_>) -> Result<Option<&[u8]>, FragmentDrop> {
        // Expire first, so that a late handle_timeout never refuses a new
        // datagram for a slot whose time is up.
        self.expire(now);
        let idx = match self.index.get(&frag.key) {
            Some(&idx) => idx,
            None => self.allocate(now, frag.key)?,
        };
        let max_fragments = self.limits.max_fragments;
        let slot = self.slots.get_mut(idx).ok_or(FragmentDrop::TableFull)?;
        if let Some(reason) = slot.discarded {
            return Err(reason);
        }
        let before = slot.bytes_held();
        let result = slot.insert(frag, max_fragments);
        let after = slot.bytes_held();
        self.bytes_held = self.bytes_held - before + after;
        match result {
            Ok(Progress::Held) => Ok(None),
            Ok(Progress::Complete(range)) => {
                self.release(idx);
                // Released slots keep their buffer untouched until the next
                // `&mut` call, which the borrow of the result rules out.
                let slot = self.slots.get(idx).ok_or(FragmentDrop::TableFull)?;
                Ok(slot.buf.get(range))
            }
            Err(reason) => {
                self.discard(idx, reason);
                Err(reason)
            }
        }
    }

    /// Takes a slot for a new datagram, within both limits.
    fn allocate(&mut self, now: Instant, key: DatagramKey) -> Result<usize, FragmentDrop> {
        let source = key.source();
        let count = self.per_source.get(&source).copied().unwrap_or(0);
        if count >= self.limits.max_per_source {
            return Err(FragmentDrop::SourceLimit);
        }
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None if self.slots.len() < self.limits.max_datagrams => {
                self.slots.push(Slot::new(self.limits.max_fragments));
                self.slots.len() - 1
            }
            None => return Err(FragmentDrop::TableFull),
        };
        let newest = self.newest;
        let Some(slot) = self.slots.get_mut(idx) else {
            return Err(FragmentDrop::TableFull);
        };
        slot.key = Some(key);
        // An unrepresentable deadline (absurd timeout) means never.
        slot.deadline = now.checked_add(self.limits.timeout);
        slot.discarded = None;
        slot.prev = newest;
        slot.next = NIL;
        match self.slots.get_mut(newest) {
            Some(prev) => prev.next = idx,
            None => self.oldest = idx,
        }
        self.newest = idx;
        self.index.insert(key, idx);
        *self.per_source.entry(source).or_insert(0) += 1;
        Ok(idx)
    }

    /// Empties a bogus datagram's slot but keeps it until its deadline, so
    /// that its remaining fragments are dropped too (RFC 5722 §4).
    fn discard(&mut self, idx: usize, reason: FragmentDrop) {
        if let Some(slot) = self.slots.get_mut(idx) {
            self.bytes_held -= slot.bytes_held();
            slot.clear_data();
            slot.discarded = Some(reason);
        }
    }

    /// Frees a slot: out of the index, the source quota and the expiry list.
    fn release(&mut self, idx: usize) {
        let Some(slot) = self.slots.get_mut(idx) else {
            return;
        };
        let Some(key) = slot.key.take() else {
            return;
        };
        self.bytes_held -= slot.bytes_held();
        slot.clear_data();
        slot.discarded = None;
        slot.deadline = None;
        let (prev, next) = (slot.prev, slot.next);
        slot.prev = NIL;
        slot.next = NIL;
        match self.slots.get_mut(prev) {
            Some(p) => p.next = next,
            None => self.oldest = next,
        }
        match self.slots.get_mut(next) {
            Some(n) => n.prev = prev,
            None => self.newest = prev,
        }
        self.index.remove(&key);
        let source = key.source();
        if let Some(count) = self.per_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.per_source.remove(&source);
            }
        }
        self.free.push(idx);
    }

    /// Frees every slot whose deadline has passed, counting the datagrams
    /// that were still incomplete (discarded ones were counted already).
    fn expire(&mut self, now: Instant) {
        while let Some(slot) = self.slots.get(self.oldest) {
            if slot.deadline.is_none_or(|d| d > now) {
                break;
            }
            if slot.discarded.is_none() {
                self.unreported_timeouts += 1;
            }
            self.release(self.oldest);
        }
    }

    /// Earliest deadline of a datagram in progress (or of a discarded one
    /// still holding its slot).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots.get(self.oldest).and_then(|s| s.deadline)
    }

    /// Drops the datagrams whose time is up (RFC 6146 §3.4); returns how
    /// many were dropped incomplete since the last call, including those the
    /// packet calls found expired (the `fragment_timeouts` counter,
    /// [`Reassembler::TIMEOUT_COUNTER`]).
    pub fn handle_timeout(&mut self, now: Instant) -> u64 {
        self.expire(now);
        std::mem::take(&mut self.unreported_timeouts)
    }

    /// Datagrams holding a slot: in progress, or discarded and waiting for
    /// their deadline (a gauge).
    pub fn in_progress(&self) -> usize {
        self.index.len()
    }

    /// Bytes of fragment data and kept headers held (a gauge); the memory
    /// reserved is fixed by the limits, this is how much of it is in use.
    pub fn bytes_held(&self) -> usize {
        self.bytes_held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn all_is_in_declaration_order() {
        for (i, r) in FragmentDrop::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }

    #[test]
    fn counter_names_unique_and_prefixed() {
        let names: HashSet<_> = FragmentDrop::ALL.iter().map(|r| r.counter_name()).collect();
        assert_eq!(names.len(), FragmentDrop::ALL.len());
        for n in names {
            assert!(n.starts_with("drop_fragment_"), "{n}");
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{n}"
            );
        }
    }

    /// An IPv4 fragment of `len` data bytes at `offset`, zero-filled.
    fn v4(src: u8, id: u16, offset: usize, len: usize, more: bool) -> Vec<u8> {
        let mut p = vec![0; 20 + len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + len) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let flags = (offset / 8) as u16 | if more { IPV4_MF } else { 0 };
        p[6..8].copy_from_slice(&flags.to_be_bytes());
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 0, 0, src]);
        p[16..20].copy_from_slice(&[192, 0, 2, 1]);
        p
    }

    /// The expiry list, the index, the quotas and the byte gauge agree.
    fn check_invariants(r: &Reassembler) {
        let mut seen = 0;
        let mut bytes = 0;
        let mut idx = r.oldest;
        let mut prev = NIL;
        let mut last_deadline = None;
        while let Some(slot) = r.slots.get(idx) {
            assert_eq!(slot.prev, prev);
            let key = slot.key.expect("listed slot in use");
            assert_eq!(r.index.get(&key), Some(&idx));
            assert!(slot.deadline >= last_deadline);
            last_deadline = slot.deadline;
            bytes += slot.bytes_held();
            seen += 1;
            prev = idx;
            idx = slot.next;
        }
        assert_eq!(r.newest, prev);
        assert_eq!(seen, r.index.len());
        assert_eq!(bytes, r.bytes_held);
        assert_eq!(r.per_source.values().sum::<usize>(), seen);
        assert_eq!(r.free.len() + seen, r.slots.len());
    }

    /// No allocation after warm-up: the slot table, the free list and every
    /// range list keep the capacity they were created with.
    #[test]
    fn memory_fixed_by_limits() {
        let limits = ReassemblyLimits {
            max_datagrams: 8,
            max_per_source: 3,
            max_fragments: 4,
            timeout: Duration::from_millis(50),
        };
        let mut r = Reassembler::new(limits, 11);
        let (slots_cap, free_cap) = (r.slots.capacity(), r.free.capacity());
        let (index_cap, source_cap) = (r.index.capacity(), r.per_source.capacity());
        let base = Instant::now();
        // A deterministic mix: completions, timeouts, overlaps, floods.
        let mut x: u32 = 0x1234_5678;
        let (mut complete, mut timeouts) = (0, 0);
        let mut drops = HashSet::new();
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let now = base + Duration::from_millis(step / 8);
            let src = (x % 5) as u8;
            let id = ((x >> 3) % 7) as u16;
            let offset = ((x >> 6) % 4) as usize * 16;
            let more = offset < 48 || (x >> 9) % 5 == 0;
            let len = if (x >> 12) % 8 == 0 { 24 } else { 16 };
            match r.add_v4(now, &v4(src, id, offset, len, more)) {
                Ok(Some(_)) => complete += 1,
                Ok(None) => {}
                Err(e) => {
                    drops.insert(e);
                }
            }
            if step % 64 == 0 {
                timeouts += r.handle_timeout(now);
            }
            check_invariants(&r);
            for slot in &r.slots {
                assert_eq!(slot.spans.capacity(), 4);
            }
        }
        assert_eq!(
            (r.slots.capacity(), r.free.capacity()),
            (slots_cap, free_cap)
        );
        assert_eq!(
            (r.index.capacity(), r.per_source.capacity()),
            (index_cap, source_cap)
        );
        assert_eq!(r.slots.len(), 8);
        assert!(complete > 100 && timeouts > 20, "{complete} {timeouts}");
        for e in [
            FragmentDrop::Overlap,
            FragmentDrop::SourceLimit,
            FragmentDrop::TableFull,
            FragmentDrop::Inconsistent,
        ] {
            assert!(drops.contains(&e), "{e:?} not exercised: {drops:?}");
        }
        let _ = r.handle_timeout(base + Duration::from_secs(10));
        check_invariants(&r);
        assert_eq!((r.in_progress(), r.bytes_held()), (0, 0));
    }
}
