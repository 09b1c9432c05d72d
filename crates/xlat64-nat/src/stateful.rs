//! The stateful translator: prefix + tables + RFC 7915 translation, ICMP
//! errors both ways, path MTU, fragment reassembly, and the ICMP errors the
//! gateway sends itself.

use crate::binding_log::{BindingEvent, BindingEvents};
use crate::icmp_rate::IcmpRateLimit;
use crate::ipv4_id::Ipv4Ids;
use crate::reassembly::{FragmentDrop, Reassembler, ReassemblyLimits};
use crate::session_table::{OutboundPlan, SessionTable, TablePolicy};
use crate::shard::{owner_of_port, owner_of_v4, Shard};
use crate::syn_store::{Quote, SynStore, QUOTE};
use crate::tcp_probe;
use crate::{BibEntry, Pool4, SessionEntry, Timeouts};
use foldhash::fast::FixedState;
use ipnet::Ipv4Net;
use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};
use xlat64_packet::fragment::{fragment_v6_in_place, fragmented_len};
use xlat64_packet::icmp_build::{
    icmpv4_error, icmpv6_error, may_answer_v4, may_answer_v6, IcmpError, TIME_EXCEEDED_V4,
    TIME_EXCEEDED_V6,
};
use xlat64_packet::icmp_error::{translate_error_4to6, translate_error_6to4, ErrorAddrs};
use xlat64_packet::icmp_map::{v4 as icmp4, v6 as icmp6};
use xlat64_packet::ipv6_ext::{self, segments_left_pointer};
use xlat64_packet::special::{allowed_under_well_known, never_a_host};
use xlat64_packet::{
    is_fragment_v4, parse_v4, parse_v6, tcp_mss, translate_4to6, translate_4to6_in_place,
    translate_6to4, translate_6to4_in_place, DropReason, Flow4, Flow6, L4Proto, Parsed4, Parsed6,
    Prefix6052,
};

/// The IPv4 protocol number of `proto`.
fn ip_proto(proto: L4Proto) -> u8 {
    match proto {
        L4Proto::Tcp => 6,
        L4Proto::Udp => 17,
        L4Proto::Icmp => 1,
    }
}

/// The largest reassembled datagram: 64 KiB plus the longest IPv4 header.
const MAX_DATAGRAM: usize = 65535 + 60;

/// Static configuration of a stateful NAT64.
#[derive(Debug, Clone)]
pub struct Nat64Config {
    /// Translation prefix (RFC 6052).
    pub prefix: Prefix6052,
    /// IPv4 pool (with its port and ICMP identifier ranges).
    pub pool4: Pool4,
    /// Session lifetimes.
    pub timeouts: Timeouts,
    /// MTU of the IPv6 side (the TUN device): an IPv4 packet with DF whose
    /// translation is larger gets Fragmentation Needed back (RFC 7915 §4),
    /// and Packet Too Big / Fragmentation Needed MTUs are capped by it.
    pub ipv6_mtu: u16,
    /// RFC 7915 §4: an IPv4 packet without DF whose translation is larger
    /// than this leaves as IPv6 fragments of at most this size (default
    /// 1280, the IPv6 minimum MTU, safe on any IPv6 path).
    pub lowest_ipv6_mtu: u16,
    /// Source of the ICMPv6 errors the gateway sends, and of translated
    /// ICMPv4 errors whose IPv4 source cannot be written under the prefix
    /// (non-global under the well-known prefix, RFC 6052 §3.1). `None`: the
    /// prefix with the first pool4 address embedded.
    pub icmp_source_v6: Option<Ipv6Addr>,
    /// RFC 6791: IPv4 sources for ICMPv6 errors that come from IPv6 nodes
    /// other than the session's client (routers on the IPv6 side), picked by
    /// a hash of the node's address. Empty: the session's pool4 address.
    pub rfc6791_v4: Vec<Ipv4Addr>,
    /// The gateway's own IPv4 networks: their addresses and directed
    /// broadcasts are never translated to.
    pub local_v4: Vec<Ipv4Net>,
    /// ICMP errors the gateway itself sends per second (Time Exceeded,
    /// Fragmentation Needed, Parameter Problem, Unreachable); 0: none.
    pub icmp_errors_per_second: u32,
    /// Bounds of fragment reassembly (RFC 6146 §3.4).
    pub fragments: ReassemblyLimits,
    /// Which share of the pool4 ports this NAT64 hands out (one of several
    /// packet workers', see [`crate::shard`]).
    pub shard: Shard,
    /// Sessions held at most; a new flow beyond is refused
    /// ([`NatDrop::SessionLimit`]).
    pub max_sessions: usize,
    /// MSS that TCP SYNs crossing the gateway announce at most (both
    /// directions; see `xlat64_packet::tcp_mss`); `None`: left alone.
    pub mss_clamp: Option<u16>,
    /// Which IPv4 packets an existing binding lets in.
    pub filtering: Filtering,
    /// Refuse TCP connections from the IPv4 side altogether (RFC 6146
    /// §3.5.2.2 security policy): their SYNs are dropped, never held.
    pub drop_external_tcp: bool,
    /// Inbound SYNs held at most for a simultaneous open (RFC 6146
    /// §3.5.2.2); a SYN beyond is dropped ([`NatDrop::TcpInboundSyn`]).
    pub max_simultaneous_opens: usize,
    /// Sessions one client (see [`Shard::client_prefix`]) opens at most
    /// (RFC 6888 REQ-5); a new flow beyond is refused
    /// ([`NatDrop::ClientSessionLimit`]). Sessions opened from the IPv4 side
    /// through its bindings count apart, at most half as many.
    pub max_sessions_per_client: usize,
    /// Pool4 ports (bindings) one client holds at most, per protocol
    /// (RFC 6888 REQ-4); a new binding beyond is refused
    /// ([`NatDrop::ClientPortLimit`]).
    pub max_ports_per_client: usize,
    /// New bindings one client may create per second (RFC 6888 REQ-4 c);
    /// beyond, new flows are refused ([`NatDrop::ClientRateLimit`]).
    pub max_new_bindings_per_client: usize,
    /// How long the port of a removed dynamic binding is not handed out
    /// again (RFC 6888 REQ-8: at least 120 s, the default), so that a new
    /// client does not get packets its peers meant for the old one.
    pub port_reuse_delay: Duration,
    /// Static bindings (port forwarding to IPv6 servers). Each lives in the
    /// shard that owns its pool4 port; the others hand the server's packets
    /// to it.
    pub statics: Vec<StaticBinding>,
    /// Queue binding events for [`Nat64::poll_binding_event`] (the binding
    /// log); off: none are kept.
    pub log_bindings: bool,
    /// Port blocks (RFC 7422): each client's bindings take ports from
    /// blocks of this many ports (a power of two, 2 to 32768) that it holds,
    /// one log event per block; 0: ports one by one. The shard then owns
    /// whole blocks ([`Shard::with_port_block`]).
    pub port_block: u16,
    /// IPv4 destinations clients may not reach (RFC 6888 REQ-6): refused
    /// with ICMPv6 Administratively Prohibited.
    pub denied: Vec<DeniedDestination>,
}

/// An IPv4 destination clients may not reach through the NAT: a network,
/// and optionally one TCP and UDP port of it (RFC 6888 REQ-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeniedDestination {
    /// The addresses.
    pub net: Ipv4Net,
    /// Only this destination port (TCP and UDP); `None`: every packet.
    pub port: Option<u16>,
}

impl DeniedDestination {
    /// Whether it covers `flow`, sent to `server`.
    fn covers(&self, flow: &Flow6, server: Ipv4Addr) -> bool {
        self.net.contains(&server)
            && self
                .port
                .is_none_or(|p| flow.proto != L4Proto::Icmp && flow.dst_port == p)
    }
}

/// A binding made by configuration: IPv4 hosts reach `v6` at `v4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticBinding {
    /// TCP, UDP or ICMP (the ports are then echo identifiers).
    pub proto: L4Proto,
    /// The IPv6 server's transport address.
    pub v6: SocketAddrV6,
    /// The pool4 transport address it is published at.
    pub v4: SocketAddrV4,
}

/// Whether `pkt` (parsed as `parsed`) is an ICMPv6 Echo Reply.
fn is_echo_reply_v6(pkt: &[u8], parsed: &Parsed6) -> bool {
    parsed.flow.proto == L4Proto::Icmp
        && parsed.icmp_error.is_none()
        && pkt.get(parsed.l4_offset) == Some(&xlat64_packet::icmp_map::v6::ECHO_REPLY)
}

