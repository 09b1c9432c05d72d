#!/usr/bin/env bash
# DNS64 queries per second: xlat64 vs Unbound's dns64 module, same run.
#
# One network namespace, everything on its loopback (documentation
# addresses only): NSD (authoritative for bench.test) on 198.51.100.2,
# xlat64 (DNS64 only, [runtime] io-threads = T) on [2001:db8:1::1]:53,
# Unbound (module-config "dns64 iterator", num-threads T, stub zones to
# NSD) on [2001:db8:1::53]:53, and dnsperf sending AAAA queries to each.
# Everything is measured for each T of --threads (default 1 and 2), both
# servers restarted with T threads each time; the table ends with how
# each scales from its first T to its last (warm cache).
#
#   warm: the same 1000 A-only names (a warm-up pass first, so both answer
#         from their caches); median qps of --runs runs each, alternating.
#   miss: every query a new name (a wildcard in NSD; a fresh list per run),
#         so neither cache helps: each query costs an AAAA + A upstream.
#
# Usage: bench/dns64-perf.sh [--duration S] [--runs N] [--threads "1 2"] [--exe PATH]
#   --duration  seconds per dnsperf run (default 15)
#   --runs      runs per server and mode (default 3)
#   --threads   thread counts to measure, each for both servers (default "1 2")
#   --exe       the xlat64 binary (default target/release/xlat64, built if missing)
# Needs root, iproute2, nsd, unbound, dnsperf. Exits 1 if a server does not
# answer; the figures themselves never fail it.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=15
runs=3
threads="1 2"
exe=""
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --exe) exe="$2"; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
done
case "$duration$runs" in *[!0-9]*) echo "error: --duration and --runs take integers" >&2; exit 1 ;; esac
for t in $threads; do
    case "$t" in *[!0-9]*|0) echo "error: --threads takes positive integers, e.g. \"1 2\"" >&2; exit 1 ;; esac
done
[ -n "$threads" ] || { echo "error: --threads is empty" >&2; exit 1; }
[ "$duration" -ge 1 ] && [ "$runs" -ge 1 ] || { echo "error: --duration and --runs must be >= 1" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "error: needs root (network namespaces)" >&2; exit 1; }
for tool in ip nsd unbound dnsperf ss; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "error: needs $tool" >&2; exit 1; }
done
if [ -z "$exe" ]; then
    exe=target/release/xlat64
    [ -x "$exe" ] || cargo build --release -q -p xlat64
fi
exe="$(realpath "$exe")"

ns="x64-dnsperf-$$"
dir="$(mktemp -d /tmp/xlat64-dnsperf.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if ip netns list | grep -qw "$ns"; then
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns"
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
in_ns() { ip netns exec "$ns" "$@"; }

NSD=198.51.100.2
XLAT=2001:db8:1::1
UNB=2001:db8:1::53
WARM_NAMES=1000

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add "$NSD/32" dev lo
ip -n "$ns" addr add "$XLAT/128" dev lo nodad
ip -n "$ns" addr add "$UNB/128" dev lo nodad

# --- NSD: bench.test, A-only names and a wildcard for cache misses.
mkdir -p "$dir/nsd"
{
    printf '$ORIGIN bench.test.\n$TTL 86400\n'
    printf '@ IN SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 3600\n'
    printf '@ IN NS ns\nns IN A %s\n' "$NSD"
    for i in $(seq 1 $WARM_NAMES); do printf 'w%d IN A 198.51.100.%d\n' "$i" $((i % 250 + 1)); done
    printf '*.miss IN A 198.51.100.10\n'
} > "$dir/nsd/bench.test.zone"
cat > "$dir/nsd/nsd.conf" <<EOF
server:
	ip-address: $NSD
	port: 53
	do-ip6: no
	server-count: 1
	username: ""
	chroot: ""
	zonesdir: "$dir/nsd"
	database: ""
	zonelistfile: "$dir/nsd/zone.list"
	pidfile: "$dir/nsd/nsd.pid"
	xfrdfile: "$dir/nsd/xfrd.state"
	xfrdir: "$dir/nsd"
	logfile: "$dir/nsd/nsd.log"
	verbosity: 1
	# NSD's response rate limiting (200 qps per client and answer by
	# default) would make NSD, not the DNS64, the bottleneck.
	rrl-ratelimit: 0
	rrl-whitelist-ratelimit: 0
remote-control:
	control-enable: no
zone:
	name: "bench.test"
	zonefile: "$dir/nsd/bench.test.zone"
