#!/usr/bin/env bash
# Runs llama.cpp's own decoders, built from the same sdist tree as libllama, on the same models,
# prompts and token budget as `lookaheadctl bench`, greedy, and records their speed as JSON:
#   llama-cli                  plain autoregressive decoding (the CLI that ships with this build)
#   llama-speculative-simple   token-level speculative decoding with the draft model
#   llama-server               without a draft (AR) and with -md (token-level SD), through /completion
#   lookaheadd                 ours, `lookaheadctl bench --modes ar,lookahead+sd` on the same problems in the
#                              same sitting (this machine's speed drifts by up to 2x over an hour), recorded
#                              as peers lookaheadd-ar and lookaheadd-lookahead+sd; LOOKAHEADCTL names the binary
# Usage: scripts/peers.sh [--data FILE] [--limit N] [--offset K] [--max-tokens N] [--threads N]
#                         [--draft-max N] [--peers LIST] [--out FILE] [--run-timeout S]
# Prompts are formatted with ChatML exactly as Engines.promptTokens does through llama.cpp's
# built-in template (no system prompt), so every peer sees the tokens lookaheadd sees.
. "$(dirname "$0")/common.sh"

DATA="$(cd "$(dirname "$0")/.." && pwd)/Tests/Data/gsm8k/test.jsonl"  # vendored GSM8K test split (MIT)
LIMIT=3 OFFSET=0 MAX_TOKENS=128 THREADS=2 DRAFT_MAX=3 RUN_TIMEOUT=600 OUT=peers.json
PEERS=llama-cli,llama-speculative-simple,llama-server,llama-server-sd,lookaheadd
LOOKAHEADCTL="${LOOKAHEADCTL:-$(dirname "$0")/../.build/release/lookaheadctl}"
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    --offset) OFFSET=$2; shift 2 ;;
    --max-tokens) MAX_TOKENS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --draft-max) DRAFT_MAX=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --run-timeout) RUN_TIMEOUT=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

PREFIX=$(llama_prefix "${FLAVOUR:-cpu}")
BIN="$PREFIX/bin"
MODELS="${LOOKAHEAD_MODELS:-$MODELS_DIR}"
TARGET="$MODELS/target.gguf" DRAFT="$MODELS/draft.gguf"
for f in "$BIN/llama-cli" "$BIN/llama-speculative-simple" "$BIN/llama-server" "$TARGET" "$DRAFT" "$DATA"; do
  [ -e "$f" ] || die "$f is missing (make deps models?)"
done
need python3 python3; need curl curl
export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Every peer waits at ggml's barriers as lookaheadd does (Llama's ThreadWaitPolicy: a short spin, then sleep).
[ -n "${OMP_WAIT_POLICY:-}" ] || export GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-1000}"
# Every peer gets the same context size and greedy sampling.
COMMON=(-t "$THREADS" -c 4096 -n "$MAX_TOKENS" --temp 0)

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One directory per problem: content.txt (the user message) and prompt.txt (ChatML). llama.cpp's
# -f drops one trailing newline, so prompt.txt carries one extra to end in "assistant\n".
python3 - "$DATA" "$OFFSET" "$LIMIT" "$WORK" <<'PY'
import json, os, sys
data, offset, limit, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lines = [(n, l) for n, l in enumerate(open(data, encoding="utf-8"), 1) if l.strip()]
for n, line in lines[offset:offset + limit]:
    q = json.loads(line)["question"]
    # Problem.instruction in Sources/LookaheadBench/Problem.swift: the two must stay equal.
    content = q + "\nPlease reason step by step, and put your final answer within \\boxed{}."
    d = os.path.join(work, "p%06d" % n)
    os.makedirs(d)
    open(os.path.join(d, "content.txt"), "w", encoding="utf-8").write(content)
    prompt = "<|im_start|>user\n" + content + "<|im_end|>\n<|im_start|>assistant\n"
    open(os.path.join(d, "prompt.txt"), "w", encoding="utf-8").write(prompt + "\n")
    json.dump({"prompt": prompt}, open(os.path.join(d, "prompt.json"), "w", encoding="utf-8"))
PY
PROBLEMS=("$WORK"/p*)
[ -d "${PROBLEMS[0]}" ] || die "no problems in $DATA after offset $OFFSET"
RUNS="$WORK/runs.jsonl"; : > "$RUNS"