/// What the session table takes of a configuration.
fn table_policy(config: &Nat64Config) -> TablePolicy {
    TablePolicy {
        filtering: config.filtering,
        drop_external_tcp: config.drop_external_tcp,
        client_prefix: config.shard.client_prefix,
        max_sessions_per_client: clamp_u32(config.max_sessions_per_client),
        max_ports_per_client: clamp_u32(config.max_ports_per_client),
        port_block: config.port_block,
        max_new_bindings_per_second: clamp_u32(config.max_new_bindings_per_client),
        port_reuse_delay: config.port_reuse_delay,
    }
}

/// A limit as the tables count: at most `u32::MAX`.
fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Which IPv4 packets an existing binding lets in (RFC 6146 §3.5.1,
/// RFC 4787 §5). Packets that match no binding never get in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filtering {
    /// From any IPv4 host and port (RFC 4787 REQ-8's recommendation for
    /// transparency: peer-to-peer and STUN-style traversal work).
    #[default]
    EndpointIndependent,
    /// Only from an IPv4 address the client already has a session with.
    AddressDependent,
}

impl Nat64Config {
    /// A configuration with the defaults for everything but the prefix, the
    /// pool and the timeouts.
    pub fn new(prefix: Prefix6052, pool4: Pool4, timeouts: Timeouts) -> Self {
        Nat64Config {
            prefix,
            pool4,
            timeouts,
            ipv6_mtu: 1500,
            lowest_ipv6_mtu: 1280,
            icmp_source_v6: None,
            rfc6791_v4: Vec::new(),
            local_v4: Vec::new(),
            icmp_errors_per_second: 1000,
            fragments: ReassemblyLimits::default(),
            shard: Shard::ONE,
            max_sessions: usize::MAX,
            mss_clamp: None,
            filtering: Filtering::EndpointIndependent,
            drop_external_tcp: false,
            max_simultaneous_opens: 64,
            max_sessions_per_client: usize::MAX,
            max_ports_per_client: usize::MAX,
            max_new_bindings_per_client: usize::MAX,
            port_reuse_delay: Duration::from_secs(120),
            statics: Vec::new(),
            log_bindings: false,
            port_block: 0,
            denied: Vec::new(),
        }
    }
}

/// Why the NAT dropped a packet that parsed fine, or the translator's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatDrop {
    /// The packet itself could not be translated.
    Packet(DropReason),
    /// A fragment could not be reassembled.
    Fragment(FragmentDrop),
    /// IPv6 destination is not under the translation prefix.
    NotInPrefix,
    /// Non-global IPv4 under the well-known prefix (RFC 6052 §3.1).
    NonGlobalUnderWellKnown,
    /// IPv4 destination is not a pool4 address.
    NotInPool4,
    /// IPv4 packet matches no binding/session (RFC 6146 §3.5: unsolicited).
    NoBinding,
    /// A TCP segment other than SYN with no session (RFC 6146 §3.5.2).
    TcpNoSession,
    /// No free port/identifier left in pool4 (ICMPv6 Address Unreachable
    /// back, RFC 6146 §3.5.1.1).
    PoolExhausted,
    /// IPv4 packet for an existing binding from a server address the client
    /// has no session with (address-dependent filtering, RFC 4787 §5).
    Filtered,
    /// IPv4 TCP SYN that no binding lets in and that could not be held for
    /// a simultaneous open: the store of held SYNs is full (RFC 6146
    /// §3.5.2.2).
    TcpInboundSyn,
    /// IPv4 TCP SYN refused by configuration (`drop-externally-initiated-tcp`,
    /// RFC 6146 §3.5.2.2).
    TcpExternallyInitiated,
    /// An ICMPv6 error sent to a pool4 address under the prefix: about a
    /// hairpinned flow (RFC 6146 §3.8 translates the flows themselves, not
    /// errors about them).
    Hairpinning,
    /// IPv6 source inside the translation prefix: spoofed or looped. Such a
    /// packet would make the gateway a reflector (the replies would come
    /// back through it to prefix+V and be translated again, towards V).
    SourceInPrefix,
    /// IPv6 source that is no host of the IPv6 side: IPv4-mapped or
    /// -compatible (::ffff:0:0/96, ::/96) or link-local.
    BadIpv6Source,
    /// IPv4 destination that is no unicast host: 0.0.0.0/8, 127.0.0.0/8,
    /// multicast, 240.0.0.0/4 and the limited broadcast (under any prefix).
    SpecialIpv4Destination,
    /// IPv4 destination that is the gateway itself: an address or directed
    /// broadcast of one of its own IPv4 networks.
    GatewayIpv4Destination,
    /// An ICMP error whose quoted packet belongs to no session (RFC 6146
    /// §3.5: it cannot be translated, and must not open one).
    IcmpErrorNoSession,
    /// A new flow while the table holds its maximum of sessions (ICMPv6
    /// Address Unreachable back for an IPv6 one, as when the pool runs out,
    /// RFC 6146 §3.5.1); existing sessions are unaffected.
    SessionLimit,
    /// A new flow of a client that holds its maximum of sessions (RFC 6888
    /// REQ-5; ICMPv6 Address Unreachable back, as [`NatDrop::SessionLimit`]).
    ClientSessionLimit,
    /// A new binding of a client that holds its maximum of pool4 ports for
    /// the protocol (RFC 6888 REQ-4; ICMPv6 Address Unreachable back).
    ClientPortLimit,
    /// An ICMPv6 Echo Reply with no session: a reply answers an IPv4 host's
    /// request that came in through a binding (RFC 6146 §3.5.3), and never
    /// opens state of its own.
    EchoReplyNoSession,
    /// A new binding of a client outside the range of deterministic port
    /// blocks (RFC 7422 §2): only the configured clients hold ports.
    OutsideDeterministicRange,
    /// A packet to a destination the configuration denies (RFC 6888
    /// REQ-6; ICMPv6 Administratively Prohibited back).
    DestinationDenied,
    /// A new binding of a client that created its maximum of bindings in
    /// the last second (RFC 6888 REQ-4 c; ICMPv6 Address Unreachable back).
    ClientRateLimit,
}

impl NatDrop {
    /// The NAT-specific reasons (the packet ones are `DropReason::ALL`, the
    /// fragment ones `FragmentDrop::ALL`).
    pub const NAT_ONLY: [NatDrop; 22] = [
        NatDrop::NotInPrefix,
        NatDrop::NonGlobalUnderWellKnown,
        NatDrop::NotInPool4,
        NatDrop::NoBinding,
        NatDrop::TcpNoSession,
        NatDrop::PoolExhausted,
        NatDrop::Filtered,
        NatDrop::TcpInboundSyn,
        NatDrop::TcpExternallyInitiated,
        NatDrop::Hairpinning,
        NatDrop::SourceInPrefix,
        NatDrop::BadIpv6Source,
        NatDrop::SpecialIpv4Destination,
        NatDrop::GatewayIpv4Destination,
        NatDrop::IcmpErrorNoSession,
        NatDrop::SessionLimit,
        NatDrop::ClientSessionLimit,
        NatDrop::ClientPortLimit,
        NatDrop::EchoReplyNoSession,
        NatDrop::OutsideDeterministicRange,
        NatDrop::DestinationDenied,
        NatDrop::ClientRateLimit,
    ];

    /// Counter name for `xlat64 stats`.
    pub const fn counter_name(self) -> &'static str {
        match self {
            NatDrop::Packet(r) => r.counter_name(),
            NatDrop::Fragment(r) => r.counter_name(),
            NatDrop::NotInPrefix => "drop_not_in_prefix",
            NatDrop::NonGlobalUnderWellKnown => "drop_non_global_under_well_known_prefix",
            NatDrop::NotInPool4 => "drop_not_in_pool4",
            NatDrop::NoBinding => "drop_no_binding",
            NatDrop::TcpNoSession => "drop_tcp_no_session",
            NatDrop::PoolExhausted => "drop_pool4_exhausted",
            NatDrop::Filtered => "drop_filtered",
            NatDrop::TcpInboundSyn => "drop_tcp_inbound_syn",
            NatDrop::TcpExternallyInitiated => "drop_tcp_externally_initiated",
            NatDrop::Hairpinning => "drop_icmp_error_hairpinned",
            NatDrop::SourceInPrefix => "drop_source_in_prefix",
            NatDrop::BadIpv6Source => "drop_bad_ipv6_source",
            NatDrop::SpecialIpv4Destination => "drop_special_ipv4_destination",
            NatDrop::GatewayIpv4Destination => "drop_gateway_ipv4_destination",
            NatDrop::IcmpErrorNoSession => "drop_icmp_error_no_session",
            NatDrop::SessionLimit => "drop_session_limit",
            NatDrop::ClientSessionLimit => "drop_client_session_limit",
            NatDrop::ClientPortLimit => "drop_client_port_limit",
            NatDrop::EchoReplyNoSession => "drop_echo_reply_no_session",
            NatDrop::OutsideDeterministicRange => "drop_outside_deterministic_range",
            NatDrop::DestinationDenied => "drop_destination_denied",
            NatDrop::ClientRateLimit => "drop_client_rate_limit",
        }
    }
}

