#!/usr/bin/env bash
# Builds the package, installs it, checks the installed files work
# (xlat64 check on the installed configuration, the unit verified, the man
# page and completions in place), and removes it again, purging its
# configuration. Run as root; CI runs it last (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(packaging/deb.sh | tail -1)
if dpkg -s xlat64 >/dev/null 2>&1; then
    echo "error: an xlat64 package is installed already; not touching it" >&2
    exit 1
fi
dpkg -i "$deb"
trap 'dpkg --purge xlat64 >/dev/null 2>&1 || true' EXIT
/usr/bin/xlat64 check | head -1 | grep -q '^# configuration from /etc/xlat64/xlat64.toml$'
systemd-analyze verify /lib/systemd/system/xlat64.service
test -s /usr/share/man/man8/xlat64.8.gz
zcat /usr/share/man/man8/xlat64.8.gz | grep -q '^\.TH xlat64 8'
test -s /usr/share/bash-completion/completions/xlat64
dpkg --purge xlat64
trap - EXIT
for f in /usr/bin/xlat64 /lib/systemd/system/xlat64.service /etc/xlat64/xlat64.toml /usr/share/man/man8/xlat64.8.gz; do
    if [ -e "$f" ]; then
        echo "error: $f left after purge" >&2
        exit 1
    fi
done
echo "package $(basename "$deb"): built, installed, checked, purged"