EOF
in_ns nsd -d -c "$dir/nsd/nsd.conf" > "$dir/nsd.out" 2>&1 &
pids+=($!)

# --- xlat64 (DNS64 only) and Unbound (dns64 iterator, stubs to NSD,
# nothing outside), started with $1 threads each; stopped before the next.
server_pids=()
start_servers() { # threads
    cat > "$dir/xlat64.toml" <<EOF
[dns64]
listen = ["[$XLAT]:53"]
upstream = ["$NSD:53"]
prefix = "2001:db8:64::/96"
allow = ["2001:db8::/32"]
# dnsperf is one client: no per-client rate limit.
queries-per-second-per-client = 0

[control]
socket = "$dir/xlat64.sock"

[runtime]
io-threads = $1
EOF
    in_ns "$exe" run --config "$dir/xlat64.toml" > "$dir/xlat64.log" 2>&1 &
    server_pids+=($!); pids+=($!)
    mkdir -p "$dir/unbound"
    cat > "$dir/unbound/unbound.conf" <<EOF
server:
	interface: $UNB
	port: 53
	num-threads: $1
	do-daemonize: no
	use-syslog: no
	logfile: ""
	username: ""
	chroot: ""
	directory: "$dir/unbound"
	pidfile: ""
	verbosity: 0
	access-control: 2001:db8::/32 allow
	module-config: "dns64 iterator"
	dns64-prefix: 2001:db8:64::/96
	do-not-query-localhost: no
	qname-minimisation: no
	target-fetch-policy: "0 0 0 0 0"
	local-zone: "test." nodefault
remote-control:
	control-enable: no
stub-zone:
	name: "bench.test"
	stub-addr: $NSD
stub-zone:
	name: "."
	stub-addr: $NSD
EOF
    in_ns unbound -d -c "$dir/unbound/unbound.conf" > "$dir/unbound.log" 2>&1 &
    server_pids+=($!); pids+=($!)
    wait_udp "[$XLAT]" xlat64 "$dir/xlat64.log"
    wait_udp "[$UNB]" unbound "$dir/unbound.log"
}
stop_servers() {
    for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    server_pids=()
    for _ in $(seq 1 100); do
        if ! in_ns ss -Hlnu "src [$XLAT]" | grep -q ':53' && ! in_ns ss -Hlnu "src [$UNB]" | grep -q ':53'; then
            return 0
        fi
        sleep 0.05
    done
}

wait_udp() { # addr label log
    for _ in $(seq 1 200); do
        if in_ns ss -Hlnu "src $1" | grep -q ':53'; then return 0; fi
        sleep 0.05
    done
    echo "error: $2 does not listen on $1 port 53; its output:" >&2
    cat "$3" >&2 || true
    exit 1
}
wait_udp "$NSD" nsd "$dir/nsd.out"

for i in $(seq 1 $WARM_NAMES); do echo "w$i.bench.test AAAA"; done > "$dir/warm.txt"

# dnsperf <server> <file> <seconds or 0 for one pass>; prints qps, or fails.
perf() {
    local server="$1" file="$2" secs="$3" out
    local args=(-s "$server" -d "$file" -c 4 -q 64 -t 2)
    if [ "$secs" = 0 ]; then args+=(-n 1); else args+=(-l "$secs"); fi
    out="$(in_ns dnsperf "${args[@]}" 2>&1)" || { echo "error: dnsperf against $server failed:" >&2; echo "$out" >&2; return 1; }
    echo "$out" > "$dir/last-dnsperf.txt"
    local completed qps noerror
    completed="$(awk '/Queries completed:/ {print $3}' <<<"$out")"
    noerror="$(awk '/Response codes:/ {for (i=3;i<=NF;i++) if ($i ~ /^NOERROR/) {print $(i+1); exit}}' <<<"$out")"
    qps="$(awk '/Queries per second:/ {print $4}' <<<"$out")"
    if [ -z "$completed" ] || [ "$completed" = 0 ] || [ -z "$noerror" ] || [ "$noerror" = 0 ]; then
        echo "error: $server answered no query with NOERROR; dnsperf said:" >&2
        echo "$out" >&2
        return 1
    fi
    echo "$qps"
}

