#!/usr/bin/env bash
# Builds the pinned llama.cpp (vendored in the llama-cpp-python sdist) into a versioned cache prefix:
# the shared libraries lookaheadd links against, and the peer tools the benchmark compares with.
# Usage: scripts/deps.sh [cpu|cuda]   — a rerun with the prefix present takes no time.
. "$(dirname "$0")/common.sh"

FLAVOUR="${1:-cpu}"
PREFIX=$(llama_prefix "$FLAVOUR")
STAMP="$PREFIX/.complete"
if [ -f "$STAMP" ]; then say "llama.cpp ($FLAVOUR) cached at $PREFIX"; exit 0; fi

# pip only fetches the sdist (fetch_sdist checks for it): a machine handed the sdist needs none.
need cmake cmake; need cc gcc; need c++ g++
# Ninja when there is one; make otherwise (a bare GPU box may have only build-essential).
if command -v ninja >/dev/null 2>&1; then GENERATOR=Ninja; else GENERATOR="Unix Makefiles"; fi

SRC="$CACHE_ROOT/src-$LLAMA_PY_VERSION"
unpack_sdist "$SRC"
LLAMA_SRC="$SRC/vendor/llama.cpp"
[ -f "$LLAMA_SRC/include/llama.h" ] || die "$LLAMA_SRC/include/llama.h missing: the sdist layout changed"

# One-line patch: let GGML_CPU_USE_REF=1 select ggml-cpu's reference paths (upstream has the switch,
# ggml_backend_cpu_set_use_ref, but llama.h gives no way to reach a context's CPU backend). Without it,
# flash attention takes a split-KV path for single-token batches and a tiled path for ≥64-token
# batches, so a sequence's logits depend on what else is in its batch; lossless speculation (and
# answers that do not depend on load) need the same arithmetic for every batch shape.
CPU_CPP="$LLAMA_SRC/ggml/src/ggml-cpu/ggml-cpu.cpp"
if ! grep -q GGML_CPU_USE_REF "$CPU_CPP"; then
  grep -q '    ctx->use_ref             = false;' "$CPU_CPP" || die "$CPU_CPP: patch target line not found (llama.cpp changed?)"
  sed -i 's|    ctx->use_ref             = false;|    ctx->use_ref             = getenv("GGML_CPU_USE_REF") != NULL \&\& getenv("GGML_CPU_USE_REF")[0] == '"'"'1'"'"';|' "$CPU_CPP"
  grep -q GGML_CPU_USE_REF "$CPU_CPP" || die "$CPU_CPP: patch did not apply"
fi

EXTRA=()
if [ "$FLAVOUR" = cuda ]; then
  need nvcc nvidia-cuda-toolkit
  EXTRA+=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90)
elif [ "$FLAVOUR" != cpu ]; then
  die "unknown flavour '$FLAVOUR' (cpu or cuda)"
fi

BUILD="$CACHE_ROOT/build-$LLAMA_CPP_COMMIT-$LLAMA_BUILD_REV-$FLAVOUR"
# BUILD_WITH_INSTALL_RPATH: the libraries and tools find each other through $ORIGIN wherever they are copied.
say "configuring llama.cpp $LLAMA_CPP_COMMIT ($FLAVOUR) in $BUILD"
cmake -S "$LLAMA_SRC" -B "$BUILD" -G "$GENERATOR" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
  -DCMAKE_INSTALL_RPATH='$ORIGIN:$ORIGIN/../lib' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON "${EXTRA[@]}" >&2

TOOLS=(llama-simple llama-cli llama-speculative-simple llama-server llama-batched-bench)
say "building libllama + ${TOOLS[*]} (≈10 min on 2 cores; ninja shows [done/total])"
# Ninja's progress lines are the progress report; only the named targets are built, not every example.
cmake --build "$BUILD" --target llama "${TOOLS[@]}" -j "$(nproc)" >&2

say "installing into $PREFIX"
rm -rf "$PREFIX"; mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include" "$PREFIX/bin"
cp -a "$BUILD"/bin/*.so* "$PREFIX/lib/" 2>/dev/null || true
find "$BUILD" -name '*.so*' \( -name 'libllama*' -o -name 'libggml*' -o -name 'libmtmd*' \) -exec cp -a {} "$PREFIX/lib/" \;
cp "$LLAMA_SRC"/include/llama.h "$LLAMA_SRC"/include/llama-cpp.h "$PREFIX/include/"
cp "$LLAMA_SRC"/ggml/include/*.h "$PREFIX/include/"
for t in "${TOOLS[@]}"; do cp "$BUILD/bin/$t" "$PREFIX/bin/"; done
cat > "$PREFIX/lib/pkgconfig/llama.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: llama
Description: llama.cpp $LLAMA_CPP_COMMIT ($FLAVOUR) from llama-cpp-python $LLAMA_PY_VERSION
Version: $LLAMA_PY_VERSION
Libs: -L\${libdir} -lllama -lggml -lggml-base
Cflags: -I\${includedir}
PC
[ -f "$PREFIX/lib/libllama.so" ] || die "build finished but $PREFIX/lib/libllama.so is missing"
touch "$STAMP"
say "llama.cpp ($FLAVOUR) ready: $PREFIX"
