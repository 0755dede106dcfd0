#!/usr/bin/env bash
# Speed-up vs α on a CUDA machine that has no Swift toolchain and no network: builds llama.cpp with
# CUDA from the sdist, writes random-weight qwen2 models of real Qwen2.5 shapes (the 7B as target,
# the 0.5B as draft, one vocabulary), and runs `lookaheadctl bench` with the verifier replaced by
# seeded random acceptance at each α (the paper's random-accept ablation), so the measured speed-up
# can be read against the paper's formula for that α and the measured c.
#
# Needs, beside this repo tree: a statically linked lookaheadctl
#   (swift build -c release --static-swift-stdlib --product lookaheadctl) and the llama-cpp-python
#   sdist (llama_cpp_python-0.3.36.tar.gz); cmake, gcc/g++, nvcc, python3 with numpy.
# Usage: scripts/gpu-bench.sh [--ctl PATH] [--sdist PATH] [--alphas "0.2 0.4 0.6 0.8"] [--gamma N]
#          [--problems N] [--max-tokens N] [--step-tokens N] [--threads N] [--target SHAPE] [--draft SHAPE]
#          [--flavour cuda|cpu] [--out DIR] [--run-timeout S]
# Shapes: qwen2.5-7b, qwen2.5-1.5b, qwen2.5-0.5b, tiny. `--flavour cpu --target tiny --draft tiny`
# runs the whole path on a CPU box in a minute (what CI can check); the numbers only mean something on a GPU.
. "$(dirname "$0")/common.sh"
REPO="$(cd "$(dirname "$0")/.." && pwd)"

CTL="" SDIST_IN="" ALPHAS="0.2 0.4 0.6 0.8" GAMMA=4 PROBLEMS=5 MAX_TOKENS=256 STEP_TOKENS=32 THREADS=4
TARGET_SHAPE=qwen2.5-7b DRAFT_SHAPE=qwen2.5-0.5b FLAVOUR=cuda OUT="$REPO/out/gpu-bench" RUN_TIMEOUT=900
while [ $# -gt 0 ]; do
  case "$1" in
    --ctl) CTL=$2; shift 2 ;;
    --sdist) SDIST_IN=$2; shift 2 ;;
    --alphas) ALPHAS=$2; shift 2 ;;
    --gamma) GAMMA=$2; shift 2 ;;
    --problems) PROBLEMS=$2; shift 2 ;;
    --max-tokens) MAX_TOKENS=$2; shift 2 ;;
    --step-tokens) STEP_TOKENS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --target) TARGET_SHAPE=$2; shift 2 ;;
    --draft) DRAFT_SHAPE=$2; shift 2 ;;
    --flavour) FLAVOUR=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --run-timeout) RUN_TIMEOUT=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# --- preflight: say everything that is missing at once, before any long step ---------------------
missing=()
for tool in cmake cc c++ python3 timeout; do command -v $tool >/dev/null 2>&1 || missing+=("$tool"); done
if [ "$FLAVOUR" = cuda ]; then
  command -v nvcc >/dev/null 2>&1 || missing+=("nvcc (CUDA toolkit; add /usr/local/cuda/bin to PATH)")
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2
fi
python3 -c 'import numpy' 2>/dev/null || missing+=("python3 numpy (apt-get install python3-numpy)")
if [ -z "$CTL" ]; then
  for c in "$REPO/lookaheadctl" "$REPO/.build/release/lookaheadctl"; do [ -x "$c" ] && { CTL=$c; break; }; done
fi
[ -n "$CTL" ] && [ -x "$CTL" ] || missing+=("lookaheadctl (pass --ctl; build it with --static-swift-stdlib)")
if [ ! -f "$SDIST" ]; then
  [ -n "$SDIST_IN" ] && [ -f "$SDIST_IN" ] || missing+=("the llama-cpp-python sdist (pass --sdist)")
