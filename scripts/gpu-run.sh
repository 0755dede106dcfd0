#!/usr/bin/env bash
# The device side of the GPU benchmark: run from the folder scripts/gpu-pack.sh writes (.gpu/, where
# this script is run.sh), on a machine with no Swift toolchain, no network and no pip. Needs cmake,
# gcc/g++, python3 with numpy, and for --flavour cuda nvcc; ninja if there is one.
#
# Phases, each timed: check the pack's sha256s; unpack lookaheadctl and the trimmed llama.cpp; build
# libllama alone (deps.sh, CUDA sm_90) while writing random-weight qwen2 GGUFs of real Qwen2.5
# shapes (7B target, 0.5B draft, one vocabulary); then measure, most important first, each under
# what is left of --budget: pass costs T(n)/T(1) and c (`lookaheadctl passes`); speed-up over ar
# of lookahead and lookahead+sd at each α of --alphas (seeded random verifier, speculation always
# on) at γ* = ⌈1/c⌉ and γ = 4; 1/8/32 sessions at once, ar vs lookahead, adaptive
# (`bench --sessions`). Writes to $OUT (or --out): summary.txt, summary.json, results.tar.gz (every
# report, chart and log) and run.log.
#
# Usage: bash .gpu/run.sh [--flavour cuda|cpu] [--target SHAPE] [--draft SHAPE] [--alphas "0.6 0.4 0.8"]
#          [--problems N] [--max-tokens N] [--step-tokens N] [--sessions 1,8,32] [--crowd-tokens N]
#          [--threads N] [--budget SECONDS] [--out DIR] [--work DIR]
# Shapes: qwen2.5-7b, qwen2.5-1.5b, qwen2.5-0.5b, tiny. `--flavour cpu --target tiny --draft tiny`
# is the dry run a CPU box can do (docs/benchmarks.md); only a GPU's numbers mean anything.
HERE="$(cd "$(dirname "$0")" && pwd)"
# common.sh derives the cache from $HOME, which a bare container may not set.
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}"
. "$HERE/common.sh"
START=$(date +%s)

FLAVOUR=cuda TARGET_SHAPE=qwen2.5-7b DRAFT_SHAPE=qwen2.5-0.5b ALPHAS="0.6 0.4 0.8" PROBLEMS=3 MAX_TOKENS=256
STEP_TOKENS=32 SESSIONS=1,8,32 CROWD_TOKENS=128 THREADS=8 BUDGET=470 OUT_DIR="${OUT:-}" WORK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --flavour) FLAVOUR=$2; shift 2 ;;
    --target) TARGET_SHAPE=$2; shift 2 ;;
    --draft) DRAFT_SHAPE=$2; shift 2 ;;
    --alphas) ALPHAS=$2; shift 2 ;;
    --problems) PROBLEMS=$2; shift 2 ;;
    --max-tokens) MAX_TOKENS=$2; shift 2 ;;
    --step-tokens) STEP_TOKENS=$2; shift 2 ;;
    --sessions) SESSIONS=$2; shift 2 ;;
    --crowd-tokens) CROWD_TOKENS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$OUT_DIR" ] || die "no output directory: set \$OUT or pass --out"
WORK="${WORK:-$CACHE_ROOT/gpu-run}"
RES="$WORK/results"
# Results are this run's alone; the build and the models stay cached for the next run.
rm -rf "$RES"
mkdir -p "$OUT_DIR" "$WORK/bin" "$RES"
exec > >(tee "$OUT_DIR/run.log") 2>&1

# Phase clock: `phase NAME` closes the running phase and opens NAME; each is one line of phases.tsv.
CURRENT="" SINCE=$START
phase() {
  local now; now=$(date +%s)
  [ -z "$CURRENT" ] || { printf '%s\t%s\n' "$CURRENT" $((now - SINCE)) >> "$RES/phases.tsv"; say "phase $CURRENT: $((now - SINCE)) s"; }
  CURRENT=$1 SINCE=$now
}
left() { echo $((START + BUDGET - $(date +%s))); }
: > "$RES/phases.tsv"

