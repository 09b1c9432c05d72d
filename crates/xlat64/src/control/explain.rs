//! What each `stats` counter means and what to check when it grows
//! (`xlat64 stats --explain`; the `HELP` text of the metrics).

/// One line for counter `name`, or `None` for a name this build does not
/// know (a test requires every counter to have one).
pub fn explain(name: &str) -> Option<&'static str> {
    if let Some(rest) = name.strip_prefix("worker_") {
        let what = rest.split_once('_').map(|(_, w)| w)?;
        return match what {
            "tun_rx_packets" => Some("Packets this worker read from its TUN queue; uneven numbers across workers mean uneven clients or pool4 ports, not a fault."),
            "nat64_sessions" => Some("Sessions this worker holds now (its clients'); its share of max-sessions bounds it."),
            _ => None,
        };
    }
    if let Some((_, what)) = name
        .strip_prefix("dns64_upstream_")
        .and_then(|rest| rest.split_once('_'))
        .filter(|(n, _)| n.parse::<usize>().is_ok())
    {
        return crate::dns64::UPSTREAM_GAUGES
            .iter()
            .find(|(g, _)| *g == what)
            .map(|(_, h)| *h);
    }
    if let Some(rest) = name.strip_prefix("dns64_") {
        return crate::dns64::COUNTER_HELP
            .iter()
            .find(|(n, _)| *n == rest)
            .map(|(_, h)| *h);
    }
    Some(match name {
        // Translation and the TUN device.
        "translated_v6_to_v4_packets" => "IPv6 packets translated to IPv4 and sent: client traffic going out.",
        "translated_v6_to_v4_bytes" => "Bytes of those IPv4 packets.",
        "translated_v4_to_v6_packets" => "IPv4 packets translated to IPv6 and sent: replies coming in.",
        "translated_v4_to_v6_bytes" => "Bytes of those IPv6 packets.",
        "translated_in_place" => "Packets (superpackets counted once) translated where they lay, without a copy: the fast path.",
        "tun_rx_packets" => "Packets read from the TUN device, all workers.",
        "tun_tx_errors" => "Translated packets lost to a failed TUN write; growing: the device went away or its queue is full (check the TUN device and the log).",
        "tun_rx_gso_superpackets" => "Reads that carried a GSO superpacket (offloads on).",
        "tun_rx_gso_segments" => "Packets in those superpackets.",
        "tun_rx_gso_errors" => "Superpackets that could not be split and were lost; growing: a kernel/offload problem, try nat64.offload = false.",
        "tun_rx_gso_split" => "Superpackets split and copied because they could not be translated in place (ICMP errors, fragments, MTU).",
        "tun_tx_gso_superpackets" => "Writes that carried a translated superpacket.",
        "tun_tx_gso_segments" => "Segments the kernel cut those into.",
        "tun_offload" => "1 when the TUN device runs with offloads (GSO superpackets), 0 when one packet per syscall.",
        "workers" => "Packet workers running (runtime.workers; 1 when the kernel refused the steering program).",
        "handed_off" => "Datagrams reassembled (or hairpinned) by one worker and handed to the worker that owns them.",
        "handoffs_dropped" => "Such datagrams lost because the owner's mailbox was full; growing: a worker is overloaded.",
        // NAT state.
        "nat64_sessions" => "Sessions held now, all workers; compare with nat64.limits.max-sessions.",
        "nat64_bindings" => "Bindings (client transport address <-> pool4 transport address) held now.",
        "nat64_port_blocks" => "Port blocks clients hold now (port-block); compare with the pool's blocks.",
        "nat64_sessions_created" => "Sessions created since start.",
        "nat64_sessions_expired" => "Sessions ended since start (idle timeout, RST/FIN, or a shortened lifetime).",
        "nat64_sessions_created_tcp" => "TCP sessions created since start.",
        "nat64_sessions_created_udp" => "UDP sessions created since start.",
        "nat64_sessions_created_icmp" => "ICMP query sessions created since start.",
        "nat64_sessions_expired_tcp" => "TCP sessions ended since start.",
        "nat64_sessions_expired_udp" => "UDP sessions ended since start.",
        "nat64_sessions_expired_icmp" => "ICMP query sessions ended since start.",
        "fragments_held" => "Fragments stored for reassembly.",
        "fragments_reassembled" => "Datagrams reassembled from fragments.",
        "fragment_timeouts" => "Incomplete datagrams dropped at the reassembly timeout; growing: lost fragments upstream, or a fragment flood.",
        "fragments_in_progress" => "Datagrams being reassembled now; near nat64.fragments.max-datagrams means fragments are being refused.",
        "fragments_bytes_held" => "Bytes those datagrams hold.",
        "packets_fragmented" => "IPv4 packets without DF sent as IPv6 fragments (larger than lowest-ipv6-mtu).",
        "tcp_mss_clamped" => "TCP SYNs whose MSS option was lowered to mss-clamp.",
        "icmp_errors_sent" => "ICMP errors the gateway sent itself (Time Exceeded, Too Big, Unreachable...).",
        "icmp_errors_rate_limited" => "ICMP errors not sent because of icmp-errors-per-second; growing steadily: someone is probing or the limit is low.",
        "tcp_syns_held" => "TCP SYNs from the IPv4 side held 6 s for a simultaneous open (RFC 6146 section 3.5.2.2).",
        "tcp_simultaneous_opens" => "Held SYNs whose connection the client opened meanwhile.",
        "tcp_syns_unanswered" => "Held SYNs answered with ICMP Port Unreachable after 6 s: IPv4 hosts trying to connect in.",
        "tcp_probes_sent" => "Probes sent to clients of idle established TCP sessions before ending them (RFC 6146 section 3.5.2.2).",
        "hairpinned" => "Packets from one client to another through pool4 (RFC 6146 section 3.8).",
        "icmp_to_host" => "ICMP messages to a pool4 address the gateway shares that no binding claims, given back to the gateway's own stack.",
        "binding_log_dropped" => "Binding log lines lost because the writer fell behind; growing: the log's disk is slow or full.",
        // Drops: the packet itself.
        "drop_truncated" => "Packets shorter than their IP header says: malformed or cut; check the sender.",
        "drop_bad_version" => "Packets neither IPv4 nor IPv6 from the TUN device; should stay 0.",
        "drop_bad_header_length" => "IPv4 packets with an impossible header length: malformed.",
        "drop_bad_ipv4_checksum" => "IPv4 packets with a wrong header checksum: corrupted on the way.",
        "drop_bad_transport_checksum" => "TCP/UDP/ICMP with a wrong checksum: corrupted, or an offload problem (try offload = false).",
        "drop_truncated_transport" => "Packets whose TCP/UDP/ICMP header is cut short: malformed.",
        "drop_bad_ipv4_options" => "IPv4 options that cannot be walked: malformed.",
        "drop_bad_extension_header" => "IPv6 extension header chains that cannot be walked: malformed or hostile.",
        "drop_udp_zero_checksum" => "IPv6 UDP without checksum, which IPv6 must discard (RFC 8200 section 8.1); check the client's stack.",
        "drop_unknown_protocol" => "Protocols a stateful NAT64 cannot carry (only TCP, UDP, ICMP: RFC 6146); the client gets Parameter Problem.",
        "drop_extension_header" => "IPv6 with AH, ESP, Mobility, HIP or Shim6, which cannot be translated (RFC 7915 section 5.1).",
        "drop_routing_header" => "IPv6 with a Routing header with segments left (RFC 7915 section 5.1).",
        "drop_fragment" => "A fragment outside reassembly; should stay 0 (reassembly has its own counters).",
        "drop_source_route" => "IPv4 with an unexpired source route option (RFC 7915 section 4.1).",
        "drop_hop_limit_exceeded" => "Hop limit / TTL ran out at the gateway (traceroute does this); Time Exceeded is sent back.",
        "drop_icmpv6_type_unsupported" => "ICMPv6 types with no IPv4 counterpart (ND, MLD, unknown) sent to the prefix.",
        "drop_icmpv4_type_unsupported" => "ICMPv4 types with no IPv6 counterpart (timestamps, redirects, source quench...).",
        "drop_icmp_untranslatable" => "ICMP error codes or pointers with no counterpart in the other family (RFC 7915).",
        "drop_icmp_quote_untranslatable" => "ICMP errors whose quoted packet cannot be translated (cut short, about an error, a later fragment).",
        "drop_bad_address" => "Unusable source or destination addresses (multicast, unspecified, loopback).",
        "drop_too_big_for_ipv4" => "Reassembled IPv6 datagrams too large for IPv4 (over 65535 bytes).",
        "drop_too_big_for_ipv6" => "IPv4 packets with DF too large for the IPv6 side; Fragmentation Needed is sent back (path MTU discovery).",
        "drop_output_too_small" => "Internal: an output buffer too small; should stay 0 (report it).",
        // Drops: fragments.
        "drop_fragment_malformed" => "Fragments no correct sender produces (bad lengths); malformed or hostile.",
        "drop_fragment_overlap" => "Fragments overlapping earlier data: the datagram is discarded (RFC 5722); hostile or broken sender.",
        "drop_fragment_too_large" => "Fragment trains adding up to more than 65535 bytes (ping of death).",
        "drop_fragment_too_many" => "Datagrams of more fragments than nat64.fragments.max-fragments: tiny-fragment trains.",
        "drop_fragment_source_limit" => "Fragments refused: the source has nat64.fragments.max-per-source datagrams in progress.",
        "drop_fragment_table_full" => "Fragments refused: nat64.fragments.max-datagrams are in progress; raise it or look for a flood.",
        "drop_fragment_inconsistent" => "Fragment trains with two different ends: discarded.",
        // Drops: NAT policy and state.
        "drop_not_in_prefix" => "IPv6 packets to an address outside the NAT64 prefix: a routing mistake towards the TUN device.",
        "drop_non_global_under_well_known_prefix" => "Non-global IPv4 under 64:ff9b::/96, forbidden by RFC 6052 section 3.1; use a network-specific prefix for private servers.",
        "drop_not_in_pool4" => "IPv4 packets to an address outside pool4: a routing mistake towards the TUN device.",
        "drop_source_in_prefix" => "IPv6 sources inside the prefix: spoofed or looped, never translated.",
        "drop_bad_ipv6_source" => "IPv6 sources that are no host (IPv4-mapped, -compatible, link-local).",
        "drop_special_ipv4_destination" => "Destinations that are no unicast host (0/8, 127/8, multicast, broadcast, 240/4).",
        "drop_gateway_ipv4_destination" => "Destinations that are the gateway's own IPv4 addresses or broadcasts.",
        "drop_destination_denied" => "Destinations in nat64.deny-destinations; the client gets Administratively Prohibited.",
        "drop_no_binding" => "IPv4 packets to a pool4 port nobody holds: unsolicited traffic (scans), or replies after a session ended.",
        "drop_tcp_no_session" => "TCP segments (not SYN) without a session: late packets of closed connections, or scans.",
        "drop_filtered" => "IPv4 packets from a host the binding never talked to (address-dependent filtering).",
        "drop_tcp_inbound_syn" => "TCP SYNs from outside not held because max-simultaneous-opens SYNs are held already.",
        "drop_tcp_externally_initiated" => "TCP SYNs from outside refused by drop-externally-initiated-tcp.",
        "drop_icmp_error_hairpinned" => "ICMPv6 errors about a flow between two clients (not translated).",
        "drop_icmp_error_no_session" => "ICMP errors about no session: stale, or forged.",
        "drop_echo_reply_no_session" => "ICMPv6 Echo Replies that answer nothing (a reply never opens state).",
        "drop_pool4_exhausted" => "New flows refused: no free port left in pool4 (with port blocks: no free block); add addresses or lower limits.",
        "drop_session_limit" => "New flows refused: nat64.limits.max-sessions reached.",
        "drop_client_session_limit" => "New flows refused: the client is at max-sessions-per-client (one client's flood, or a limit too low).",
        "drop_client_port_limit" => "New bindings refused: the client is at max-ports-per-client (with port blocks: its blocks are full).",
        "drop_client_rate_limit" => "New bindings refused: the client created max-new-bindings-per-second in the last second.",
        "drop_outside_deterministic_range" => "New bindings of clients outside [nat64.deterministic] clients.",
        _ => return None,
    })
}
