#!/usr/bin/env bash
# Builds the pinned llama.cpp (vendored in the llama-cpp-python sdist) into a versioned cache prefix:
# the shared libraries lookaheadd links against, and the peer tools the benchmark compares with.
# Usage: scripts/deps.sh [cpu|cuda] [--lib-only]   — a rerun with the prefix present takes no time.
# CUDA builds, and --lib-only ones, build libllama alone: the peer tools serve the CPU benchmark
# (scripts/peers.sh), and on a GPU host each extra target is minutes of nvcc. LLAMA_SRC=DIR builds
# from an unpacked llama.cpp tree instead of the sdist (the GPU pack carries a trimmed one).
. "$(dirname "$0")/common.sh"

FLAVOUR="${1:-cpu}"
case "${2:-}" in "" | --lib-only) ;; *) die "unknown argument '$2' (usage: deps.sh [cpu|cuda] [--lib-only])" ;; esac
LIB_ONLY=""
[ "${2:-}" = --lib-only ] || [ "$FLAVOUR" = cuda ] && LIB_ONLY=lib
PREFIX=$(llama_prefix "$FLAVOUR" $LIB_ONLY)
STAMP="$PREFIX/.complete"
if [ -f "$STAMP" ]; then say "llama.cpp ($FLAVOUR) cached at $PREFIX"; exit 0; fi

# pip only fetches the sdist (fetch_sdist checks for it): a machine handed the sdist needs none.
need cmake cmake; need cc gcc; need c++ g++
# Ninja when there is one; make otherwise (a bare GPU box may have only build-essential).
if command -v ninja >/dev/null 2>&1; then GENERATOR=Ninja; else GENERATOR="Unix Makefiles"; fi

if [ -n "${LLAMA_SRC:-}" ]; then
  [ -f "$LLAMA_SRC/include/llama.h" ] || die "LLAMA_SRC=$LLAMA_SRC has no include/llama.h"
else
  SRC="$CACHE_ROOT/src-$LLAMA_PY_VERSION"
  unpack_sdist "$SRC"
  LLAMA_SRC="$SRC/vendor/llama.cpp"
  [ -f "$LLAMA_SRC/include/llama.h" ] || die "$LLAMA_SRC/include/llama.h missing: the sdist layout changed"
fi
patch_llama_src "$LLAMA_SRC"

EXTRA=()
if [ "$FLAVOUR" = cuda ]; then
  need nvcc nvidia-cuda-toolkit
  EXTRA+=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90)
elif [ "$FLAVOUR" != cpu ]; then
  die "unknown flavour '$FLAVOUR' (cpu or cuda)"
fi

if [ -n "$LIB_ONLY" ]; then
  TOOLS=() PROGRAMS=OFF
else
  # ggml-rpc-server: what other hosts run to lend their memory and compute (README, "Bigger than one machine").
  TOOLS=(llama-simple llama-cli llama-speculative-simple llama-server llama-batched-bench ggml-rpc-server) PROGRAMS=ON
fi

BUILD="$CACHE_ROOT/build-$(basename "$PREFIX" | sed 's/^llama.cpp-//')"
# BUILD_WITH_INSTALL_RPATH: the libraries and tools find each other through $ORIGIN wherever they are copied.
say "configuring llama.cpp $LLAMA_CPP_COMMIT ($FLAVOUR${LIB_ONLY:+, library only}) in $BUILD"
cmake -S "$LLAMA_SRC" -B "$BUILD" -G "$GENERATOR" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
  -DCMAKE_INSTALL_RPATH='$ORIGIN:$ORIGIN/../lib' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_COMMON=$PROGRAMS -DLLAMA_BUILD_EXAMPLES=$PROGRAMS \
  -DLLAMA_BUILD_TOOLS=$PROGRAMS -DLLAMA_BUILD_SERVER=$PROGRAMS -DLLAMA_BUILD_APP=OFF -DGGML_RPC=ON "${EXTRA[@]}" >&2

say "building libllama ${TOOLS[*]} (the CPU build with tools ≈10 min on 2 cores; ninja shows [done/total])"
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
Libs: -L\${libdir} -lllama -lggml -lggml-base -lggml-rpc
Cflags: -I\${includedir}
PC
[ -f "$PREFIX/lib/libllama.so" ] || die "build finished but $PREFIX/lib/libllama.so is missing"
touch "$STAMP"
say "llama.cpp ($FLAVOUR) ready: $PREFIX"
