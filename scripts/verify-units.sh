#!/usr/bin/env bash
# Checks systemd/lookaheadd.{service,socket} exactly as `make install` places them, with systemd-analyze.
# Usage: scripts/verify-units.sh [DIR]   — DIR holds the two units (default: systemd/ of this repo);
# exits non-zero and prints the findings when a unit has a problem.
#
# The units are verified unmodified inside a scratch root (--root=): they sit in /etc/systemd/system,
# an executable stub stands at the installed ExecStart path (/usr/local/bin/lookaheadd, absent on CI and
# dev machines, and verify rejects a command that is not executable), and the host's own units are copied
# in so dependencies such as sockets.target resolve. Users and groups are not checked by verify.
. "$(dirname "$0")/common.sh"

need systemd-analyze systemd
UNITS="${1:-$(dirname "$0")/../systemd}"
BIN=/usr/local/bin/lookaheadd
# Exposure ×10 as systemd-analyze security scores it (currently 1.0): fails when the sandbox is weakened.
MAX_EXPOSURE=20

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root$(dirname "$BIN")"
cp -a "$(readlink -f /usr/lib/systemd/system)" "$root/usr/lib/systemd/system"
cp "$UNITS/lookaheadd.service" "$UNITS/lookaheadd.socket" "$root/etc/systemd/system/"
printf '#!/bin/sh\nexit 0\n' > "$root$BIN"
chmod +x "$root$BIN"

grep -qx "ExecStart=$BIN --config /etc/lookaheadd/lookaheadd.conf" "$UNITS/lookaheadd.service" \
  || die "lookaheadd.service: ExecStart is not the installed path $BIN --config /etc/lookaheadd/lookaheadd.conf"

# verify exits 0 on many problems (unknown keys, bad values, only warned about): stderr output fails too.
if ! findings=$(systemd-analyze verify --root="$root" lookaheadd.socket lookaheadd.service 2>&1 >/dev/null) \
   || [ -n "$findings" ]; then
  die "systemd-analyze verify:"$'\n'"$findings"
fi

systemd-analyze security --offline=yes --root="$root" --threshold="$MAX_EXPOSURE" lookaheadd.service >/dev/null 2>&1 \
  || die "lookaheadd.service: sandbox exposure above $MAX_EXPOSURE/100:"$'\n'"$(systemd-analyze security --offline=yes --root="$root" lookaheadd.service 2>&1 | grep -v '✓')"
say "lookaheadd.service and lookaheadd.socket verified"