impl From<DropReason> for NatDrop {
    fn from(r: DropReason) -> Self {
        NatDrop::Packet(r)
    }
}

/// What to do with a packet handed to [`Nat64`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Send `out[..len]`: the translated packet (an IPv4 packet after
    /// `handle_v6`, IPv6 after `handle_v4`), or a train of IPv6 fragments
    /// back to back (`xlat64_packet::fragment::packets` walks them).
    Forward(usize),
    /// A fragment was stored for reassembly: nothing to send yet.
    Held,
    /// An IPv4 TCP SYN held for a simultaneous open (RFC 6146 §3.5.2.2):
    /// nothing to send; [`Nat64::poll_transmit`] may send an ICMP error
    /// for it later.
    SynHeld,
    /// Drop, and count the reason.
    Drop(NatDrop),
    /// Drop and count the reason, and send the ICMP error in `out[..len]`
    /// back towards the packet's sender.
    Reject(NatDrop, usize),
    /// `out[..len]` holds a packet of another shard's: a datagram
    /// reassembled from IPv4 fragments whose pool4 port is another shard's,
    /// or an ICMPv6 error (behind extension headers, which the steering
    /// program does not walk) about another shard's client. Hand it to shard
    /// `owner`, whose `handle_v4`/`handle_v6` translates it (see
    /// [`crate::shard`]).
    Elsewhere {
        /// The shard that owns the datagram.
        owner: u16,
        /// Its length in `out`.
        len: usize,
    },
    /// `out[..len]` holds the IPv4 packet unchanged: an ICMP message to a
    /// pool4 address the gateway host holds itself (its uplink address,
    /// shared by port range) that no binding or session claims (a ping to
    /// the host, an error about one of the host's own connections). Give it
    /// back to the host's stack (write it into the TUN device, whence the
    /// kernel delivers it locally).
    ToHost(usize),
}

/// What [`Nat64::translate_in_place`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum InPlace {
    /// The translated packet is `buf[start..start + len]`.
    Translated {
        /// Where it starts now.
        start: usize,
        /// Its length.
        len: usize,
    },
    /// Not a packet for the in-place path; nothing was changed.
    Fallback,
}

/// Counters the NAT keeps besides the per-packet verdicts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatCounters {
    /// ICMP errors the gateway sent itself (in [`Verdict::Reject`]).
    pub icmp_errors_sent: u64,
    /// ICMP errors not sent because of the rate limit.
    pub icmp_errors_rate_limited: u64,
    /// Datagrams reassembled from fragments.
    pub fragments_reassembled: u64,
    /// Incomplete datagrams dropped at their reassembly timeout.
    pub fragment_timeouts: u64,
    /// Translated IPv4 packets sent as several IPv6 fragments (RFC 7915 §4).
    pub packets_fragmented: u64,
    /// TCP SYNs whose MSS option was lowered to the clamp.
    pub tcp_mss_clamped: u64,
    /// Packets translated in place (no copy), superpackets counted once.
    pub translated_in_place: u64,
    /// IPv4 TCP SYNs held for a simultaneous open (RFC 6146 §3.5.2.2).
    pub tcp_syns_held: u64,
    /// Held SYNs whose connection the client opened meanwhile
    /// (simultaneous opens).
    pub tcp_simultaneous_opens: u64,
    /// Held SYNs answered with ICMP Port Unreachable after 6 s.
    pub tcp_syns_unanswered: u64,
    /// Packets from one client to another through pool4 (RFC 6146 §3.8).
    pub hairpinned: u64,
    /// Binding events not queued for the log: more than the queue holds
    /// between two drains.
    pub binding_log_dropped: u64,
    /// ICMP messages to a pool4 address the host holds that belong to the
    /// host, not to the NAT, given back ([`Verdict::ToHost`]).
    pub icmp_to_host: u64,
    /// TCP probes sent to clients of established sessions whose lifetime
    /// ran out (RFC 6146 §3.5.2.2).
    pub tcp_probes_sent: u64,
}

impl NatCounters {
    /// Every counter with its `stats` name.
    pub fn named(&self) -> [(&'static str, u64); 14] {
        [
            ("icmp_errors_sent", self.icmp_errors_sent),
            ("icmp_errors_rate_limited", self.icmp_errors_rate_limited),
            ("fragments_reassembled", self.fragments_reassembled),
            ("fragment_timeouts", self.fragment_timeouts),
            ("packets_fragmented", self.packets_fragmented),
            ("tcp_mss_clamped", self.tcp_mss_clamped),
            ("translated_in_place", self.translated_in_place),
            ("tcp_syns_held", self.tcp_syns_held),
            ("tcp_simultaneous_opens", self.tcp_simultaneous_opens),
            ("tcp_syns_unanswered", self.tcp_syns_unanswered),
            ("hairpinned", self.hairpinned),
            ("binding_log_dropped", self.binding_log_dropped),
            ("icmp_to_host", self.icmp_to_host),
            ("tcp_probes_sent", self.tcp_probes_sent),
        ]
    }

    /// Adds `other` to these counters (summing the workers').
    pub fn add(&mut self, other: &NatCounters) {
        let NatCounters {
            icmp_errors_sent,
            icmp_errors_rate_limited,
            fragments_reassembled,
            fragment_timeouts,
            packets_fragmented,
            tcp_mss_clamped,
            translated_in_place,
            tcp_syns_held,
            tcp_simultaneous_opens,
            tcp_syns_unanswered,
            hairpinned,
            binding_log_dropped,
            icmp_to_host,
            tcp_probes_sent,
        } = other;
        self.icmp_errors_sent += icmp_errors_sent;
        self.icmp_errors_rate_limited += icmp_errors_rate_limited;
        self.fragments_reassembled += fragments_reassembled;
        self.fragment_timeouts += fragment_timeouts;
        self.packets_fragmented += packets_fragmented;
        self.tcp_mss_clamped += tcp_mss_clamped;
        self.translated_in_place += translated_in_place;
        self.tcp_syns_held += tcp_syns_held;
        self.tcp_simultaneous_opens += tcp_simultaneous_opens;
        self.tcp_syns_unanswered += tcp_syns_unanswered;
        self.hairpinned += hairpinned;
        self.binding_log_dropped += binding_log_dropped;
        self.icmp_to_host += icmp_to_host;
        self.tcp_probes_sent += tcp_probes_sent;
    }
}

/// Stateful NAT64 core.
///
/// Mapping is endpoint-independent (RFC 6146 §3.5.1.1); filtering is
/// endpoint-independent or address-dependent ([`Filtering`]); TCP follows
/// the RFC 6146 §3.5.2.2 state machine with simultaneous open; clients
/// reach each other through pool4 (hairpinning, §3.8).
#[derive(Debug)]
pub struct Nat64 {
    /// Kept apart from the rest so that a reassembled packet (borrowed from
    /// it) can be translated by the rest.
    reassembler: Reassembler,
    core: Core,
}

#[derive(Debug)]
struct Core {
    config: Nat64Config,
    table: SessionTable,
    /// The shard of each static binding, by IPv6 side: its server's
    /// packets go there (empty without static bindings: no lookup).
    static_owners: std::collections::HashMap<(L4Proto, SocketAddrV6), u16, FixedState>,
    syns: SynStore,
    /// Where a hairpinned packet's IPv4 form waits to be translated back
    /// (allocated at the first hairpinned packet, at the largest datagram).
    hairpin: Box<[u8]>,
    ipv4_ids: Ipv4Ids,
    rate: IcmpRateLimit,
    hasher: FixedState,
    counters: NatCounters,
}

impl Nat64 {
    /// A NAT64 with empty tables and a fresh random secret for port
    /// allocation, IPv4 identifications and fragment keys (drawn once, from
    /// the OS, through std's `RandomState`).
    pub fn new(config: Nat64Config) -> Self {
        Self::with_seed(config, RandomState::new().hash_one(0x6146u32))
    }

