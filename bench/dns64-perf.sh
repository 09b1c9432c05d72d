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
#   ceiling: NSD itself answering A for the warm names from its zone: the
#         most this dnsperf drives on this machine, whatever the server.
# Each run also reports the server's CPU use (cores busy): when neither
# server keeps a core busy, dnsperf (and the kernel's UDP path, most of
# either server's time) sets the pace, and the per-core ratio says more.
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
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
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
# Killed or interrupted: still clean up (bash runs no EXIT trap on a signal it does not trap).
trap "exit 1" INT TERM
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
ip netns exec "$ns" nsd -d -c "$dir/nsd/nsd.conf" > "$dir/nsd.out" 2>&1 &
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
    # Not through the in_ns function: $! must be the server itself (ip
    # execs it), not a subshell whose death would leave it running.
    ip netns exec "$ns" "$exe" run --config "$dir/xlat64.toml" > "$dir/xlat64.log" 2>&1 &
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
    ip netns exec "$ns" unbound -d -c "$dir/unbound/unbound.conf" > "$dir/unbound.log" 2>&1 &
    server_pids+=($!); pids+=($!)
    wait_udp "[$XLAT]" xlat64 "$dir/xlat64.log"
    wait_udp "[$UNB]" unbound "$dir/unbound.log"
    xlat_pid="$(listener_pids "[$XLAT]")"
    unb_pid="$(listener_pids "[$UNB]")"
}
# The processes listening on UDP port 53 of an address (Unbound may fork
# one per thread), as a comma-separated list.
listener_pids() { in_ns ss -Hlnup "src $1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | paste -sd,; }
# CPU time (user + system, all threads) processes have used, in clock ticks.
cpu_ticks() { # comma-separated pids
    local p total=0
    # utime and stime are fields 14 and 15, counted after the name in
    # parentheses, which may hold spaces ("nsd: server 1").
    for p in ${1//,/ }; do
        total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}
hz="$(getconf CLK_TCK)"
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
    echo "error: a server still listens after being stopped: the next figures would mix two servers" >&2
    exit 1
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

# dnsperf <server> <file> <seconds or 0 for one pass> <server pid>; prints
# qps and the server's CPU use over the run (cores busy), or fails.
perf() {
    local server="$1" file="$2" secs="$3" pid="$4" out before after
    local args=(-s "$server" -d "$file" -c 4 -q 64 -t 2)
    if [ "$secs" = 0 ]; then args+=(-n 1); else args+=(-l "$secs"); fi
    before="$(cpu_ticks "$pid")"
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
    after="$(cpu_ticks "$pid")"
    awk -v q="$qps" -v t="$((after - before))" -v hz="$hz" \
        -v run="$(awk '/Run time \(s\):/ {print $4}' <<<"$out")" \
        'BEGIN {printf "%s %.3f\n", q, t / hz / run}'
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
# The load generator's ceiling: NSD answering A queries for the same names
# from its zone (no recursion, no DNS64, one server process). Neither DNS64
# server can be measured above what dnsperf drives on this machine.
for i in $(seq 1 $WARM_NAMES); do echo "w$i.bench.test A"; done > "$dir/ceiling.txt"
nsd_pids="$(listener_pids "$NSD")"
ceil=()
for r in $(seq 1 "$runs"); do
    got="$(perf "$NSD" "$dir/ceiling.txt" "$duration" "$nsd_pids")"
    ceil+=("${got% *}")
    # NSD's own CPU use is not shown: its server process may be replaced
    # (a reload after start), and one run read a figure near zero.
    echo "run $r ceiling: nsd ${got% *} qps"
done
ceiling="$(printf '%s\n' "${ceil[@]}" | median)"
table=()
first_t=""; first_x=""; first_u=""; last_t=""; last_x=""; last_u=""
# run <label array prefix> <server> <file> <pid>: appends qps and cores
# busy to the arrays <prefix>q and <prefix>c.
run() {
    local got
    got="$(perf "$2" "$3" "$duration" "$4")"
    eval "$1q+=(${got% *}); $1c+=(${got#* })"
}
# ratio a b -> a / b
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {print a / b}'; }
row() { # threads mode xlat-qps unbound-qps xlat-cores unbound-cores
    printf '%-8s %-6s %12.0f %12.0f %7.2fx %8.2f %8.2f %7.2fx' "$1" "$2" "$3" "$4" "$(ratio "$3" "$4")" \
        "$5" "$6" "$(awk -v a="$3" -v b="$4" -v c="$5" -v d="$6" 'BEGIN {print (a / c) / (b / d)}')"
}
for t in $threads; do
    start_servers "$t"
    if command -v dig >/dev/null; then
        check_answer "$XLAT" xlat64
        check_answer "$UNB" unbound
    fi
    echo "== $t thread(s) each; warm-up: one pass over $WARM_NAMES names per server"
    perf "$XLAT" "$dir/warm.txt" 0 "$xlat_pid" >/dev/null
    perf "$UNB" "$dir/warm.txt" 0 "$unb_pid" >/dev/null
    xwq=(); uwq=(); xmq=(); umq=(); xwc=(); uwc=(); xmc=(); umc=()
    for r in $(seq 1 "$runs"); do
        run xw "$XLAT" "$dir/warm.txt" "$xlat_pid"
        run uw "$UNB" "$dir/warm.txt" "$unb_pid"
        echo "run $r warm: xlat64 ${xwq[-1]} qps (${xwc[-1]} cores busy), unbound ${uwq[-1]} qps (${uwc[-1]} cores busy)"
    done
    for r in $(seq 1 "$runs"); do
        miss_file "x$t-$r"
        run xm "$XLAT" "$dir/miss.txt" "$xlat_pid"
        sent="$(awk '/Queries sent:/ {print $3}' "$dir/last-dnsperf.txt")"
        [ "$sent" -le "$miss_lines" ] || echo "warning: xlat64 miss run $r reused names ($sent > $miss_lines)"
        miss_file "u$t-$r"
        run um "$UNB" "$dir/miss.txt" "$unb_pid"
        sent="$(awk '/Queries sent:/ {print $3}' "$dir/last-dnsperf.txt")"
        [ "$sent" -le "$miss_lines" ] || echo "warning: unbound miss run $r reused names ($sent > $miss_lines)"
        echo "run $r miss: xlat64 ${xmq[-1]} qps (${xmc[-1]} cores busy), unbound ${umq[-1]} qps (${umc[-1]} cores busy)"
    done
    med() { printf '%s\n' "$@" | median; }
    xwm="$(med "${xwq[@]}")"; uwm="$(med "${uwq[@]}")"; xmm="$(med "${xmq[@]}")"; umm="$(med "${umq[@]}")"
    stats="$("$exe" stats --json --config "$dir/xlat64.toml" 2>/dev/null || true)"
    hits="$(grep -o '"dns64_cache_hits": *[0-9]*' <<<"$stats" | grep -o '[0-9]*$' || echo '?')"
    misses="$(grep -o '"dns64_cache_misses": *[0-9]*' <<<"$stats" | grep -o '[0-9]*$' || echo '?')"
    echo "(xlat64 cache with $t thread(s): $hits hits, $misses misses)"
    table+=("$(row "$t" warm "$xwm" "$uwm" "$(med "${xwc[@]}")" "$(med "${uwc[@]}")")")
    table+=("$(row "$t" miss "$xmm" "$umm" "$(med "${xmc[@]}")" "$(med "${umc[@]}")")")
    if [ -z "$first_t" ]; then first_t="$t"; first_x="$xwm"; first_u="$uwm"; fi
    last_t="$t"; last_x="$xwm"; last_u="$uwm"
    stop_servers
done
echo
printf '%-8s %-6s %12s %12s %8s %8s %8s %8s\n' threads mode "xlat64 qps" "unbound qps" ratio \
    "x cores" "u cores" "per core"
printf '%s\n' "${table[@]}"
printf 'ceiling: NSD answering A from its zone, %.0f qps (IPv4; xlat64 warm 1 thread at %.2f of it)\n' \
    "$ceiling" "$(ratio "$first_x" "$ceiling")"
if [ "$first_t" != "$last_t" ]; then
    printf 'warm scaling %s -> %s threads: xlat64 %.2fx, unbound %.2fx\n' "$first_t" "$last_t" \
        "$(ratio "$last_x" "$first_x")" "$(ratio "$last_u" "$first_u")"
fi
echo "(qps: medians of $runs run(s) of ${duration}s each; cores: median CPU time of the"
echo " server process per second of run, all threads; per core: ratio of qps per busy core)"
