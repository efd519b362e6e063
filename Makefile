# proflab — a thin wrapper over meson/ninja. The two front-door commands:
#   make run    install what is missing, build, start proflabd with the lab on
#   make test   install what is missing, build, run every test suite
#               (also under AddressSanitizer + UndefinedBehaviorSanitizer)
BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON      ?= meson

.PHONY: all deps test-deps build run test test-unit test-integration test-asan bench bench-analysis bench-agent bench-export-hostile fuzz soak clean format

all: build

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test
	@scripts/npm-deps.sh

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --buildtype=debugoptimized

$(ASAN_BUILD)/build.ninja:
	$(MESON) setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	@scripts/run.sh

test: test-deps build
	$(MESON) test -C $(BUILD) --print-errorlogs --suite structure
	$(MESON) test -C $(BUILD) --print-errorlogs --suite unit
	$(MESON) test -C $(BUILD) --print-errorlogs --suite safety
	PROFLABD=$(BUILD)/proflabd node --test tests/integration/
	PROFLABD=$(BUILD)/proflabd node --test tests/clients/
	$(MAKE) --no-print-directory test-asan

test-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(MESON) test -C $(ASAN_BUILD) --print-errorlogs --suite unit
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(MESON) test -C $(ASAN_BUILD) --print-errorlogs --suite safety
	PROFLABD=$(ASAN_BUILD)/proflabd PROFLAB_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=16 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  node --test tests/integration/

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	bench/http/run.sh
	bench/cpu/run.sh

# proflab top vs DevTools' loader, memlab and speedscope (issue 11; minutes)
bench-analysis:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	bench/analysis/run.sh

# the agent on Debian's nginx under wrk vs heaptrack and gperftools (issue 12; ~8 min)
bench-agent:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	bench/agent/run.sh

# proflab export through hostile exec channels, clean vs each fault (issue 14)
bench-export-hostile:
	@$(MAKE) --no-print-directory build
	bench/export/hostile.sh

# every libFuzzer target for FUZZ_SECONDS each, with the executions of each (issue 14)
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh test
	tests/fuzz/fuzz-all.sh $(FUZZ_SECONDS)

# wrk on the business endpoints + chaos on the lab, ASan build (issue 14; SOAK_SECONDS)
SOAK_SECONDS ?= 600
soak: test-deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	bench/soak/run.sh $(SOAK_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
