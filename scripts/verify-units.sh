#!/usr/bin/env bash
# Checks systemd/lookaheadd.{service,socket} and the lookaheadd-rpc@ template exactly as `make install`
# places them, with systemd-analyze.
# Usage: scripts/verify-units.sh [DIR]   — DIR holds the three units (default: systemd/ of this repo);
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
RPC_BIN=/usr/local/bin/lookaheadd-rpc-server
# Exposure ×10 as systemd-analyze security scores it (currently 1.0): fails when the sandbox is weakened.
MAX_EXPOSURE=20

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root$(dirname "$BIN")"
cp -a "$(readlink -f /usr/lib/systemd/system)" "$root/usr/lib/systemd/system"
cp "$UNITS/lookaheadd.service" "$UNITS/lookaheadd.socket" "$UNITS/lookaheadd-rpc@.service" "$root/etc/systemd/system/"
# /bin/sh too: the rpc template's ExecStart takes its instance (HOST:PORT) apart with it.
mkdir -p "$root/bin"
for stub in "$BIN" "$RPC_BIN" /bin/sh; do
  printf '#!/bin/sh\nexit 0\n' > "$root$stub"
  chmod +x "$root$stub"
done

grep -qx "ExecStart=$BIN --config /etc/lookaheadd/lookaheadd.conf" "$UNITS/lookaheadd.service" \
  || die "lookaheadd.service: ExecStart is not the installed path $BIN --config /etc/lookaheadd/lookaheadd.conf"

# The template as an instance, its colon escaped: verify --root cannot resolve a literal one ("Couldn't
# process aliases"), while systemctl takes both spellings.
# verify exits 0 on many problems (unknown keys, bad values, only warned about): stderr output fails too.
if ! findings=$(systemd-analyze verify --root="$root" lookaheadd.socket lookaheadd.service \
    'lookaheadd-rpc@127.0.0.1\x3a50052.service' 2>&1 >/dev/null) \
   || [ -n "$findings" ]; then
  die "systemd-analyze verify:"$'\n'"$findings"
fi

systemd-analyze security --offline=yes --root="$root" --threshold="$MAX_EXPOSURE" lookaheadd.service >/dev/null 2>&1 \
  || die "lookaheadd.service: sandbox exposure above $MAX_EXPOSURE/100:"$'\n'"$(systemd-analyze security --offline=yes --root="$root" lookaheadd.service 2>&1 | grep -v '✓')"
say "lookaheadd.service, lookaheadd.socket and lookaheadd-rpc@.service verified"
