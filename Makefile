# lookaheadd — the two commands: `make run` and `make test`. Everything slow (llama.cpp, models)
# is cached under $(CACHE) keyed by version and checksum, so reruns skip it.
CACHE        ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/lookaheadd
FLAVOUR      := $(if $(CUDA),cuda,cpu)
LLAMA_PREFIX := $(CACHE)/llama.cpp-0c1e57098-p2-$(FLAVOUR)
SWIFT_FLAGS  ?=
CONFIG       ?= debug

export PKG_CONFIG_PATH := $(LLAMA_PREFIX)/lib/pkgconfig
export LD_LIBRARY_PATH := $(LLAMA_PREFIX)/lib$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))
export LOOKAHEAD_MODELS ?= $(CACHE)/models

BIN = $(shell swift build -c $(CONFIG) $(SWIFT_FLAGS) --show-bin-path 2>/dev/null)
QUESTION ?= Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May? Please reason step by step, and put your final answer within \\boxed{}.
PREFIX       ?= /usr/local
DESTDIR      ?=
UNITDIR      ?= /etc/systemd/system
RELEASE_BIN   = .build/release

.PHONY: all deps models build test fuzz run install clean
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
	scripts/abuse.py --daemon "$(BIN)/lookaheadd"
	"$$(scripts/pyclients.sh)" scripts/openai-check.py --daemon "$(BIN)/lookaheadd"
	scripts/fuzz.sh 60

# The protocol fuzzer alone, for longer: make fuzz FUZZ_SECONDS=600 (scripts/fuzz.sh; default 60 s).
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

run: build models
	@scripts/run-demo.sh "$(BIN)" "$(QUESTION)"

# Installs the daemon, the client, the llama.cpp libraries they load, the units, the config (kept
# if present), the service user and the cached models. Binaries carry the Swift runtime statically
# and find libllama through $ORIGIN, so nothing points back into this checkout or the build cache.
# The libraries are copied, not `cp -a`'d: that kept the builder's uid on code the service loads, and
# the builder could then change it. -P keeps the soname symlinks; --remove-destination replaces the
# files (and so their owner) an earlier install left. The rpc-server other hosts run (README, "Bigger
# than one machine") goes beside the libraries it finds through $ORIGIN, named in bin/ as
# lookaheadd-rpc-server, with its unit template; CUDA builds (library only) have none.
install: deps
	swift build -c release --static-swift-stdlib -Xlinker -rpath -Xlinker '$$ORIGIN/../lib/lookaheadd'
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/lookaheadd $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)/etc/lookaheadd $(DESTDIR)/usr/lib/sysusers.d
	install -m 755 $(RELEASE_BIN)/lookaheadd $(RELEASE_BIN)/lookaheadctl $(DESTDIR)$(PREFIX)/bin/
	cp -P --preserve=mode,timestamps --no-preserve=ownership --remove-destination \
	  $(LLAMA_PREFIX)/lib/*.so* $(DESTDIR)$(PREFIX)/lib/lookaheadd/
	if [ -x $(LLAMA_PREFIX)/bin/ggml-rpc-server ]; then \
	  install -m 755 $(LLAMA_PREFIX)/bin/ggml-rpc-server $(DESTDIR)$(PREFIX)/lib/lookaheadd/; \
	  ln -sf ../lib/lookaheadd/ggml-rpc-server $(DESTDIR)$(PREFIX)/bin/lookaheadd-rpc-server; \
	  sed 's|/usr/local/bin/lookaheadd-rpc-server|$(PREFIX)/bin/lookaheadd-rpc-server|' \
	    systemd/lookaheadd-rpc@.service > $(DESTDIR)$(UNITDIR)/lookaheadd-rpc@.service; fi
	sed 's|/usr/local/bin/lookaheadd|$(PREFIX)/bin/lookaheadd|' systemd/lookaheadd.service > $(DESTDIR)$(UNITDIR)/lookaheadd.service
	install -m 644 systemd/lookaheadd.socket $(DESTDIR)$(UNITDIR)/
	install -m 644 systemd/lookaheadd.sysusers $(DESTDIR)/usr/lib/sysusers.d/lookaheadd.conf
	[ -e $(DESTDIR)/etc/lookaheadd/lookaheadd.conf ] || install -m 644 etc/lookaheadd.conf $(DESTDIR)/etc/lookaheadd/
	install -d -m 700 $(DESTDIR)/var/cache/lookaheadd/models
	for m in target draft embed; do \
	  [ -f $(LOOKAHEAD_MODELS)/$$m.gguf ] && install -m 644 $(LOOKAHEAD_MODELS)/$$m.gguf $(DESTDIR)/var/cache/lookaheadd/models/ || true; done
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then systemd-sysusers; \
	  chown -R lookaheadd:lookaheadd /var/cache/lookaheadd; fi
	@echo "installed; enable with: systemctl daemon-reload && systemctl enable --now lookaheadd.socket lookaheadd.service"

clean:
	rm -rf .build
