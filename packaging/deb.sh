#!/usr/bin/env bash
# Builds target/deb/xlat64_VERSION_ARCH.deb with dpkg-deb: the release
# binary, the systemd unit, a commented /etc/xlat64/xlat64.toml (a
# conffile), the man page and bash/zsh/fish completions generated from the
# command-line definition.
#   packaging/deb.sh            build the package
#   dpkg -i target/deb/xlat64_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p xlat64 --bin xlat64
exe=target/release/xlat64
version=$(cargo metadata --no-deps --format-version 1 \
    | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="xlat64"))')
arch=$(dpkg --print-architecture)
root=target/deb/xlat64_${version}_${arch}
rm -rf "$root"
install -D -m 755 "$exe" "$root/usr/bin/xlat64"
install -D -m 644 contrib/systemd/xlat64.service "$root/lib/systemd/system/xlat64.service"
install -D -m 644 contrib/xlat64.toml "$root/etc/xlat64/xlat64.toml"
mkdir -p "$root/usr/share/man/man8"
"$exe" generate man | gzip -9n > "$root/usr/share/man/man8/xlat64.8.gz"
install -d "$root/usr/share/bash-completion/completions" \
    "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
"$exe" generate bash > "$root/usr/share/bash-completion/completions/xlat64"
"$exe" generate zsh > "$root/usr/share/zsh/vendor-completions/_xlat64"
"$exe" generate fish > "$root/usr/share/fish/vendor_completions.d/xlat64.fish"
install -D -m 644 README.md "$root/usr/share/doc/xlat64/README.md"
install -D -m 644 LICENSE-MIT "$root/usr/share/doc/xlat64/LICENSE-MIT"
install -D -m 644 LICENSE-APACHE "$root/usr/share/doc/xlat64/LICENSE-APACHE"

mkdir -p "$root/DEBIAN"
size=$(du -sk "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: xlat64
Version: $version
Architecture: $arch
Maintainer: xlat64 developers <xlat64@example.org>
Installed-Size: $size
Depends: libc6
Section: net
Priority: optional
Homepage: https://github.com/xlat64/xlat64
Description: IPv6 transition gateway: DNS64 and stateful NAT64
 Lets IPv6-only clients reach IPv4-only servers: AAAA answers synthesized
 from A records (RFC 6147) and stateful NAT64 (RFC 6146, RFC 7915) on a TUN
 device, with carrier features (limits, port blocks, binding log).
CONTROL
echo /etc/xlat64/xlat64.toml > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
SCRIPT
cat > "$root/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop xlat64.service || true
    systemctl disable xlat64.service || true
fi
SCRIPT
cat > "$root/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
    rm -rf /var/log/xlat64
fi
SCRIPT
chmod 755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
dpkg-deb --root-owner-group --build "$root" >/dev/null
echo "$root.deb"
