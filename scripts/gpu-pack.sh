#!/usr/bin/env bash
# Writes .gpu/: everything the GPU benchmark needs on a machine with no Swift toolchain, no network
# and no pip, and nothing else, for a device tool that carries at most 64 MiB:
#   lookaheadctl.xz    lookaheadctl, Swift runtime and Foundation linked statically, stripped, xz
#   lib/               the shared libraries it loads that a CUDA image may lack (json-c, libsystemd
#                      and what that needs, sqlite); never libllama/libggml (built there) nor the
#                      C/C++ runtime (the machine's compiler brings newer ones)
#   llama.cpp.tar.xz   the pinned llama.cpp, patched as deps.sh patches it, trimmed to what the
#                      CUDA `llama` library build needs: CMake files, include, src, ggml (core, CPU
#                      and CUDA backends), gguf-py for the GGUF writer
#   run.sh, deps.sh, common.sh, synth-gguf.py, gpu-summary.py   the device's scripts
#   MANIFEST (sizes, the glibc the binary needs), SHA256SUMS
# Prints the total and fails past 60 MiB. On the device: `bash .gpu/run.sh` (docs/benchmarks.md).
# Usage: scripts/gpu-pack.sh   (≈ 10+ min the first time on 2 cores: the static release build)
. "$(dirname "$0")/common.sh"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PACK="$REPO/.gpu"
LIMIT=$((60 * 1024 * 1024))
need xz xz-utils; need strip binutils; need swift "Swift from swift.org"

"$REPO/scripts/deps.sh" cpu
CPU_PREFIX=$(llama_prefix cpu)
rm -rf "$PACK"; mkdir -p "$PACK/lib"

# --- lookaheadctl ------------------------------------------------------------------------------
# $ORIGIN/lib: the carried libraries, wherever the binary is unpacked beside them.
say "building a static release lookaheadctl (.build-static)"
(cd "$REPO" && PKG_CONFIG_PATH="$CPU_PREFIX/lib/pkgconfig" swift build -c release --static-swift-stdlib \
  --scratch-path .build-static --product lookaheadctl -Xlinker -rpath -Xlinker '$ORIGIN/lib' >&2)
BIN="$REPO/.build-static/release/lookaheadctl"
STRIPPED="$REPO/.build-static/lookaheadctl.stripped"
strip -o "$STRIPPED" "$BIN"
xz -T0 -9e -c "$STRIPPED" > "$PACK/lookaheadctl.xz"

# --- the libraries it loads ----------------------------------------------------------------------
# Everything ldd resolves except glibc's own, the compiler's runtimes and llama.cpp's libraries.
while read -r soname path; do
  case "$soname" in
    linux-vdso*|ld-linux*|libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libresolv.so*|libutil.so*) continue ;;
    libstdc++*|libgcc_s*|libgomp*|libatomic*) continue ;;
    libllama*|libggml*|libmtmd*) continue ;;
  esac
  cp -L "$path" "$PACK/lib/$soname"
done < <(LD_LIBRARY_PATH="$CPU_PREFIX/lib" ldd "$STRIPPED" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
GLIBC=$(objdump -T "$STRIPPED" "$PACK"/lib/*.so* | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)

# --- llama.cpp, trimmed ---------------------------------------------------------------------------
SRC="$CACHE_ROOT/src-$LLAMA_PY_VERSION"
unpack_sdist "$SRC"
LLAMA_SRC="$SRC/vendor/llama.cpp"
patch_llama_src "$LLAMA_SRC"
# add_subdirectory(vendor) is unconditional: the header-only targets need only their CMakeLists
# (their include directory is vendor/ itself); vendor-hash is a static library with sources.
# ggml's other backends are left out: their subdirectories are added only when enabled.
(cd "$LLAMA_SRC" && find CMakeLists.txt LICENSE cmake include src gguf-py vendor/CMakeLists.txt vendor/hash \
    vendor/miniaudio/CMakeLists.txt vendor/nlohmann/CMakeLists.txt vendor/sheredom/CMakeLists.txt \
    vendor/stb/CMakeLists.txt ggml -type f \
    ! -path 'gguf-py/tests/*' ! -name '*.pyc' \
    \( ! -path 'ggml/src/ggml-*/*' -o -path 'ggml/src/ggml-cpu/*' -o -path 'ggml/src/ggml-cuda/*' -o -path 'ggml/src/ggml-rpc/*' \) \
    | sort > "$REPO/.build-static/llama-files.txt")
tar -C "$LLAMA_SRC" --transform 's|^|llama.cpp/|' --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -T "$REPO/.build-static/llama-files.txt" -cf - | xz -T0 -9 > "$PACK/llama.cpp.tar.xz"

# --- scripts, manifest, checksums -------------------------------------------------------------------
cp "$REPO/scripts/gpu-run.sh" "$PACK/run.sh"
cp "$REPO/scripts/deps.sh" "$REPO/scripts/common.sh" "$REPO/scripts/synth-gguf.py" "$REPO/scripts/gpu-summary.py" "$PACK/"
{
  echo "lookaheadd GPU pack, $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown), $(date -u +%FT%TZ)"
  echo "llama.cpp $LLAMA_CPP_COMMIT (llama-cpp-python $LLAMA_PY_VERSION, sdist sha256 $LLAMA_PY_SHA256), $(wc -l < "$REPO/.build-static/llama-files.txt") files"
  echo "lookaheadctl: $(stat -c %s "$STRIPPED") bytes stripped; needs $GLIBC or newer"
  echo
  (cd "$PACK" && find . -type f ! -name MANIFEST ! -name SHA256SUMS -printf '%s\t%P\n' | sort -k2)
} > "$PACK/MANIFEST"
(cd "$PACK" && find . -type f ! -name SHA256SUMS -printf '%P\n' | sort | xargs sha256sum > SHA256SUMS)

TOTAL=$(du -sb "$PACK" | cut -f1)
cat "$PACK/MANIFEST" >&2
say "$PACK: $TOTAL bytes ($(awk -v b="$TOTAL" 'BEGIN { printf "%.1f", b / 1048576 }') MiB)"
[ "$TOTAL" -le "$LIMIT" ] || die "$PACK is $TOTAL bytes, over the 60 MiB the device tool can carry (64 MiB, less room for the tree)"
