#!/usr/bin/env bash
# Fuzzes the protocol module (framing, the json-c codec, message and params parsing) with libFuzzer.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60)
#
# Tests/Fuzz/ProtocolFuzzer.swift and Sources/LookaheadProtocol are compiled as one module with
# -sanitize=fuzzer,address into .build-fuzz/ (rebuilt when a source is newer), then run on one core
# from a scratch copy of Tests/Fuzz/corpus, so the checked-in seeds never grow. Prints executions and
# exec/s; exits non-zero on a crash, a leak, a timeout or running out of memory, naming the input
# that did it (kept in .build-fuzz/crashes/).
. "$(dirname "$0")/common.sh"

cd "$(dirname "$0")/.."
SECS="${1:-60}"
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || die "usage: scripts/fuzz.sh [SECONDS]"
need swiftc swift
need pkg-config pkg-config
pkg-config --exists json-c || die "json-c is not installed (Debian: apt-get install libjson-c-dev)"

OUT=.build-fuzz
BIN="$OUT/protocol-fuzzer"
SOURCES=(Sources/LookaheadProtocol/*.swift Tests/Fuzz/ProtocolFuzzer.swift)

if [ ! -x "$BIN" ] || [ -n "$(find "${SOURCES[@]}" Sources/CJSONC "$0" -newer "$BIN" | head -1)" ]; then
  say "building $BIN"
  mkdir -p "$OUT"
  cflags=()
  for flag in $(pkg-config --cflags json-c); do cflags+=(-Xcc "$flag"); done
  # -O keeps preconditions (only -Ounchecked drops them) and runs several times as many inputs as -Onone.
  # lld, from the toolchain: gold warns about every ASan symbol it cannot export.
  nice -n 19 swiftc -sanitize=fuzzer,address -parse-as-library -swift-version 6 -O -g \
    -module-name LookaheadProtocol -package-name lookaheadd -module-cache-path "$OUT/module-cache" \
    -I Sources/CJSONC "${cflags[@]}" -use-ld=lld "${SOURCES[@]}" $(pkg-config --libs json-c) -o "$BIN.new"
  mv "$BIN.new" "$BIN"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$OUT/crashes"
cp Tests/Fuzz/corpus/* "$work/corpus/"

say "fuzzing for ${SECS}s (log: $work/fuzz.log, kept on failure as $OUT/last-failure.log)"
status=0
start=$(date +%s)
# The Swift runtime's own backtracer would take over a trap and leave libFuzzer without its report.
SWIFT_BACKTRACE=enable=no nice -n 19 "$BIN" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=65536 \
  -timeout=10 -print_final_stats=1 -dict=Tests/Fuzz/protocol.dict -artifact_prefix="$OUT/crashes/" \
  "$work/corpus" >"$work/fuzz.log" 2>&1 || status=$?

final_stat() { sed -n "s/^stat::$1: *//p" "$work/fuzz.log"; }
echo "fuzz: $(final_stat number_of_executed_units) executions in $(($(date +%s) - start))s," \
  "$(final_stat average_exec_per_sec) exec/s, $(ls "$work/corpus" | wc -l) corpus units," \
  "peak RSS $(final_stat peak_rss_mb) MB"

if [ "$status" -ne 0 ]; then
  cp "$work/fuzz.log" "$OUT/last-failure.log"
  grep -E 'Fatal error|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|SUMMARY' "$work/fuzz.log" >&2 || tail -30 "$work/fuzz.log" >&2
  input=$(sed -n 's/.*Test unit written to //p' "$work/fuzz.log" | tail -1)
  [ -n "$input" ] || die "the fuzzer failed (exit $status) without saving an input; see $OUT/last-failure.log"
  die "the fuzzer found a failing input: $input (exit $status; reproduce: SWIFT_BACKTRACE=enable=no $BIN $input)"
fi
