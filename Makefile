# Thin wrapper around CMake. Every target installs missing Debian packages first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DEINSIM_WERROR=ON
endif

.PHONY: all deps build demo test test-asan fuzz tidy bench clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The flagship example: the Llama-3-70B decode step (its cascade, then mapped onto 4 H100s)
# and FuseMax's 1-pass attention cascade.
demo: build
	@$(BUILD)/sim/einsim describe configs/models/llama-3-70b.toml --phase decode --batch 16 --context 32768
	@echo
	@$(BUILD)/sim/einsim describe configs/workloads/attention-1pass.toml
	@echo
	@$(BUILD)/sim/einsim run --arch h100 --model llama-3-70b --phase decode --batch 16 --context 32k --tp 4

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	@cmake -S . -B build-asan -DEINSIM_SANITIZE=ON -DEINSIM_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS) -LE "calibration|paper"

# clang-tidy with the repository's .clang-tidy over the library and tool sources; any finding
# fails (CI runs it).
tidy: build
	@run-clang-tidy -p $(BUILD) -j $(JOBS) -quiet -extra-arg=-Wno-unknown-warning-option '$(CURDIR)/(common|workloads|arch|sim|validate)/.*\.cpp$$' > $(BUILD)/tidy.log 2>&1 || true
	@if grep -E '(warning|error): ' $(BUILD)/tidy.log | grep -v 'warnings generated'; then echo "clang-tidy: findings above"; exit 1; fi
	@n=$$(grep -c '^clang-tidy' $(BUILD)/tidy.log || true); [ "$$n" -gt 40 ] || { echo "clang-tidy checked only $$n files"; exit 1; }
	@echo "clang-tidy: no findings in $$(grep -c '^clang-tidy' $(BUILD)/tidy.log) files"

FUZZ_SECONDS ?= 60
fuzz: deps
	@CC=clang CXX=clang++ cmake -S . -B build-fuzz -DEINSIM_FUZZ=ON -DEINSIM_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_einsum fuzz_config fuzz_readers
	@mkdir -p build-fuzz/corpus-einsum build-fuzz/corpus-config build-fuzz/corpus-readers
	@# Inputs up to 1 MiB: long chains and deep nesting are found only in large inputs.
	build-fuzz/tests/fuzz/fuzz_einsum -max_total_time=$(FUZZ_SECONDS) -timeout=5 -max_len=1048576 build-fuzz/corpus-einsum tests/fuzz/corpus/einsum
	build-fuzz/tests/fuzz/fuzz_config -max_total_time=$(FUZZ_SECONDS) -timeout=5 -max_len=1048576 build-fuzz/corpus-config tests/fuzz/corpus/config configs/models configs/workloads
	build-fuzz/tests/fuzz/fuzz_readers -max_total_time=$(FUZZ_SECONDS) -timeout=5 -max_len=1048576 build-fuzz/corpus-readers tests/fuzz/corpus/readers

bench: build
	@$(BUILD)/tests/bench/einsim_bench --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
	@# The SystemC engine elaborates once per process: five runs of each, the median printed.
	@for c in decode layered trace-tp4 transactions; do for i in 1 2 3 4 5; do $(BUILD)/tests/bench/einsim_engine_bench $$c; done | sort -g | sed -n 3p; done
	@# Sweeps: points per second and peak memory, one sweep per process; the median of 5 runs
	@# (3 for the million-point roofline screen), sorted by points/s.
	@for s in gpu-deployment tests/bench/data/decode-hardware.toml serve-capacity; do for i in 1 2 3 4 5; do $(BUILD)/tests/bench/einsim_sweep_bench $$s; done | sort -k7 -g | sed -n 3p; done
	@for s in roofline-1m roofline-archs; do for i in 1 2 3; do $(BUILD)/tests/bench/einsim_sweep_bench tests/bench/data/$$s.toml; done | sort -k7 -g | sed -n 2p; done

clean:
	rm -rf $(BUILD) build-asan build-fuzz