    /// A NAT64 whose port allocation and IPv4 identifications follow from
    /// `seed` (deterministic, for tests and reproducible runs).
    pub fn with_seed(mut config: Nat64Config, seed: u64) -> Self {
        let blocks = config.port_block.is_power_of_two() && config.port_block >= 2;
        if blocks {
            config.shard = config.shard.with_port_block(config.port_block);
        } else {
            config.port_block = 0;
            config.shard.deterministic = None;
        }
        let mut table = SessionTable::new(
            config.pool4.clone(),
            config.timeouts,
            seed,
            config.shard,
            config.max_sessions,
            table_policy(&config),
        );
        table.events = BindingEvents::new(config.log_bindings);
        let shard = config.shard;
        let mut static_owners =
            std::collections::HashMap::with_hasher(FixedState::with_seed(seed.rotate_left(7)));
        for s in &config.statics {
            let owner = owner_of_port(s.v4.port(), shard.count, shard.port_shift);
            // Duplicates and addresses outside the pool are the
            // configuration check's to refuse; one that slips through is
            // not installed.
            if owner == shard.index && !table.add_static(s.proto, s.v6, s.v4) {
                continue;
            }
            static_owners.insert((s.proto, s.v6), owner);
        }
        Nat64 {
            reassembler: Reassembler::new(config.fragments, seed.rotate_left(17)),
            core: Core {
                table,
                static_owners,
                syns: SynStore::new(config.max_simultaneous_opens),
                hairpin: Box::default(),
                ipv4_ids: Ipv4Ids::new(seed),
                rate: IcmpRateLimit::new(config.icmp_errors_per_second),
                hasher: FixedState::with_seed(seed.rotate_left(41)),
                counters: NatCounters::default(),
                config,
            },
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Nat64Config {
        &self.core.config
    }

    /// The largest output `handle_v6`/`handle_v4` may write for `pkt`: a
    /// buffer this long never yields `OutputTooSmall`. Tight for whole
    /// packets, so that the daemon's buffers barely grow per packet; a
    /// fragment may complete a datagram of up to 64 KiB.
    pub fn output_bound(&self, pkt: &[u8]) -> usize {
        let len = pkt.len();
        match pkt.first().map(|b| b >> 4) {
            Some(4) if is_fragment_v4(pkt) => self.max_output_len(),
            Some(4) => {
                let dont_fragment = pkt.get(6).is_some_and(|f| f & 0x40 != 0);
                if !dont_fragment {
                    // May leave as IPv6 fragments (RFC 7915 §4).
                    self.bound_for(len)
                } else if pkt.get(9) == Some(&1) {
                    // A translated ICMP error: two headers 20 bytes longer,
                    // a Fragment header for a quoted fragment, and the RFC
                    // 4884 padding of the quote to 8 bytes.
                    len + 64
                } else {
                    // Translated (+20), or answered with Fragmentation
                    // Needed (+28).
                    len + 28
                }
            }
            // TCP, UDP or ICMPv6 right after the fixed header: never a
            // fragment; the output is smaller, or an ICMPv6 error quoting it.
            Some(6) if pkt.get(6).is_some_and(|nh| matches!(nh, 6 | 17 | 58)) => len + 48,
            // Anything else may be (or lead to) a Fragment header.
            Some(6) => self.max_output_len(),
            _ => len + 48,
        }
    }

    /// The largest output `handle_v6`/`handle_v4` may write for any packet.
    pub fn max_output_len(&self) -> usize {
        self.bound_for(MAX_DATAGRAM)
    }

    /// For an IPv4 packet of `largest_in` bytes without DF (or a datagram
    /// reassembled to that size), translated and cut into IPv6 fragments.
    fn bound_for(&self, largest_in: usize) -> usize {
        let mtu = usize::from(self.core.fragment_mtu());
        // Translation grows a packet by 20 bytes, fragmentation by 48 per
        // fragment; an ICMP error by up to two headers and the RFC 4884
        // padding of the quote to 128 bytes.
        fragmented_len(largest_in + 20, mtu).max(largest_in + 160)
    }

    /// An IPv6 packet from a client (RFC 6146 §3.5, IPv6 -> IPv4): finds or
    /// creates the binding and session, writes the IPv4 packet into `out`.
    /// Fragments are reassembled first (RFC 6146 §3.4).
    pub fn handle_v6(&mut self, now: Instant, pkt: &[u8], out: &mut [u8]) -> Verdict {
        match parse_v6(pkt) {
            Err(DropReason::Fragment) => {
                // Fragments take reassembly memory: only those that could
                // become a translatable datagram get any (RFC 6146 §3.4).
                if let Err(reason) = self.core.fragment_admissible_v6(pkt) {
                    return Verdict::Drop(reason);
                }
                let total = pkt
                    .get(4..6)
                    .map_or(0, |l| 40 + usize::from(u16::from_be_bytes([l[0], l[1]])));
                let frag = match ipv6_ext::walk(pkt, total, true).map(|c| c.fragment) {
                    Ok(Some(f)) => f,
                    _ => return Verdict::Drop(DropReason::Fragment.into()),
                };
                match self
                    .reassembler
                    .add_v6(now, pkt, frag.header_at, frag.next_header_at)
                {
                    Err(e) => Verdict::Drop(NatDrop::Fragment(e)),
                    Ok(None) => Verdict::Held,
                    Ok(Some(whole)) => {
                        self.core.counters.fragments_reassembled += 1;
                        match parse_v6(whole) {
                            Ok(mut parsed) => {
                                parsed.fragment_id = Some(frag.id);
                                self.core.outbound(now, whole, parsed, out)
                            }
                            Err(reason) => self.core.reject_v6(now, whole, reason.into(), out),
                        }
                    }
                }
            }
            Ok(parsed) => self.core.outbound(now, pkt, parsed, out),
            Err(reason) => self.core.reject_v6(now, pkt, reason.into(), out),
        }
    }

    /// An IPv4 packet from the IPv4 side (RFC 6146 §3.5, IPv4 -> IPv6): only
    /// packets matching a session are let in; writes the IPv6 packet (or its
    /// fragments) into `out`. Fragments are reassembled first.
    ///
    /// UDP and ICMP packets from a server address the client already has a
    /// session with open a new session (address-dependent filtering); TCP
    /// only passes through an existing session.
    pub fn handle_v4(&mut self, now: Instant, pkt: &[u8], out: &mut [u8]) -> Verdict {
        match parse_v4(pkt) {
            Err(DropReason::Fragment) if !self.core.fragment_admissible_v4(pkt) => {
                Verdict::Drop(NatDrop::NotInPool4)
            }
            Err(DropReason::Fragment) => match self.reassembler.add_v4(now, pkt) {
                Err(e) => Verdict::Drop(NatDrop::Fragment(e)),
                Ok(None) => Verdict::Held,
                Ok(Some(whole)) => {
                    self.core.counters.fragments_reassembled += 1;
                    let shard = self.core.config.shard;
                    match owner_of_v4(whole, shard.count, shard.port_shift) {
                        Some(owner) if owner != shard.index => {
                            return match out.get_mut(..whole.len()) {
                                Some(o) => {
                                    o.copy_from_slice(whole);
                                    Verdict::Elsewhere {
                                        owner,
                                        len: whole.len(),
                                    }
                                }
                                None => Verdict::Drop(DropReason::OutputTooSmall.into()),
                            };
                        }
                        _ => {}
                    }
                    match parse_v4(whole) {
                        Ok(parsed) => self.core.inbound(now, whole, parsed, out),
                        Err(reason) => self.core.reject_v4(now, whole, reason.into(), out),
                    }
                }
            },
            Ok(parsed) => match self.core.inbound(now, pkt, parsed, out) {
                Verdict::Drop(reason) => self.core.host_or_drop(pkt, reason, out),
                verdict => verdict,
            },
            Err(reason) => self.core.reject_v4(now, pkt, reason.into(), out),
        }
    }

    /// Translates the packet at `buf[start..start + len]` where it lies,
    /// when it is an ordinary one: TCP, UDP or ICMP echo, not a fragment,
    /// not an ICMP error, matching or opening a session, and (IPv4 -> IPv6)
    /// fitting the IPv6 side without fragmentation. The IPv4 -> IPv6 case
    /// needs 20 bytes of room before `start`. `gso_size`: the packet is a
    /// superpacket to be cut into segments of that much transport payload,
    /// which are what must fit. Anything else is [`InPlace::Fallback`], with
    /// nothing changed: `handle_v6`/`handle_v4` then give its verdict.
    pub fn translate_in_place(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        start: usize,
        len: usize,
        gso_size: Option<u16>,
    ) -> InPlace {
        let Some(pkt) = start.checked_add(len).and_then(|end| buf.get(start..end)) else {
            return InPlace::Fallback;
        };
        let core = &mut self.core;
        let done = match pkt.first().map(|b| b >> 4) {
            Some(6) => core.outbound_in_place(now, buf, start, len),
            Some(4) => core.inbound_in_place(now, buf, start, len, gso_size),
            _ => None,
        };
        match done {
            Some((start, len)) => {
                core.counters.translated_in_place += 1;
                InPlace::Translated { start, len }
            }
            None => InPlace::Fallback,
        }
    }

    /// Applies what `new` changes that may change while running (a reload):
    /// timeouts (sessions whose lifetime is now shorter are rescheduled),
    /// per-client limits, the session limit, filtering, the refusal of
    /// external TCP, denied destinations, the ICMP error rate, the MSS
    /// clamp, the lowest IPv6 MTU, RFC 6791 sources, the port reuse delay,
    /// the held-SYN bound, and pool4 as [`Pool4::updated`] changes it
    /// (addresses added, others draining). The rest (prefix, static
    /// bindings, port blocks, the shard, fragments) stays as it was: the
    /// caller refuses changes to them.
    pub fn reconfigure(&mut self, new: &Nat64Config) {
        let core = &mut self.core;
        let c = &mut core.config;
        c.timeouts = new.timeouts;
        c.filtering = new.filtering;
        c.drop_external_tcp = new.drop_external_tcp;
        c.max_sessions = new.max_sessions;
        c.max_sessions_per_client = new.max_sessions_per_client;
        c.max_ports_per_client = new.max_ports_per_client;
        c.max_new_bindings_per_client = new.max_new_bindings_per_client;
        c.port_reuse_delay = new.port_reuse_delay;
        c.max_simultaneous_opens = new.max_simultaneous_opens;
        c.denied = new.denied.clone();
        c.mss_clamp = new.mss_clamp;
        c.lowest_ipv6_mtu = new.lowest_ipv6_mtu;
        c.rfc6791_v4 = new.rfc6791_v4.clone();
        if c.icmp_errors_per_second != new.icmp_errors_per_second {
            c.icmp_errors_per_second = new.icmp_errors_per_second;
            core.rate = IcmpRateLimit::new(new.icmp_errors_per_second);
        }
        if c.pool4 != new.pool4 {
            // Only as `Pool4::updated` changes a pool: addresses keep
            // their index, some drain, more may follow.
            c.pool4 = new.pool4.clone();
            core.table.set_pool4(new.pool4.clone());
        }
        core.syns.set_capacity(c.max_simultaneous_opens);
        core.table
            .reconfigure(table_policy(c), c.timeouts, c.max_sessions);
    }

    /// The earliest time a session, an incomplete datagram or a held SYN
    /// may expire, if any. It may be earlier than any real expiry (a
    /// refreshed session is re-checked then), never later.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.core.table.poll_timeout(),
            self.reassembler.poll_timeout(),
            self.core.syns.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next binding event (creation or removal of a dynamic binding)
    /// for the binding log, when [`Nat64Config::log_bindings`] is on. Call
    /// until `None` after each batch of packets and each
    /// [`Self::handle_timeout`]: a bounded number are queued between.
    pub fn poll_binding_event(&mut self) -> Option<BindingEvent> {
        self.core.table.events.pop()
    }

    /// A packet the NAT64 sends by itself at `now`, written into `out`:
    /// ICMP Port Unreachable for an inbound SYN held 6 s without the
    /// client opening its side (RFC 6146 §3.5.2.2), an IPv4 packet towards
    /// the SYN's sender. Call until `None` after [`Self::handle_timeout`]:
    /// the held SYNs that are due stay due until then.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let core = &mut self.core;
        if let Some(probe) = core.table.pop_probe() {
            let from = SocketAddrV6::new(
                core.config.prefix.embed(*probe.server.ip()),
                probe.server.port(),
                0,
                0,
            );
            if let Some(n) = tcp_probe::build(from, probe.client, out) {
                core.counters.tcp_probes_sent += 1;
                return Some(n);
            }
        }
        let mut quote: Quote = [0; QUOTE];
        loop {
            let len = core.syns.expired(now, &mut quote)?;
            core.counters.tcp_syns_unanswered += 1;
            let unreachable = IcmpError {
                icmp_type: icmp4::DEST_UNREACHABLE,
                code: icmp4::code::PORT_UNREACHABLE,
                param: 0,
            };
            if let Some(n) = core.icmp_error_v4(now, &quote[..len], unreachable, out) {
                core.counters.icmp_errors_sent += 1;
                return Some(n);
            }
        }
    }

    /// Removes sessions (and bindings left without sessions) and incomplete
    /// datagrams that expired by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.table.handle_timeout(now);
        self.core.counters.fragment_timeouts += self.reassembler.handle_timeout(now);
    }