# record PEER PROBLEM-DIR LOG: parses what the peer printed into one JSON line of $RUNS.
record() {
  python3 - "$1" "$(basename "$2" | sed 's/^p0*//')" "$3" >> "$RUNS" <<'PY'
import json, re, sys
peer, problem, log = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], encoding="utf-8", errors="replace").read()
run = {"peer": peer, "problem": problem}
if peer == "llama-cli":
    m = re.findall(r"\[ Prompt: ([\d.]+) t/s \| Generation: ([\d.]+) t/s \]", log)
    if m: run.update(prompt_tokens_per_s=float(m[-1][0]), decode_tokens_per_s=float(m[-1][1]))
elif peer == "llama-speculative-simple":
    enc = re.search(r"encoded\s+(\d+) tokens in\s+([\d.]+) seconds", log)
    dec = re.search(r"decoded\s+(\d+) tokens in\s+([\d.]+) seconds", log)
    acc = re.search(r"n_drafted = (\d+)\s.*?n_accept\s+= (\d+)", log, re.S)
    if enc and dec:
        run.update(prompt_tokens=int(enc[1]), prompt_s=float(enc[2]), tokens=int(dec[1]), decode_s=float(dec[2]))
    if acc: run.update(drafted=int(acc[1]), accepted=int(acc[2]))
elif log.strip():
    t = json.loads(log).get("timings", {})
    if "predicted_n" in t:
        run.update(prompt_tokens=t["prompt_n"], prompt_s=t["prompt_ms"] / 1e3, tokens=t["predicted_n"],
                   decode_s=t["predicted_ms"] / 1e3)
    if "draft_n" in t: run.update(drafted=t["draft_n"], accepted=t.get("draft_n_accepted", 0))
if "tokens" in run:
    run["decode_tokens_per_s"] = run["tokens"] / run["decode_s"]
    run["tokens_per_s"] = run["tokens"] / (run["prompt_s"] + run["decode_s"])
if "decode_tokens_per_s" not in run: run["error"] = "no timings in its output (see the log above)"
print(json.dumps(run))
PY
  tail -n 1 "$RUNS" >&2
}

# Fails loudly with the peer's own last words, but keeps the other peers going.
run_peer() { # PEER PROBLEM-DIR COMMAND...
  local peer=$1 dir=$2; shift 2
  local log="$dir/$peer.log"
  if ! timeout "$RUN_TIMEOUT" "$@" </dev/null >"$log" 2>&1; then
    tail -n 5 "$log" >&2; say "$peer failed on $(basename "$dir") (exit or timeout ${RUN_TIMEOUT}s)"
  fi
  record "$peer" "$dir" "$log"
}

cli() {
  for dir in "${PROBLEMS[@]}"; do
    say "llama-cli (AR) on $(basename "$dir")"
    # The server-based CLI applies the template itself: the built-in chatml, as lookaheadd uses.
    run_peer llama-cli "$dir" "$BIN/llama-cli" -m "$TARGET" "${COMMON[@]}" -st --simple-io --no-escape \
      --no-jinja --chat-template chatml -p "$(cat "$dir/content.txt")"
  done
}

speculative_simple() {
  for dir in "${PROBLEMS[@]}"; do
    say "llama-speculative-simple (draft n-max $DRAFT_MAX) on $(basename "$dir")"
    run_peer llama-speculative-simple "$dir" "$BIN/llama-speculative-simple" -m "$TARGET" -md "$DRAFT" \
      --spec-type draft-simple --spec-draft-n-max "$DRAFT_MAX" "${COMMON[@]}" --no-escape -f "$dir/prompt.txt"
  done
}

server() { # NAME [DRAFT ARGS...]
  local name=$1; shift
  local port; port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  say "$name: starting llama-server on 127.0.0.1:$port"
  "$BIN/llama-server" -m "$TARGET" "$@" -t "$THREADS" -c 4096 -np 1 --host 127.0.0.1 --port "$port" --no-webui \
    >"$WORK/$name.log" 2>&1 &
  SERVER_PID=$!
  local waited=0
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$WORK/$name.log" >&2; die "$name exited while loading"; }
    [ $waited -lt 300 ] || die "$name not ready after 300 s"
    sleep 1; waited=$((waited + 1))
  done
  for dir in "${PROBLEMS[@]}"; do
    say "$name on $(basename "$dir")"
    # Greedy; no prompt cache, so every request pays its own prefill like the other peers.
    python3 -c 'import json, sys; p = json.load(open(sys.argv[1])); p.update(n_predict=int(sys.argv[2]),
temperature=0, top_k=1, seed=0, cache_prompt=False); print(json.dumps(p))' "$dir/prompt.json" "$MAX_TOKENS" \
      > "$dir/$name.request.json"
    if ! curl -sf --max-time "$RUN_TIMEOUT" -H 'Content-Type: application/json' \
        --data-binary @"$dir/$name.request.json" "http://127.0.0.1:$port/completion" > "$dir/$name.log"; then
      : > "$dir/$name.log"; say "$name: request failed on $(basename "$dir")"
    fi
    record "$name" "$dir" "$dir/$name.log"
  done
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
}

