# lookaheadd — the two commands: `make run` and `make test`. Everything slow (llama.cpp, models)
# is cached under $(CACHE) keyed by version and checksum, so reruns skip it.
CACHE        ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/lookaheadd
FLAVOUR      := $(if $(CUDA),cuda,cpu)
LLAMA_PREFIX := $(CACHE)/llama.cpp-0c1e57098-p1-$(FLAVOUR)
SWIFT_FLAGS  ?=
CONFIG       ?= debug

export PKG_CONFIG_PATH := $(LLAMA_PREFIX)/lib/pkgconfig
export LD_LIBRARY_PATH := $(LLAMA_PREFIX)/lib$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))
export LOOKAHEAD_MODELS ?= $(CACHE)/models
# ggml's OpenMP workers spin while waiting; with 2 cores and any other busy process that spin
# collapsed decoding 15-30x here. Passive waiting must be in the environment before the process starts.
export OMP_WAIT_POLICY ?= passive

BIN = $(shell swift build -c $(CONFIG) $(SWIFT_FLAGS) --show-bin-path 2>/dev/null)
QUESTION ?= Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?

.PHONY: all deps models build test run install clean
all: build

deps:
	@scripts/deps.sh $(FLAVOUR)

models:
	@scripts/models.sh

build: deps
	swift build -c $(CONFIG) $(SWIFT_FLAGS) -Xlinker -rpath -Xlinker $(LLAMA_PREFIX)/lib

# Real-model tests share one loaded model per suite and must not run concurrently on 2 cores.
test: deps models
	swift build --build-tests $(SWIFT_FLAGS) -Xlinker -rpath -Xlinker $(LLAMA_PREFIX)/lib
	swift test --skip-build --no-parallel $(SWIFT_FLAGS)

run: build models
	$(BIN)/lookaheadctl ask --local --stream "$(QUESTION)"

clean:
	rm -rf .build