    /// Appends the sessions at positions `start..start + limit` of the
    /// table to `out`, unsorted: a page of a listing, in time proportional
    /// to `limit` (see `SessionTable::sessions_page` for what paging
    /// through a changing table shows).
    pub fn sessions_page(&self, start: usize, limit: usize, out: &mut Vec<SessionEntry>) {
        let prefix = self.core.config.prefix;
        self.core
            .table
            .sessions_page(start, limit, |v4| prefix.embed(v4), out);
    }

    /// Appends the BIB entries at positions `start..start + limit` to `out`.
    pub fn bib_page(&self, start: usize, limit: usize, out: &mut Vec<BibEntry>) {
        self.core.table.bib_page(start, limit, out);
    }

    /// Snapshot of the whole session table, sorted by protocol, client and
    /// server (for tests and small tables; the daemon lists by pages).
    pub fn sessions(&self) -> Vec<SessionEntry> {
        let mut all = Vec::with_capacity(self.session_count());
        self.sessions_page(0, usize::MAX, &mut all);
        all.sort_unstable_by_key(|e| (e.proto, e.v6_client, e.v4_server));
        all
    }

    /// Snapshot of the whole BIB, sorted by protocol and client.
    pub fn bib(&self) -> Vec<BibEntry> {
        let mut all = Vec::with_capacity(self.bib_count());
        self.bib_page(0, usize::MAX, &mut all);
        all.sort_unstable_by_key(|e| (e.proto, e.v6_client));
        all
    }

    /// Number of sessions (without building a snapshot).
    pub fn session_count(&self) -> usize {
        self.core.table.session_count()
    }

    /// Number of BIB entries (without building a snapshot).
    pub fn bib_count(&self) -> usize {
        self.core.table.bib_count()
    }

    /// Appends, for each pool4 address with bindings, its dynamic bindings
    /// by protocol (TCP, UDP, ICMP): how full the pool is.
    pub fn pool4_use(&self, out: &mut Vec<(Ipv4Addr, [u32; 3])>) {
        self.core.table.pool4_use(out);
    }

    /// Port blocks clients hold (RFC 7422; 0 without `port_block`).
    pub fn port_block_count(&self) -> usize {
        self.core.table.port_block_count()
    }

    /// Sessions created since start.
    pub fn sessions_created(&self) -> u64 {
        self.core.table.sessions_created()
    }

    /// Sessions removed by expiry since start.
    pub fn sessions_expired(&self) -> u64 {
        self.core.table.sessions_expired()
    }

    /// Sessions of `proto` created and expired since start.
    pub fn sessions_of(&self, proto: L4Proto) -> (u64, u64) {
        self.core.table.sessions_of(proto)
    }

    /// ICMP error, fragmentation and reassembly counters.
    pub fn counters(&self) -> NatCounters {
        NatCounters {
            binding_log_dropped: self.core.table.events.dropped(),
            ..self.core.counters
        }
    }

    /// Datagrams being reassembled and the bytes they hold (gauges).
    pub fn fragments_in_progress(&self) -> (usize, usize) {
        (
            self.reassembler.in_progress(),
            self.reassembler.bytes_held(),
        )
    }
}

/// The source address of an IPv6 packet (checked at least 40 bytes long by
/// the caller; unspecified otherwise).
fn ipv6_source(pkt: &[u8]) -> Ipv6Addr {
    let mut src = [0u8; 16];
    if let Some(s) = pkt.get(8..24) {
        src.copy_from_slice(s);
    }
    Ipv6Addr::from(src)
}

/// IPv6 sources that are no host of the IPv6 side.
fn bad_ipv6_source(a: &Ipv6Addr) -> bool {
    let s = a.segments();
    let v4_mapped = s[..5] == [0; 5] && s[5] == 0xffff;
    let v4_compatible = s[..6] == [0; 6];
    v4_mapped || v4_compatible || a.is_unicast_link_local()
}

impl Core {
    /// The MTU IPv6 fragments are cut to.
    fn fragment_mtu(&self) -> u16 {
        self.config.lowest_ipv6_mtu.min(self.config.ipv6_mtu)
    }

    /// Source of the ICMPv6 errors the gateway sends.
    fn icmp_source_v6(&self) -> Ipv6Addr {
        self.config.icmp_source_v6.unwrap_or_else(|| {
            let first = self
                .config
                .pool4
                .addrs()
                .first()
                .copied()
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            self.config.prefix.embed(first)
        })
    }

    /// Whether the gateway may send one more ICMP error now; counts the refusal.
    fn error_allowed(&mut self, now: Instant) -> bool {
        let allowed = self.rate.allow(now);
        if !allowed {
            self.counters.icmp_errors_rate_limited += 1;
        }
        allowed
    }