# The answers must be synthesized ones, or the comparison means nothing.
check_answer() { # server label
    local got
    got="$(in_ns dig +time=2 +tries=2 +short "@$1" AAAA w1.bench.test)"
    if [ "$got" != "2001:db8:64::c633:6402" ]; then
        echo "error: $2 answered AAAA w1.bench.test with '$got', not 2001:db8:64::c633:6402" >&2
        exit 1
    fi
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

echo "dnsperf: ${duration}s per run, $runs run(s) per server and mode, 4 clients, 64 outstanding; threads: $threads"
# Enough distinct names that a run never loops over its list (dnsperf
# starts the file again when it runs out: then the cache would answer).
miss_lines=$((duration * 80000))
miss_file() { # tag -> file of AAAA queries for names never asked before
    awk -v n="$miss_lines" -v t="$1" 'BEGIN {for (i = 1; i <= n; i++) printf "m%s-%d.miss.bench.test AAAA\n", t, i}' > "$dir/miss.txt"
}
table=()
first_t=""; first_x=""; first_u=""; last_t=""; last_x=""; last_u=""
for t in $threads; do
    start_servers "$t"
    if command -v dig >/dev/null; then
        check_answer "$XLAT" xlat64
        check_answer "$UNB" unbound
    fi
    echo "== $t thread(s) each; warm-up: one pass over $WARM_NAMES names per server"
    perf "$XLAT" "$dir/warm.txt" 0 >/dev/null
    perf "$UNB" "$dir/warm.txt" 0 >/dev/null
    xw=(); uw=(); xm=(); um=()
    for r in $(seq 1 "$runs"); do
        xw+=("$(perf "$XLAT" "$dir/warm.txt" "$duration")")
        uw+=("$(perf "$UNB" "$dir/warm.txt" "$duration")")
        echo "run $r warm: xlat64 ${xw[-1]} qps, unbound ${uw[-1]} qps"
    done
    for r in $(seq 1 "$runs"); do
        miss_file "x$t-$r"
        xm+=("$(perf "$XLAT" "$dir/miss.txt" "$duration")")
        sent="$(awk '/Queries sent:/ {print $3}' "$dir/last-dnsperf.txt")"
        [ "$sent" -le "$miss_lines" ] || echo "warning: xlat64 miss run $r reused names ($sent > $miss_lines)"
        miss_file "u$t-$r"
        um+=("$(perf "$UNB" "$dir/miss.txt" "$duration")")
        sent="$(awk '/Queries sent:/ {print $3}' "$dir/last-dnsperf.txt")"
        [ "$sent" -le "$miss_lines" ] || echo "warning: unbound miss run $r reused names ($sent > $miss_lines)"
        echo "run $r miss: xlat64 ${xm[-1]} qps, unbound ${um[-1]} qps"
    done
    xwm="$(printf '%s\n' "${xw[@]}" | median)"
    uwm="$(printf '%s\n' "${uw[@]}" | median)"
    xmm="$(printf '%s\n' "${xm[@]}" | median)"
    umm="$(printf '%s\n' "${um[@]}" | median)"
    stats="$("$exe" stats --json --config "$dir/xlat64.toml" 2>/dev/null || true)"
    hits="$(grep -o '"dns64_cache_hits": *[0-9]*' <<<"$stats" | grep -o '[0-9]*$' || echo '?')"
    misses="$(grep -o '"dns64_cache_misses": *[0-9]*' <<<"$stats" | grep -o '[0-9]*$' || echo '?')"
    echo "(xlat64 cache with $t thread(s): $hits hits, $misses misses)"
    table+=("$(printf '%-8s %-6s %14.0f %14.0f %7.2fx' "$t" warm "$xwm" "$uwm" "$(awk -v a="$xwm" -v b="$uwm" 'BEGIN {print a / b}')")")
    table+=("$(printf '%-8s %-6s %14.0f %14.0f %7.2fx' "$t" miss "$xmm" "$umm" "$(awk -v a="$xmm" -v b="$umm" 'BEGIN {print a / b}')")")
    if [ -z "$first_t" ]; then first_t="$t"; first_x="$xwm"; first_u="$uwm"; fi
    last_t="$t"; last_x="$xwm"; last_u="$uwm"
    stop_servers
done
echo
printf '%-8s %-6s %14s %14s %8s\n' threads mode "xlat64 qps" "unbound qps" ratio
printf '%s\n' "${table[@]}"
if [ "$first_t" != "$last_t" ]; then
    printf 'warm scaling %s -> %s threads: xlat64 %.2fx, unbound %.2fx\n' "$first_t" "$last_t" \
        "$(awk -v a="$last_x" -v b="$first_x" 'BEGIN {print a / b}')" \
        "$(awk -v a="$last_u" -v b="$first_u" 'BEGIN {print a / b}')"
fi
echo "(medians of $runs run(s) of ${duration}s each)"
