# gpux — the commands a developer and CI use. `make` builds build/gpux; `make test` runs every
# test; `make bench` prints the benchmark tables. Dependencies are installed first, idempotently.
BUILD ?= build
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local

.PHONY: all deps gpux install test test-unit test-asan test-tsan conformance bench clean demo fuzz

all: gpux

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DGPUX_WERROR=ON >/dev/null

gpux: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The command, libgpux.so/.a, gpux.h, gpux.pc, the man page, shell completions, the Python
# package and the Dawn library under $(PREFIX) (DESTDIR is honoured for packaging). The prefix is
# configured into the build, so programs linking libgpux.a find the installed Dawn too.
install: deps $(BUILD)/CMakeCache.txt
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	cmake --install $(BUILD)

# Every test: unit, CLI, app, conformance and real-model tests; then the unit tests and the
# conformance gate again under AddressSanitizer + UndefinedBehaviorSanitizer.
test: gpux
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) test-asan

test-asan: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DGPUX_SANITIZE=ON -DGPUX_WERROR=ON >/dev/null
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp ctest --output-on-failure -j $(JOBS) -R '^test-|^conformance-cpu$$'

# The tests of code that runs on several threads (the thread pool, the CPU kernels) under
# ThreadSanitizer, in $(BUILD)-tsan; not part of `make test`.
test-tsan: deps
	cmake -S . -B $(BUILD)-tsan -DCMAKE_BUILD_TYPE=Debug -DGPUX_TSAN=ON -DGPUX_WERROR=ON >/dev/null
	cmake --build $(BUILD)-tsan -j $(JOBS) --target test-threadpool test-core test-cpu-kernels
	cd $(BUILD)-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS) \
	  -R '^test-(threadpool|core|cpu-kernels|cpu-kernels-avx2)$$'

# libFuzzer harnesses (tests/fuzz/fuzz-*.c) built with clang, ASan and UBSan into $(BUILD)-fuzz, each
# run for FUZZ_SECONDS; crashing inputs land in $(BUILD)-fuzz/crashes/ (once fixed, keep each in
# tests/fuzz/crashes/, which `make test` replays).
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake -S . -B $(BUILD)-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DGPUX_SANITIZE=ON \
	  -DGPUX_FUZZ=ON -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
	cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzzers
	tests/fuzz/run.sh $(BUILD)-fuzz $(FUZZ_SECONDS)

# Builds gpux and runs it on a real pretrained model: PaddleOCR reads a text line gpux renders.
demo: gpux
	scripts/demo.sh

bench: gpux
	scripts/bench.sh

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-fuzz