    /// The verdict for an ICMP error built (or not) into the output.
    fn rejected(&mut self, reason: NatDrop, built: Result<usize, DropReason>) -> Verdict {
        match built {
            Ok(len) => {
                self.counters.icmp_errors_sent += 1;
                Verdict::Reject(reason, len)
            }
            Err(_) => Verdict::Drop(reason),
        }
    }

    /// Drops an IPv6 packet for `reason`, with the ICMPv6 error RFC 7915 §5.1
    /// and RFC 6146 §3.5 name for it, if any and if the rate limit allows.
    fn reject_v6(&mut self, now: Instant, pkt: &[u8], reason: NatDrop, out: &mut [u8]) -> Verdict {
        let error = match reason {
            NatDrop::Packet(DropReason::HopLimitExceeded) => TIME_EXCEEDED_V6,
            NatDrop::Packet(DropReason::RoutingHeader) => IcmpError {
                icmp_type: icmp6::PARAMETER_PROBLEM,
                code: icmp6::code::ERRONEOUS_FIELD,
                param: segments_left_pointer(pkt).unwrap_or(0),
            },
            // A protocol stateful NAT64 cannot carry (RFC 6146 §1.1: TCP,
            // UDP and ICMP only), named in the fixed header: the client
            // learns at once, as from a host without that protocol (RFC
            // 4443 §3.4, code 1 pointing at the Next Header field).
            NatDrop::Packet(DropReason::UnknownProtocol) => IcmpError {
                icmp_type: icmp6::PARAMETER_PROBLEM,
                code: icmp6::code::UNRECOGNIZED_NEXT_HEADER,
                param: 6,
            },
            // RFC 6146 §3.5.1.1: Address Unreachable when no port is left,
            // or no session can be created (§3.5.1).
            NatDrop::PoolExhausted
            | NatDrop::SessionLimit
            | NatDrop::ClientSessionLimit
            | NatDrop::ClientPortLimit
            | NatDrop::ClientRateLimit
            | NatDrop::OutsideDeterministicRange => IcmpError {
                icmp_type: icmp6::DEST_UNREACHABLE,
                code: icmp6::code::ADDRESS_UNREACHABLE,
                param: 0,
            },
            NatDrop::DestinationDenied => IcmpError {
                icmp_type: icmp6::DEST_UNREACHABLE,
                code: icmp6::code::ADMIN_PROHIBITED,
                param: 0,
            },
            _ => return Verdict::Drop(reason),
        };
        let Some(hdr) = pkt.first_chunk::<40>() else {
            return Verdict::Drop(reason);
        };
        let unknown_after_extension_headers = reason
            == NatDrop::Packet(DropReason::UnknownProtocol)
            && matches!(hdr[6], 0 | 43 | 44 | 60);
        if unknown_after_extension_headers {
            return Verdict::Drop(reason);
        }
        let dst = ipv6_source(pkt);
        // Never answer a source that is never translated: the answer would
        // go to a spoofed or looped address.
        if let Err(never) = self.check_ipv6_source(&dst) {
            return Verdict::Drop(never);
        }
        if !may_answer_v6(pkt) || !self.error_allowed(now) {
            return Verdict::Drop(reason);
        }
        let built = icmpv6_error(out, &self.icmp_source_v6(), &dst, error, pkt);
        self.rejected(reason, built)
    }

    /// Drops an IPv4 packet for `reason`, with the ICMPv4 error RFC 7915 §4
    /// names for it, if any and if the rate limit allows. The error comes
    /// from the pool4 address the packet was sent to.
    fn reject_v4(&mut self, now: Instant, pkt: &[u8], reason: NatDrop, out: &mut [u8]) -> Verdict {
        self.reject_v4_with(now, pkt, reason, None, out)
    }

    fn reject_v4_with(
        &mut self,
        now: Instant,
        pkt: &[u8],
        reason: NatDrop,
        mtu: Option<u16>,
        out: &mut [u8],
    ) -> Verdict {
        let error = match (reason, mtu) {
            (NatDrop::Packet(DropReason::TooBigForIpv6), Some(mtu)) => IcmpError {
                icmp_type: icmp4::DEST_UNREACHABLE,
                code: icmp4::code::FRAGMENTATION_NEEDED,
                param: u32::from(mtu),
            },
            (NatDrop::Packet(DropReason::HopLimitExceeded), _) => TIME_EXCEEDED_V4,
            (NatDrop::Packet(DropReason::SourceRoute), _) => IcmpError {
                icmp_type: icmp4::DEST_UNREACHABLE,
                code: icmp4::code::SOURCE_ROUTE_FAILED,
                param: 0,
            },
            _ => return Verdict::Drop(reason),
        };
        match self.icmp_error_v4(now, pkt, error, out) {
            Some(len) => self.rejected(reason, Ok(len)),
            None => Verdict::Drop(reason),
        }
    }

