# Shared settings for the dependency scripts: one place names every pinned version,
# checksum and cache path, so the Makefile, CI and the scripts cannot drift apart.
set -euo pipefail

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/lookaheadd"
LLAMA_PY_VERSION=0.3.36
LLAMA_PY_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
LLAMA_CPP_COMMIT=0c1e57098
# Bumped whenever scripts/deps.sh changes what it builds (patches, flags), so caches never mix builds.
LLAMA_BUILD_REV=p2
SDIST_DIR="$CACHE_ROOT/sdist"
SDIST="$SDIST_DIR/llama_cpp_python-$LLAMA_PY_VERSION.tar.gz"
MODELS_DIR="$CACHE_ROOT/models"
# The real Python clients the HTTP check talks through (scripts/pyclients.sh).
PYCLIENT_PINS="openai==3.63.0 prometheus_client==0.26.0"

# llama_prefix [cpu|cuda] [lib] → the install prefix for that flavour of the pinned llama.cpp; `lib`
# for a build of the library alone (no peer tools), which CUDA builds always are.
llama_prefix() {
  local suffix=""
  [ "${2:-}" = lib ] && [ "${1:-cpu}" != cuda ] && suffix=-lib
  echo "$CACHE_ROOT/llama.cpp-$LLAMA_CPP_COMMIT-$LLAMA_BUILD_REV-${1:-cpu}$suffix"
}

say()  { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed (Debian: apt-get install $2)"; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# fetch_sdist: the llama-cpp-python source tarball, verified, downloaded once.
fetch_sdist() {
  if [ -f "$SDIST" ] && [ "$(sha256_of "$SDIST")" = "$LLAMA_PY_SHA256" ]; then return; fi
  need pip python3-pip
  mkdir -p "$SDIST_DIR"
  say "downloading llama-cpp-python==$LLAMA_PY_VERSION sdist (76.6 MB) from PyPI"
  pip download --no-deps --no-binary llama-cpp-python --progress-bar on -d "$SDIST_DIR" \
    "llama-cpp-python==$LLAMA_PY_VERSION" >&2
  [ -f "$SDIST" ] || die "pip did not produce $SDIST"
  local got; got=$(sha256_of "$SDIST")
  [ "$got" = "$LLAMA_PY_SHA256" ] || { rm -f "$SDIST"; die "$SDIST: sha256 $got, expected $LLAMA_PY_SHA256"; }
}

# unpack_sdist DIR: the sdist's tree (vendor/llama.cpp, convert_hf_to_gguf.py) under DIR.
unpack_sdist() {
  local dir="$1"
  if [ -f "$dir/.unpacked" ]; then return; fi
  fetch_sdist
  rm -rf "$dir"; mkdir -p "$dir"
  say "unpacking $SDIST"
  tar -xzf "$SDIST" -C "$dir" --strip-components=1
  touch "$dir/.unpacked"
}

# patch_llama_src DIR: the two patches our builds carry. (1) One line lets GGML_CPU_USE_REF=1 select
# ggml-cpu's reference paths (upstream has the switch, ggml_backend_cpu_set_use_ref, but llama.h
# gives no way to reach a context's CPU backend). Without it, flash attention takes a split-KV path
# for single-token batches and a tiled path for ≥64-token batches, so a sequence's logits depend on
# what else is in its batch; lossless speculation (and answers that do not depend on load) need the
# same arithmetic for every batch shape. (2) scripts/patches/ggml-rpc-failures.patch: ggml's RPC
# client aborts the whole process when an rpc-server is down or drops; patched, the connection's
# commands fail instead and ggml_backend_rpc_endpoint_failed() tells which server, so the daemon fails
# the sessions that used it and keeps serving. Idempotent.
patch_llama_src() {
  local cpu_cpp="$1/ggml/src/ggml-cpu/ggml-cpu.cpp"
  if ! grep -q GGML_CPU_USE_REF "$cpu_cpp"; then
    grep -q '    ctx->use_ref             = false;' "$cpu_cpp" || die "$cpu_cpp: patch target line not found (llama.cpp changed?)"
    sed -i 's|    ctx->use_ref             = false;|    ctx->use_ref             = getenv("GGML_CPU_USE_REF") != NULL \&\& getenv("GGML_CPU_USE_REF")[0] == '"'"'1'"'"';|' "$cpu_cpp"
    grep -q GGML_CPU_USE_REF "$cpu_cpp" || die "$cpu_cpp: patch did not apply"
  fi
  if ! grep -q ggml_backend_rpc_endpoint_failed "$1/ggml/include/ggml-rpc.h"; then
    need patch patch
    patch -p1 --forward --quiet -d "$1" < "$(dirname "${BASH_SOURCE[0]}")/patches/ggml-rpc-failures.patch" \
      || die "scripts/patches/ggml-rpc-failures.patch did not apply to $1 (llama.cpp changed?)"
  fi
}
