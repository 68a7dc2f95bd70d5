# Thin wrapper over CMake. `make demo` and `make test` are the two set-up commands of the README: each
# installs what is missing, builds, and runs.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps build demo test unit bench format clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Traces the bundled demo app for a short while and writes the report to out/demo.
demo: build
	bash scripts/demo.sh $(BUILD)/memlens

# The whole suite: unit, golden, BPF load and integration tests (the last ones need root and BPF; under
# CI=true they fail instead of skipping when a capability is missing).
# Unit tests are independent and CPU-bound: they run in parallel. The rest run one at a time, as what they
# trace is timing-sensitive (V8's GC heuristics move with the CPU a process gets). Both parts always run.
test: build
	bash scripts/test-prepare.sh
	cd $(BUILD) && unit=0 && ctest --output-on-failure --timeout 900 -L unit -j $(JOBS) $(CTEST_ARGS) || unit=$$?; \
	  ctest --output-on-failure --timeout 900 -LE unit $(CTEST_ARGS) && exit $$unit

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

bench: build
	bash bench/run.sh $(BUILD)/memlens

format:
	clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.h' 'include/*.h' 'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'bpf/*.c' 'bpf/*.h' | grep -v vmlinux.h)

clean:
	rm -rf $(BUILD)