    /// Writes into `out` the ICMPv4 `error` about `pkt` back to its sender:
    /// only for what was sent to the pool, to a sender that is one host
    /// (never a reflector), for a packet one may answer, within the rate
    /// limit. The caller counts it as sent.
    fn icmp_error_v4(
        &mut self,
        now: Instant,
        pkt: &[u8],
        error: IcmpError,
        out: &mut [u8],
    ) -> Option<usize> {
        let hdr = pkt.first_chunk::<20>()?;
        let sender = Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]);
        let local = Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]);
        let sender_is_broadcast = self
            .config
            .local_v4
            .iter()
            .any(|net| net.prefix_len() < 31 && sender == net.broadcast());
        if !self.config.pool4.contains(local)
            || never_a_host(sender)
            || sender_is_broadcast
            || !may_answer_v4(pkt)
            || !self.error_allowed(now)
        {
            return None;
        }
        let id = self.ipv4_ids.next(local, sender, 1);
        icmpv4_error(out, local, sender, id, error, pkt).ok()
    }

    /// Sources never translated, nor answered: inside the prefix (spoofed or
    /// looped), IPv4-mapped or -compatible, link-local.
    fn check_ipv6_source(&self, src: &Ipv6Addr) -> Result<(), NatDrop> {
        if self.config.prefix.contains(src) {
            return Err(NatDrop::SourceInPrefix);
        }
        if bad_ipv6_source(src) {
            return Err(NatDrop::BadIpv6Source);
        }
        Ok(())
    }

    /// Whether an IPv6 fragment may take reassembly memory: from a possible
    /// client, to an address under the prefix.
    fn fragment_admissible_v6(&self, pkt: &[u8]) -> Result<(), NatDrop> {
        self.check_ipv6_source(&ipv6_source(pkt))?;
        let mut dst = [0u8; 16];
        if let Some(d) = pkt.get(24..40) {
            dst.copy_from_slice(d);
        }
        if !self.config.prefix.contains(&Ipv6Addr::from(dst)) {
            return Err(NatDrop::NotInPrefix);
        }
        Ok(())
    }

    /// Whether an IPv4 fragment may take reassembly memory: sent to a pool4
    /// address, from a possible host (the parser checked the header).
    fn fragment_admissible_v4(&self, pkt: &[u8]) -> bool {
        let Some(hdr) = pkt.first_chunk::<20>() else {
            return false;
        };
        let src = Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]);
        let dst = Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]);
        self.config.pool4.contains(dst) && !never_a_host(src)
    }

    /// Whether the configuration denies `flow` to `server` (RFC 6888 REQ-6).
    fn denied(&self, flow: &Flow6, server: Ipv4Addr) -> bool {
        self.config.denied.iter().any(|d| d.covers(flow, server))
    }

    /// The IPv4 server of an outbound packet, after every address check.
    fn outbound_server(&self, pkt: &[u8], flow: &Flow6) -> Result<Ipv4Addr, NatDrop> {
        let src = ipv6_source(pkt);
        let prefix = self.config.prefix;
        self.check_ipv6_source(&src)?;
        // For an ICMP error the flow's source is the quoted destination.
        if flow.src != src && prefix.contains(&flow.src) {
            return Err(NatDrop::SourceInPrefix);
        }
        let server = prefix.extract(&flow.dst).ok_or(NatDrop::NotInPrefix)?;
        if prefix.is_well_known() && !allowed_under_well_known(server) {
            return Err(NatDrop::NonGlobalUnderWellKnown);
        }
        if never_a_host(server) {
            return Err(NatDrop::SpecialIpv4Destination);
        }
        // A pool4 address the host holds too is another client's, reached
        // by hairpinning (RFC 6146 §3.8), not the host.
        let gateway = self.config.local_v4.iter().any(|net| {
            server == net.addr() || (net.prefix_len() < 31 && server == net.broadcast())
        });
        if gateway && !self.config.pool4.contains(server) {
            return Err(NatDrop::GatewayIpv4Destination);
        }
        Ok(server)
    }

    fn outbound(&mut self, now: Instant, pkt: &[u8], parsed: Parsed6, out: &mut [u8]) -> Verdict {
        let flow = parsed.flow;
        let server = match self.outbound_server(pkt, &flow) {
            Ok(s) => s,
            Err(reason) => return Verdict::Drop(reason),
        };
        if self.denied(&flow, server) {
            return match parsed.icmp_error {
                Some(_) => Verdict::Drop(NatDrop::DestinationDenied),
                None => self.reject_v6(now, pkt, NatDrop::DestinationDenied, out),
            };
        }
        let hairpin = self.config.pool4.contains(server);
        if parsed.icmp_error.is_some() && hairpin {
            return Verdict::Drop(NatDrop::Hairpinning);
        }
        let static_owner = self.static_owner(&flow);
        if parsed.icmp_error.is_some() || static_owner.is_some() {
            // The steering program finds the session's owner only for an
            // error right after the fixed header; one behind extension
            // headers may reach another shard, which hands it over. So is a
            // static binding's server's packet: its binding lives with its
            // pool4 port.
            let shard = self.config.shard;
            let owner = static_owner.unwrap_or_else(|| shard.client_owner(&flow.src.octets()));
            if owner != shard.index {
                return match out.get_mut(..pkt.len()) {
                    Some(o) => {
                        o.copy_from_slice(pkt);
                        Verdict::Elsewhere {
                            owner,
                            len: pkt.len(),
                        }
                    }
                    None => Verdict::Drop(DropReason::OutputTooSmall.into()),
                };
            }
        }
        if parsed.icmp_error.is_some() {
            return match self.outbound_error(pkt, &parsed, server, out) {
                Ok(len) => Verdict::Forward(len),
                Err(reason) => Verdict::Drop(reason),
            };
        }
        let plan = match self.table.plan_outbound(now, &flow, server) {
            Ok(plan) if plan.creates_session() && is_echo_reply_v6(pkt, &parsed) => {
                return Verdict::Drop(NatDrop::EchoReplyNoSession)
            }
            Ok(plan) => plan,
            Err(reason) => return self.reject_v6(now, pkt, reason, out),
        };
        let (src, dst, id) = self.outbound_addrs(&flow, server, &plan);
        match translate_6to4(pkt, &parsed, src, dst, id, out) {
            Ok(len) => {
                self.commit_outbound(now, plan, &flow, dst);
                self.clamp_mss(flow.proto, out.get_mut(20..len));
                if hairpin {
                    self.hairpin(now, out, len)
                } else {
                    Verdict::Forward(len)
                }
            }
            Err(reason) => Verdict::Drop(reason.into()),
        }
    }

    /// The shard holding the static binding whose IPv6 side `flow` comes
    /// from (for an ICMP error: is about), if any.
    fn static_owner(&self, flow: &Flow6) -> Option<u16> {
        if self.static_owners.is_empty() {
            return None;
        }
        let v6 = SocketAddrV6::new(flow.src, flow.src_port, 0, 0);
        self.static_owners.get(&(flow.proto, v6)).copied()
    }

    /// Records an outbound packet translated as `plan` says, to `server`.
    /// A client's SYN answers an inbound SYN held for the same connection
    /// (RFC 6146 §3.5.2.2 simultaneous open): the held one is dropped.
    fn commit_outbound(
        &mut self,
        now: Instant,
        plan: OutboundPlan,
        flow: &Flow6,
        server: SocketAddrV4,
    ) {
        if flow.proto == L4Proto::Tcp
            && plan.creates_session()
            && self.syns.answered(plan.v4_local, server)
        {
            self.counters.tcp_simultaneous_opens += 1;
        }
        self.ipv4_ids
            .advance(*plan.v4_local.ip(), *server.ip(), ip_proto(flow.proto));
        self.table.commit_outbound(now, plan, flow.tcp_flags);
    }

    /// RFC 6146 §3.8: `out[..len]` is a translated packet to a pool4
    /// address, i.e. to another client: it goes back in as an IPv4 packet
    /// from the pool, through that client's binding and filtering like any
    /// other; to the shard owning its destination port.
    fn hairpin(&mut self, now: Instant, out: &mut [u8], len: usize) -> Verdict {
        self.counters.hairpinned += 1;
        let shard = self.config.shard;
        match owner_of_v4(&out[..len], shard.count, shard.port_shift) {
            Some(owner) if owner != shard.index => return Verdict::Elsewhere { owner, len },
            _ => {}
        }
        let mut v4 = std::mem::take(&mut self.hairpin);
        if v4.is_empty() {
            v4 = vec![0; MAX_DATAGRAM].into_boxed_slice();
        }
        let verdict = match v4.get_mut(..len) {
            Some(pkt) => {
                pkt.copy_from_slice(&out[..len]);
                match parse_v4(pkt) {
                    // An ICMPv4 error about it would go to the pool itself:
                    // the packet is dropped instead.
                    Ok(parsed) => match self.inbound(now, pkt, parsed, out) {
                        Verdict::Reject(reason, _) => Verdict::Drop(reason),
                        verdict => verdict,
                    },
                    Err(reason) => Verdict::Drop(reason.into()),
                }
            }
            None => Verdict::Drop(DropReason::OutputTooSmall.into()),
        };
        self.hairpin = v4;
        verdict
    }

    /// The IPv4 source and destination transport addresses and the IPv4
    /// identification of an outbound packet planned as `plan`.
    fn outbound_addrs(
        &mut self,
        flow: &Flow6,
        server: Ipv4Addr,
        plan: &OutboundPlan,
    ) -> (SocketAddrV4, SocketAddrV4, u16) {
        let src = plan.v4_local;
        let dst_port = match flow.proto {
            L4Proto::Icmp => src.port(),
            L4Proto::Tcp | L4Proto::Udp => flow.dst_port,
        };
        // Taken in `commit_outbound`, once the packet is translated.
        let id = self.ipv4_ids.peek(*src.ip(), server, ip_proto(flow.proto));
        (src, SocketAddrV4::new(server, dst_port), id)
    }

    /// The IPv6 source (the server under the prefix) of an inbound packet
    /// for `client`.
    fn inbound_source(&self, flow: &Flow4, client: SocketAddrV6) -> SocketAddrV6 {
        let src_port = match flow.proto {
            L4Proto::Icmp => client.port(),
            L4Proto::Tcp | L4Proto::Udp => flow.src_port,
        };
        SocketAddrV6::new(self.config.prefix.embed(flow.src), src_port, 0, 0)
    }

    /// Lowers the MSS option of a translated TCP SYN (`tcp`: its transport
    /// header and payload) to the configured clamp.
    fn clamp_mss(&mut self, proto: L4Proto, tcp: Option<&mut [u8]>) {
        if let (L4Proto::Tcp, Some(max), Some(tcp)) = (proto, self.config.mss_clamp, tcp) {
            if tcp_mss::clamp(tcp, max) {
                self.counters.tcp_mss_clamped += 1;
            }
        }
    }

    /// RFC 7915 §5.2 with RFC 6146 §3.4: an ICMPv6 error about a session,
    /// sent on to the IPv4 server.
    fn outbound_error(
        &mut self,
        pkt: &[u8],
        parsed: &Parsed6,
        server: Ipv4Addr,
        out: &mut [u8],
    ) -> Result<usize, NatDrop> {
        let flow = parsed.flow;
        let v4_local = self
            .table
            .find_outbound(&flow, server)
            .ok_or(NatDrop::IcmpErrorNoSession)?;
        let sender = ipv6_source(pkt);
        // The client speaks for itself through its binding; a router on the
        // IPv6 side gets an RFC 6791 address when the operator set some.
        let outer_src = if sender == flow.src || self.config.rfc6791_v4.is_empty() {
            *v4_local.ip()
        } else {
            let n = self.config.rfc6791_v4.len() as u64;
            let i = (self.hasher.hash_one(sender) % n) as usize;
            self.config
                .rfc6791_v4
                .get(i)
                .copied()
                .unwrap_or(*v4_local.ip())
        };
        let server_port = match flow.proto {
            L4Proto::Icmp => v4_local.port(),
            L4Proto::Tcp | L4Proto::Udp => flow.dst_port,
        };
        let addrs = ErrorAddrs {
            outer_src,
            inner_src: SocketAddrV4::new(server, server_port),
            inner_dst: v4_local,
        };
        let id = self.ipv4_ids.next(outer_src, server, 1);
        Ok(translate_error_6to4(
            pkt,
            parsed,
            &addrs,
            id,
            u32::from(self.config.ipv6_mtu),
            out,
        )?)
    }

    /// [`Nat64::translate_in_place`] of an IPv6 packet: the new start and length.
    fn outbound_in_place(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> Option<(usize, usize)> {
        let pkt = buf.get(start..start + len)?;
        let parsed = parse_v6(pkt).ok()?;
        if parsed.icmp_error.is_some() {
            return None;
        }
        let flow = parsed.flow;
        let server = self.outbound_server(pkt, &flow).ok()?;
        if self.config.pool4.contains(server) || self.denied(&flow, server) {
            return None; // hairpinning or a refusal: `handle_v6` does it
        }
        if self
            .static_owner(&flow)
            .is_some_and(|o| o != self.config.shard.index)
        {
            return None; // another shard's static binding: `handle_v6` hands it over
        }
        let plan = self.table.plan_outbound(now, &flow, server).ok()?;
        if plan.creates_session() && is_echo_reply_v6(pkt, &parsed) {
            return None;
        }
        let (src, dst, id) = self.outbound_addrs(&flow, server, &plan);
        // On failure nothing has changed: the copying path takes the
        // packet again and finds the same id and port.
        let new_start = translate_6to4_in_place(buf, start, &parsed, src, dst, id).ok()?;
        self.commit_outbound(now, plan, &flow, dst);
        let out_len = 20 + parsed.total_len - parsed.l4_offset;
        self.clamp_mss(flow.proto, buf.get_mut(new_start + 20..new_start + out_len));
        Some((new_start, out_len))
    }

    /// [`Nat64::translate_in_place`] of an IPv4 packet.
    fn inbound_in_place(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        start: usize,
        len: usize,
        gso_size: Option<u16>,
    ) -> Option<(usize, usize)> {
        let pkt = buf.get(start..start + len)?;
        let parsed = parse_v4(pkt).ok()?;
        let flow = parsed.flow;
        if parsed.icmp_error.is_some() || !self.config.pool4.contains(flow.dst) {
            return None;
        }
        let l4 = pkt.get(parsed.l4_offset..parsed.total_len)?;
        let out_len = 40 + l4.len();
        let largest = match (gso_size, flow.proto) {
            (None, _) => out_len,
            (Some(g), L4Proto::Tcp) => 40 + usize::from(l4.get(12)? >> 4) * 4 + usize::from(g),
            (Some(g), L4Proto::Udp) => 40 + 8 + usize::from(g),
            (Some(_), L4Proto::Icmp) => return None,
        };
        let limit = if parsed.dont_fragment {
            self.config.ipv6_mtu
        } else {
            self.fragment_mtu()
        };
        if largest > usize::from(limit) {
            return None;
        }
        let plan = self.table.plan_inbound(&flow).ok()?;
        let client = plan.v6_client();
        let src = self.inbound_source(&flow, client);
        let new_start = translate_4to6_in_place(buf, start, &parsed, src, client).ok()?;
        self.table.commit_inbound(now, plan, flow.tcp_flags);
        self.clamp_mss(flow.proto, buf.get_mut(new_start + 40..new_start + out_len));
        Some((new_start, out_len))
    }

    fn inbound(&mut self, now: Instant, pkt: &[u8], parsed: Parsed4, out: &mut [u8]) -> Verdict {
        let flow = parsed.flow;
        if !self.config.pool4.contains(flow.dst) {
            return Verdict::Drop(NatDrop::NotInPool4);
        }
        if parsed.icmp_error.is_some() {
            return match self.inbound_error(pkt, &parsed, out) {
                Ok(len) => Verdict::Forward(len),
                Err(reason) => Verdict::Drop(reason),
            };
        }
        let plan = match self.table.plan_inbound(&flow) {
            Ok(plan) => plan,
            Err(NatDrop::TcpInboundSyn) => return self.hold_syn(now, pkt, &flow),
            Err(reason) => return Verdict::Drop(reason),
        };
        let client = plan.v6_client();
        let src = self.inbound_source(&flow, client);
        let len = match translate_4to6(pkt, &parsed, src, client, out) {
            Ok(len) => len,
            Err(reason) => return Verdict::Drop(reason.into()),
        };
        self.clamp_mss(flow.proto, out.get_mut(40..len));
        // RFC 7915 §4: what does not fit the IPv6 side is refused with
        // Fragmentation Needed when DF is set, else fragmented.
        let mtu = usize::from(self.config.ipv6_mtu);
        let fragment_mtu = usize::from(self.fragment_mtu());
        let len = if parsed.dont_fragment {
            if len > mtu {
                let next_hop_mtu = self.config.ipv6_mtu.saturating_sub(20);
                return self.reject_v4_with(
                    now,
                    pkt,
                    DropReason::TooBigForIpv6.into(),
                    Some(next_hop_mtu),
                    out,
                );
            }
            len
        } else if len > fragment_mtu {
            match fragment_v6_in_place(out, len, fragment_mtu, u32::from(parsed.ipv4_id)) {
                Ok(total) => {
                    self.counters.packets_fragmented += 1;
                    total
                }
                Err(reason) => return Verdict::Drop(reason.into()),
            }
        } else {
            len
        };
        self.table.commit_inbound(now, plan, flow.tcp_flags);
        Verdict::Forward(len)
    }

    /// An ICMP message to a pool4 address the host holds itself, which the
    /// NAT would drop for want of a binding or session, is the host's: the
    /// kernel steers every ICMP message to such an address here (routing
    /// rules cannot tell echo identifiers apart), so that echo replies and
    /// errors for the NAT's ranges reach it, and everything else goes back.
    fn host_or_drop(&mut self, pkt: &[u8], reason: NatDrop, out: &mut [u8]) -> Verdict {
        let unclaimed = matches!(
            reason,
            NatDrop::NoBinding | NatDrop::IcmpErrorNoSession | NatDrop::Filtered
        );
        let to = pkt
            .first_chunk::<20>()
            .filter(|h| h[9] == 1)
            .map(|h| Ipv4Addr::new(h[16], h[17], h[18], h[19]));
        match (to, out.get_mut(..pkt.len())) {
            (Some(to), Some(o)) if unclaimed && self.held_by_host(to) => {
                o.copy_from_slice(pkt);
                self.counters.icmp_to_host += 1;
                Verdict::ToHost(pkt.len())
            }
            _ => Verdict::Drop(reason),
        }
    }

    /// Whether the gateway host itself holds `addr` (one of its interface
    /// addresses, in `local_v4`).
    fn held_by_host(&self, addr: Ipv4Addr) -> bool {
        self.config.local_v4.iter().any(|net| net.addr() == addr)
    }

    /// RFC 6146 §3.5.2.2: an IPv4 SYN that no binding lets in is held 6 s
    /// for a simultaneous open, if the store has room. A hairpinned SYN
    /// (from the pool itself) is not: its ICMP error would go round the
    /// pool once more.
    fn hold_syn(&mut self, now: Instant, pkt: &[u8], flow: &Flow4) -> Verdict {
        let local = SocketAddrV4::new(flow.dst, flow.dst_port);
        let remote = SocketAddrV4::new(flow.src, flow.src_port);
        if !self.config.pool4.contains(flow.src) && self.syns.hold(now, pkt, local, remote) {
            self.counters.tcp_syns_held += 1;
            Verdict::SynHeld
        } else {
            Verdict::Drop(NatDrop::TcpInboundSyn)
        }
    }

    /// RFC 7915 §4.2 with RFC 6146 §3.4: an ICMPv4 error about a session,
    /// sent on to the IPv6 client.
    fn inbound_error(
        &mut self,
        pkt: &[u8],
        parsed: &Parsed4,
        out: &mut [u8],
    ) -> Result<usize, NatDrop> {
        let flow = parsed.flow;
        let client = self
            .table
            .find_inbound(&flow)
            .ok_or(NatDrop::IcmpErrorNoSession)?;
        let hdr = pkt.first_chunk::<20>().ok_or(DropReason::Truncated)?;
        let sender = Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]);
        let prefix = self.config.prefix;
        // A router answering from an address the well-known prefix must not
        // carry (RFC 6052 §3.1) still shows, as the gateway's own address.
        let outer_src = if !prefix.is_well_known() || allowed_under_well_known(sender) {
            prefix.embed(sender)
        } else {
            self.icmp_source_v6()
        };
        let server_port = match flow.proto {
            L4Proto::Icmp => client.port(),
            L4Proto::Tcp | L4Proto::Udp => flow.src_port,
        };
        let addrs = ErrorAddrs {
            outer_src,
            inner_src: client,
            inner_dst: SocketAddrV6::new(prefix.embed(flow.src), server_port, 0, 0),
        };
        Ok(translate_error_4to6(
            pkt,
            parsed,
            &addrs,
            u32::from(self.config.ipv6_mtu),
            out,
        )?)
    }
}