# On any exit — done, a failed phase, or the device tool's timeout (SIGTERM) — what was measured is
# summarised and packed into $OUT, which is all that comes back.
finish() {
  local rc=$?
  trap - EXIT TERM INT
  phase summary
  python3 "$HERE/gpu-summary.py" "$RES" "$FLAVOUR" "$TARGET_SHAPE" "$DRAFT_SHAPE" > "$RES/summary.txt" 2>&1 || true
  cp "$RES/summary.txt" "$RES/summary.json" "$OUT_DIR/" 2>/dev/null || true
  tar -czf "$OUT_DIR/results.tar.gz" -C "$RES" .
  cat "$RES/summary.txt"
  say "exit $rc after $(($(date +%s) - START)) s; wrote $OUT_DIR/{summary.txt,summary.json,results.tar.gz,run.log}"
  exit $rc
}
trap finish EXIT
trap 'exit 143' TERM INT

# The pack is written once and carried whole; a torn or edited copy should stop here, not in a build.
phase verify
missing=()
for tool in cmake cc c++ python3 timeout sha256sum ldd; do command -v $tool >/dev/null 2>&1 || missing+=("$tool"); done
if [ "$FLAVOUR" = cuda ]; then
  # CUDA images install the toolkit in /usr/local/cuda without always putting it on PATH.
  command -v nvcc >/dev/null 2>&1 || [ ! -x /usr/local/cuda/bin/nvcc ] || export PATH="/usr/local/cuda/bin:$PATH"
  command -v nvcc >/dev/null 2>&1 || missing+=("nvcc (add the CUDA toolkit's bin to PATH)")
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || say "nvidia-smi failed: is a GPU visible?"
  fi
