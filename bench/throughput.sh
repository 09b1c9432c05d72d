#!/usr/bin/env bash
# Single-stream iperf3 TCP throughput, IPv6-only client -> IPv4 server through
# xlat64, against plain kernel IPv6 forwarding between the same namespaces.
# Needs root, iproute2 and iperf3. Usage: bench/throughput.sh [--runs N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "error: needs root (it builds network namespaces)" >&2
    exit 1
fi
command -v iperf3 >/dev/null || { echo "error: iperf3 is not installed" >&2; exit 1; }
cargo build --release -p xlat64 --bin xlat64
exec cargo run --release -p xlat64-lab --example throughput -- "$@"
