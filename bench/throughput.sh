#!/usr/bin/env bash
# Throughput, packet rate, round trip and CPU cost of xlat64 against TAYGA and
# against plain kernel IPv6 forwarding between the same namespaces, in one run
# with the contenders alternating; medians of the rounds and their ratios.
#
#   TCP: iperf3 single stream both ways (-R), 4 clients x 1 stream, 1 client -P 4
#   UDP: 18-byte datagrams per second received by the server's interface
#        (sendmmsg sender in the client namespace, 8 source ports)
#   RTT: ping -6 -c 50 -i 0.01, median
#   CPU: translator utime+stime per gigabit in the single-stream runs
#
# Usage: bench/throughput.sh [--runs N] [--seconds S]
#   --runs     rounds (default 5); --seconds  seconds per measurement (default 5)
#   smoke run: bench/throughput.sh --runs 1 --seconds 1
# The xlat64 binary is target/release/xlat64 (built here), or $XLAT64_BIN.
# Needs root and iproute2; installs iperf3, iputils-ping and tayga with apt-get
# if missing (without starting the tayga service). Exits 1 only if nothing got
# through xlat64 or the kernel path; TAYGA that cannot be set up is reported n/a.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "error: needs root (it builds network namespaces)" >&2
    exit 1
fi

# apt-get install without starting any service a package ships (tayga's
# init script would otherwise set up a NAT64 with NAT44 in the root namespace).
apt_install() {
    local policy=/usr/sbin/policy-rc.d added=false rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        added=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" ||
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; } ||
        rc=$?
    if [ "$added" = true ]; then rm -f "$policy"; fi
    return "$rc"
}
have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

command -v ip >/dev/null || { echo "error: needs ip (iproute2)" >&2; exit 1; }
for pair in iperf3:iperf3 ping:iputils-ping; do
    tool="${pair%%:*}" pkg="${pair#*:}"
    if ! have "$tool"; then
        apt_install "$pkg" >&2 || { echo "error: $tool is missing and $pkg could not be installed" >&2; exit 1; }
    fi
done
if ! have tayga; then
    apt_install tayga >&2 || echo "warning: tayga could not be installed; its columns will be n/a" >&2
fi

if [ -z "${XLAT64_BIN:-}" ]; then
    cargo build --release -p xlat64 --bin xlat64
fi
exec cargo run --release -p xlat64-lab --example throughput -- "$@"