fi
python3 -c 'import numpy' 2>/dev/null || missing+=("python3 numpy")
[ ${#missing[@]} -eq 0 ] || die "missing: $(printf '%s; ' "${missing[@]}")"
(cd "$HERE" && sha256sum --quiet -c SHA256SUMS) || die "$HERE/SHA256SUMS: the pack does not match its checksums"
cp "$HERE/MANIFEST" "$RES/manifest.txt"

phase unpack
# Python's lzma, not xz(1): a bare image may lack xz-utils.
python3 - "$HERE" "$WORK" <<'PY'
import lzma, os, shutil, sys, tarfile
here, work = sys.argv[1], sys.argv[2]
with lzma.open(os.path.join(here, "lookaheadctl.xz")) as src, open(os.path.join(work, "bin", "lookaheadctl"), "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
os.chmod(os.path.join(work, "bin", "lookaheadctl"), 0o755)
shutil.rmtree(os.path.join(work, "llama.cpp"), ignore_errors=True)
with tarfile.open(os.path.join(here, "llama.cpp.tar.xz")) as tar:
    # The "data" filter (no links out, no devices) where this Python has it (3.12, and backports).
    tar.extractall(work, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
PY
BIN="$WORK/bin/lookaheadctl"

# The GGUF writer is single-threaded Python: it runs beside the build, which takes every core.
phase "build+models (wall)"
MODELS="$CACHE_ROOT/synth/$TARGET_SHAPE+$DRAFT_SHAPE"
mkdir -p "$MODELS"
(
  for role in target:"$TARGET_SHAPE":1 draft:"$DRAFT_SHAPE":2; do
    IFS=: read -r name shape seed <<< "$role"
    [ -f "$MODELS/$name.gguf" ] && continue
    t0=$(date +%s)
    python3 "$HERE/synth-gguf.py" --shape "$shape" --seed "$seed" --gguf-py "$WORK/llama.cpp/gguf-py" \
      --out "$MODELS/$name.gguf.partial"
    mv "$MODELS/$name.gguf.partial" "$MODELS/$name.gguf"
    printf 'write %s.gguf (%s)\t%s\n' "$name" "$shape" $(($(date +%s) - t0)) >> "$RES/phases.tsv"
  done
) > "$RES/synth.log" 2>&1 &
SYNTH=$!
t0=$(date +%s)
if ! LLAMA_SRC="$WORK/llama.cpp" bash "$HERE/deps.sh" "$FLAVOUR" --lib-only > "$RES/build.log" 2>&1; then
  tail -40 "$RES/build.log"; die "the llama.cpp build failed (log above; whole in results.tar.gz)"
fi
printf 'build libllama (%s)\t%s\n' "$FLAVOUR" $(($(date +%s) - t0)) >> "$RES/phases.tsv"
wait $SYNTH || { cat "$RES/synth.log"; die "writing the GGUFs failed"; }
PREFIX=$(llama_prefix "$FLAVOUR" lib)
ls -l "$MODELS"

# The carried libraries (json-c, libsystemd, …) and the freshly built libllama, for lookaheadctl
# alone: the machine's own tools (python's lzma, cmake) keep their own versions of liblzma and co.
LIBS="LD_LIBRARY_PATH=$PREFIX/lib:$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
CTL=(env "$LIBS" "$BIN")
unresolved=$(env "$LIBS" ldd "$BIN" | grep 'not found' || true)
[ -z "$unresolved" ] || die "$BIN needs libraries this machine lacks: $unresolved"
"${CTL[@]}" passes --help > /dev/null || die "$BIN does not run here (its glibc? the manifest names the version it needs)"

# Prompts do not matter to random weights; only their length does (about a GSM8K question's). One
# per session of the largest crowd, so no two sessions share a prompt (nor a prompt cache's cells).
CROWD_MAX=$(tr ',' '\n' <<< "$SESSIONS" | sort -n | tail -1)
DATA="$RES/problems.jsonl"
python3 - "$DATA" $((PROBLEMS > CROWD_MAX ? PROBLEMS : CROWD_MAX)) <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(max(int(sys.argv[2]), 1)):
        q = ("Problem %d. A farmer has %d hens; each lays %d eggs a day. She sells them at $%d a dozen "
             "after keeping %d for breakfast. How much does she make in a week?") % (i, 10 + i, 3 + i % 4, 2 + i % 3, 4)
        f.write(json.dumps({"question": q, "answer": "#### 0"}) + "\n")
PY
GPU_LAYERS=0; [ "$FLAVOUR" = cuda ] && GPU_LAYERS=999
COMMON=(--models "$MODELS" --threads "$THREADS" --gpu-layers "$GPU_LAYERS")

# measure NAME MIN_SECONDS CMD…: runs CMD under what is left of the budget, its output in NAME.txt;
# skipped when less than MIN_SECONDS is left, so the phases that ran still come back.
measure() {
  local name=$1 min=$2; shift 2
  phase "$name"
  if [ "$(left)" -lt "$min" ]; then
    say "$name: skipped, $(left) s of the budget left"; echo "skipped: budget" > "$RES/$name.txt"; return
  fi
  say "$name (≤ $(left) s)"
  timeout "$(left)" "$@" > >(tee "$RES/$name.txt") 2> "$RES/$name.log" \
    || { echo "failed or timed out: exit $?" >> "$RES/$name.txt"; tail -5 "$RES/$name.log"; }
}

measure passes 20 "${CTL[@]}" passes "${COMMON[@]}" --rows 1,2,4,8,16,32,64 --repeats 10 --json "$RES/passes.json"
# A CUDA run whose models stayed on the CPU would time the CPU: stop rather than report that as the GPU.
if [ "$FLAVOUR" = cuda ] && [ -f "$RES/passes.json" ] && python3 -c 'import json, sys
sys.exit(json.load(open(sys.argv[1]))["target"]["device"] != "CPU")' "$RES/passes.json"; then
  die "the models were not offloaded to a GPU (passes.json says CPU): see passes.log in results.tar.gz"
fi
GAMMA_STAR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gamma_star"] or 4)' "$RES/passes.json" 2>/dev/null || echo 4)
GAMMAS=$(printf '%s\n' "$GAMMA_STAR" 4 | sort -un | tr '\n' ' ')
say "γ* = $GAMMA_STAR; α sweep at γ $GAMMAS"

first=1
for alpha in $ALPHAS; do
  for gamma in $GAMMAS; do
    measure "alpha-$alpha-g$gamma" 30 "${CTL[@]}" bench "${COMMON[@]}" --data "$DATA" --limit "$PROBLEMS" \
      --modes ar,lookahead,lookahead+sd --gamma "$gamma" --verifier "random:$alpha" --fixed-steps --no-adaptive \
      --step-tokens "$STEP_TOKENS" --max-tokens "$MAX_TOKENS" \
      --json "$RES/alpha-$alpha-g$gamma.json" --svg "$RES/alpha-$alpha-g$gamma.svg"
  done
  # The first α at both depths, then the crowd, then the other αs: the budget cuts the least wanted.
  if [ $first = 1 ]; then
    first=0
    measure sessions 40 "${CTL[@]}" bench "${COMMON[@]}" --data "$DATA" --limit "$CROWD_MAX" --modes ar,lookahead \
      --gamma 4 --verifier "random:$alpha" --fixed-steps --step-tokens "$STEP_TOKENS" --max-tokens "$CROWD_TOKENS" \
      --sessions "$SESSIONS" --context-length 32768 --json "$RES/sessions.json"
  fi
done

