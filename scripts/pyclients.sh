#!/usr/bin/env bash
# The Python clients the HTTP check runs (scripts/openai-check.py): the real `openai` package and
# prometheus_client, pinned, in a venv under the cache keyed by the pins. Prints the venv's python.
source "$(dirname "$0")/common.sh"
PINS="$PYCLIENT_PINS"
key=$(printf '%s' "$PINS" | sha256sum | cut -c1-12)
venv="$CACHE_ROOT/pyclients-$key"
if [ ! -f "$venv/.ready" ]; then
  say "creating the Python client venv ($PINS) in $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --progress-bar off $PINS >&2 || die "pip could not install $PINS into $venv"
  touch "$venv/.ready"
fi
echo "$venv/bin/python"
