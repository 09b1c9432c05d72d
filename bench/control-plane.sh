#!/usr/bin/env bash
# The control plane against a large session table: ping RTT through the
# gateway with and without `xlat64 sessions --json`, the listing's wall time,
# and the daemon's memory idle, full and after expiry.
# Needs root and iproute2. Usage: bench/control-plane.sh [--sessions N]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "error: needs root (it builds network namespaces)" >&2
    exit 1
fi
cargo build --release -p xlat64 --bin xlat64
exec cargo run --release -p xlat64-lab --example control_plane -- "$@"