fi
[ ${#missing[@]} -eq 0 ] || die "missing: $(printf '%s; ' "${missing[@]}")"

if [ ! -f "$SDIST" ]; then mkdir -p "$SDIST_DIR"; cp "$SDIST_IN" "$SDIST"; fi
fetch_sdist  # verifies the sha256 of what we were handed; downloads nothing when it matches

# --- llama.cpp ----------------------------------------------------------------------------------
"$REPO/scripts/deps.sh" "$FLAVOUR"
PREFIX=$(llama_prefix "$FLAVOUR")
# Libraries lookaheadctl could not bring statically (json-c, …) may be carried in lib/ beside it.
export LD_LIBRARY_PATH="$PREFIX/lib:$(dirname "$CTL")/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unresolved=$(ldd "$CTL" | grep 'not found' || true)
[ -z "$unresolved" ] || die "$CTL needs libraries this machine lacks (copy them into $(dirname "$CTL")/lib):
$unresolved"

# --- models: random weights, real shapes, cached by shape ---------------------------------------
MODELS="$CACHE_ROOT/synth/$TARGET_SHAPE+$DRAFT_SHAPE"
mkdir -p "$MODELS" "$OUT"
GGUF_PY="$CACHE_ROOT/src-$LLAMA_PY_VERSION/vendor/llama.cpp/gguf-py"
for role in target:"$TARGET_SHAPE":1 draft:"$DRAFT_SHAPE":2; do
  IFS=: read -r name shape seed <<< "$role"
  if [ ! -f "$MODELS/$name.gguf" ]; then
    say "writing $name.gguf ($shape, random F16 weights)"
    python3 "$REPO/scripts/synth-gguf.py" --shape "$shape" --seed "$seed" --gguf-py "$GGUF_PY" \
      --out "$MODELS/$name.gguf.partial"
    mv "$MODELS/$name.gguf.partial" "$MODELS/$name.gguf"
  fi
done

# Prompts do not matter to random weights; only their length does (about a GSM8K question's).
DATA="$OUT/problems.jsonl"
python3 - "$DATA" "$PROBLEMS" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        q = ("Problem %d. A farmer has %d hens; each lays %d eggs a day. She sells them at $%d a dozen "
             "after keeping %d for breakfast. How much does she make in a week?") % (i, 10 + i, 3 + i % 4, 2 + i % 3, 4)
        f.write(json.dumps({"question": q, "answer": "#### 0"}) + "\n")
PY

# --- the runs: one bench per α, modes interleaved inside each --------------------------------------
GPU_LAYERS=0; [ "$FLAVOUR" = cuda ] && GPU_LAYERS=999
for alpha in $ALPHAS; do
  say "α = $alpha: bench (ar, lookahead, lookahead+sd; γ $GAMMA, $PROBLEMS problems, $MAX_TOKENS tokens)"
  timeout "$RUN_TIMEOUT" "$CTL" bench --data "$DATA" --models "$MODELS" --limit "$PROBLEMS" \
    --modes ar,lookahead,lookahead+sd --gamma "$GAMMA" --verifier "random:$alpha" --fixed-steps \
    --step-tokens "$STEP_TOKENS" --max-tokens "$MAX_TOKENS" --threads "$THREADS" --gpu-layers "$GPU_LAYERS" \
    --json "$OUT/alpha-$alpha.json" --svg "$OUT/alpha-$alpha.svg" | tee "$OUT/alpha-$alpha.txt"
done

# --- speed-up vs α against the model --------------------------------------------------------------
python3 - "$OUT" "$FLAVOUR" "$TARGET_SHAPE" "$DRAFT_SHAPE" $ALPHAS <<'PY'
import json, os, sys
out, flavour, target, draft, alphas = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
rows = []
for a in alphas:
    report = json.load(open(os.path.join(out, "alpha-%s.json" % a)))
    for mode in ("lookahead", "lookahead+sd"):
        m = report["modes"][mode]
        rows.append({"alpha_set": float(a), "mode": mode, "alpha": m["alpha"], "c": m["c"], "speedup": m["speedup"],
                     "model_speedup": m["model_speedup"], "tokens_per_s": m["tokens_per_s"],
                     "ar_tokens_per_s": report["modes"]["ar"]["tokens_per_s"]})
json.dump({"flavour": flavour, "target": target, "draft": draft, "gamma": report["settings"]["gamma"],
           "rows": rows}, open(os.path.join(out, "summary.json"), "w"), indent=1)
f = lambda v, p: "–" if v is None else ("%." + str(p) + "f") % v
print("\n%s, target %s, draft %s, γ %d (model: the paper's async formula at the measured α and c)"
      % (flavour, target, draft, report["settings"]["gamma"]))
print("%7s  %-13s %7s %6s %10s %8s %9s %9s" % ("α set", "mode", "α", "c", "speed-up", "model", "tok/s", "ar tok/s"))
for r in rows:
    print("%7.2f  %-13s %7s %6s %9s× %7s× %9s %9s" % (r["alpha_set"], r["mode"], f(r["alpha"], 2), f(r["c"], 2),
          f(r["speedup"], 2), f(r["model_speedup"], 2), f(r["tokens_per_s"], 1), f(r["ar_tokens_per_s"], 1)))
print("wrote " + os.path.join(out, "summary.json"), file=sys.stderr)
PY