# Ours, one process for all problems (the tick loop's cost model and speculation ledger carry over,
# as in the daemon). wall_s includes prefill: recorded as prompt_s 0, so tokens_per_s is end to end.
ours() {
  [ -x "$LOOKAHEADCTL" ] || die "$LOOKAHEADCTL not built (make build CONFIG=release, or set LOOKAHEADCTL)"
  say "lookaheadctl bench (ar, lookahead+sd) on the same problems"
  if ! "$LOOKAHEADCTL" bench --data "$DATA" --offset "$OFFSET" --limit "$LIMIT" --max-tokens "$MAX_TOKENS" \
      --threads "$THREADS" --modes ar,lookahead+sd --json "$WORK/ours.json" >&2; then
    say "lookaheadctl bench failed"; return
  fi
  python3 - "$WORK/ours.json" >> "$RUNS" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["problems"]:
    print(json.dumps({"peer": "lookaheadd-" + r["mode"], "problem": r["problem"], "tokens": r["tokens"],
                      "prompt_s": 0.0, "decode_s": r["wall_s"], "decode_tokens_per_s": r["tokens"] / r["wall_s"],
                      "tokens_per_s": r["tokens"] / r["wall_s"]}))
PY
}

IFS=, read -r -a WANTED <<< "$PEERS"
for peer in "${WANTED[@]}"; do
  case "$peer" in
    llama-cli) cli ;;
    llama-speculative-simple) speculative_simple ;;
    llama-server) server llama-server ;;
    llama-server-sd) server llama-server-sd -md "$DRAFT" --spec-type draft-simple --spec-draft-n-max "$DRAFT_MAX" ;;
    lookaheadd) ours ;;
    *) die "unknown peer '$peer'" ;;
  esac
done

# Pooled per peer: tokens over seconds (not a mean of per-run rates), except llama-cli, which
# prints rates only.
python3 - "$RUNS" "$OUT" "$DATA" "$OFFSET" "$LIMIT" "$MAX_TOKENS" "$THREADS" "$DRAFT_MAX" <<'PY'
import datetime, json, sys
runs_path, out, data, offset, limit, max_tokens, threads, draft_max = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path)]
peers = {}
for name in dict.fromkeys(r["peer"] for r in runs):
    rs = [r for r in runs if r["peer"] == name and "error" not in r]
    s = {"n": len(rs), "failed": sum(1 for r in runs if r["peer"] == name) - len(rs)}
    if rs and all("tokens" in r for r in rs):
        tokens = sum(r["tokens"] for r in rs)
        decode = sum(r["decode_s"] for r in rs)
        prompt = sum(r["prompt_s"] for r in rs)
        s.update(tokens=tokens, decode_s=round(decode, 3), prompt_s=round(prompt, 3),
                 decode_tokens_per_s=round(tokens / decode, 3), tokens_per_s=round(tokens / (decode + prompt), 3))
        if all("drafted" in r for r in rs):
            drafted = sum(r["drafted"] for r in rs)
            s.update(drafted=drafted, accepted=sum(r["accepted"] for r in rs),
                     acceptance=round(sum(r["accepted"] for r in rs) / drafted, 4) if drafted else None)
    elif rs:
        s["decode_tokens_per_s"] = round(sum(r["decode_tokens_per_s"] for r in rs) / len(rs), 3)
        s["decode_tokens_per_s_is"] = "mean of per-run rates (llama-cli prints rates only)"
    peers[name] = s
settings = {"data": data, "offset": int(offset), "limit": int(limit), "max_tokens": int(max_tokens),
            "threads": int(threads), "draft_max": int(draft_max), "greedy": True, "context": 4096,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
json.dump({"settings": settings, "peers": peers, "runs": runs}, open(out, "w"), indent=1)
print("%-26s %3s %8s %14s %14s %10s" % ("peer", "n", "tokens", "decode tok/s", "e2e tok/s", "accept"))
for name, s in peers.items():
    fmt = lambda k, f: (f % s[k]) if s.get(k) is not None else "–"
    print("%-26s %3d %8s %14s %14s %10s" % (name, s["n"], fmt("tokens", "%d"), fmt("decode_tokens_per_s", "%.2f"),
                                           fmt("tokens_per_s", "%.2f"), fmt("acceptance", "%.2f")))
print("wrote " + out, file=sys.stderr)
PY
