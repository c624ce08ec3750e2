# Kiln: the two commands of the README are `make run` and `make test`.
# Everything else here is a habit with one command each.

BUILD      ?= build
VENV       := .venv
PY         := $(VENV)/bin/python
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
SITE        = $(shell $(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

.PHONY: all setup configure build install docs run test unit pytest test-asan test-tsan fuzz fuzz-import fuzz-plan format clean

all: build

setup:
	@scripts/setup.sh

# Configure once per build folder; warnings are errors in every build we run.
$(BUILD)/build.ninja: | setup
	@cmake -S . -B $(BUILD) -G Ninja -DKILN_PYTHON=$(abspath $(PY)) -DKILN_WERROR=ON $(CMAKE_ARGS) >/dev/null

configure: $(BUILD)/build.ninja

build: setup $(BUILD)/build.ninja
	@cmake --build $(BUILD) -j $(JOBS)
	@# Make `import kiln` and the `kiln` command work inside the virtualenv
	@# (the main build only: the sanitizer builds must not take them over).
	@if [ "$(BUILD)" = build ]; then \
	  echo "$(abspath $(BUILD))/python" > "$(SITE)/kiln-build.pth"; \
	  ln -sf "$(abspath $(BUILD))/tools/kiln/kiln" $(VENV)/bin/kiln; \
	fi

# Install libkiln, its headers and CMake package (find_package(Kiln)), the kiln
# command and the Python package under PREFIX (cmake/package.cmake).
PREFIX ?= /usr/local
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

# The docs site (mkdocs.yml) into $(BUILD)/site, after regenerating the CLI, C++
# and Python reference pages from the program (scripts/gen_docs.py).
docs: build
	@PYTHONPATH=$(abspath $(BUILD))/python $(PY) scripts/gen_docs.py --kiln $(BUILD)/tools/kiln/kiln
	@NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d $(abspath $(BUILD))/site

# Load and run the bundled example models and print their results, then serve
# examples/model_repository and query it with tritonclient (HTTP and gRPC).
run: build
	@$(PY) examples/run_examples.py
	@$(PY) examples/serve_examples.py

unit: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

pytest: build
	@$(PY) -m pytest -q tests/python

test: unit pytest fuzz-import fuzz-plan

# Sanitizer builds of the C++ tests, each in its own folder.
# Each configures its folder every time, so a folder configured with other
# options (an older Makefile's) gets these.
ASAN_ARGS := -DKILN_SANITIZE='address;undefined' -DKILN_CUDA=OFF -DKILN_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Debug
TSAN_ARGS := -DKILN_SANITIZE=thread -DKILN_CUDA=OFF -DKILN_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
test-asan: setup
	@cmake -S . -B build-asan -G Ninja -DKILN_PYTHON=$(abspath $(PY)) -DKILN_WERROR=ON $(ASAN_ARGS) >/dev/null
	@# A hostile model may ask for more memory than exists: malloc must return
	@# null (which the code handles) rather than abort the test.
	@ASAN_OPTIONS=allocator_may_return_null=1 $(MAKE) --no-print-directory unit BUILD=build-asan

test-tsan: setup
	@cmake -S . -B build-tsan -G Ninja -DKILN_PYTHON=$(abspath $(PY)) -DKILN_WERROR=ON $(TSAN_ARGS) >/dev/null
	@# Uninstrumented libraries' hand-offs are invisible to TSan (tests/tsan.supp says which).
	@TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp) allocator_may_return_null=1" \
	  $(MAKE) --no-print-directory unit BUILD=build-tsan
	@# The server end to end, with the stock clients, against the TSan-built kiln:
	@# a report fails the test whose server printed it (tests/python/server_util.py).
	@KILN_EXE=$(abspath build-tsan/tools/kiln/kiln) \
	  TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp) allocator_may_return_null=1" \
	  $(PY) -m pytest -q tests/python/test_server_*.py tests/python/test_triton_diff.py

# libFuzzer targets (clang; every library instrumented with ASan+UBSan and
# coverage; -O1 and line tables keep the clang build small enough for CI).
# `make fuzz-import` and `make fuzz-plan` (both part of `make test`; `make
# fuzz` runs the two) fuzz the ONNX importer and the plan loader for
# FUZZ_SECONDS each. Seeds and past findings live in tests/regress
# (importer) and tests/data/plans (plans).
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz

$(FUZZ_BUILD)/build.ninja: | setup
	@cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=None \
	  -DCMAKE_CXX_FLAGS="-O1 -gline-tables-only" -DKILN_FUZZ=ON -DKILN_CUDA=OFF -DKILN_BUILD_PYTHON=OFF \
	  -DKILN_PYTHON=$(abspath $(PY)) >/dev/null

fuzz-import: $(FUZZ_BUILD)/build.ninja
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target onnx_import_fuzz
	@scripts/run_fuzzer.sh $(FUZZ_BUILD)/tests/fuzz/onnx_import_fuzz $(FUZZ_SECONDS) 65536 tests/regress

fuzz-plan: $(FUZZ_BUILD)/build.ninja
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target plan_load_fuzz
	@scripts/run_fuzzer.sh $(FUZZ_BUILD)/tests/fuzz/plan_load_fuzz $(FUZZ_SECONDS) 262144 tests/data/plans

fuzz: fuzz-import fuzz-plan

format:
	@clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf build build-asan build-tsan build-fuzz
