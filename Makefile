# Kiln: the two commands of the README are `make run` and `make test`.
# Everything else here is a habit with one command each.

BUILD      ?= build
VENV       := .venv
PY         := $(VENV)/bin/python
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
SITE        = $(shell $(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

.PHONY: all setup configure build install docs run test unit pytest test-asan test-tsan fuzz format clean

all: build

setup:
	@scripts/setup.sh

# Configure once per build folder; warnings are errors in every build we run.
$(BUILD)/build.ninja: | setup
	@cmake -S . -B $(BUILD) -G Ninja -DKILN_PYTHON=$(abspath $(PY)) -DKILN_WERROR=ON $(CMAKE_ARGS) >/dev/null

configure: $(BUILD)/build.ninja

build: setup $(BUILD)/build.ninja
	@cmake --build $(BUILD) -j $(JOBS)
	@# Make `import kiln` and the `kiln` command work inside the virtualenv.
	@echo "$(abspath $(BUILD))/python" > "$(SITE)/kiln-build.pth"
	@ln -sf "$(abspath $(BUILD))/tools/kiln/kiln" $(VENV)/bin/kiln

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

# The importer fuzz target (make fuzz) joins `make test` once the ops' shape
# inference, which import now runs, has had its own fuzzing round.
test: unit pytest

# Sanitizer builds of the C++ tests, each in its own folder.
test-asan:
	@$(MAKE) --no-print-directory unit BUILD=build-asan CMAKE_ARGS="-DKILN_SANITIZE='address;undefined' -DKILN_CUDA=OFF -DKILN_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Debug"

test-tsan:
	@$(MAKE) --no-print-directory unit BUILD=build-tsan CMAKE_ARGS="-DKILN_SANITIZE=thread -DKILN_CUDA=OFF -DKILN_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo"

# libFuzzer target for the ONNX importer (clang, every library instrumented),
# run for FUZZ_SECONDS on the seeds and regression files in tests/regress.
FUZZ_SECONDS ?= 60
fuzz: setup
	@cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DKILN_FUZZ=ON -DKILN_CUDA=OFF -DKILN_BUILD_PYTHON=OFF \
	  -DKILN_PYTHON=$(abspath $(PY)) >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target onnx_import_fuzz plan_load_fuzz
	@mkdir -p build-fuzz/corpus build-fuzz/plan-corpus
	@echo "fuzz: onnx_import_fuzz for $(FUZZ_SECONDS) s"
	@build-fuzz/tests/fuzz/onnx_import_fuzz -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=65536 \
	  -timeout=10 -artifact_prefix=build-fuzz/ build-fuzz/corpus tests/regress > build-fuzz/fuzz.log 2>&1 \
	  || { tail -40 build-fuzz/fuzz.log; echo "fuzz: finding saved under build-fuzz/ (add it to tests/regress)"; exit 1; }
	@echo "fuzz: plan_load_fuzz for $(FUZZ_SECONDS) s"
	@build-fuzz/tests/fuzz/plan_load_fuzz -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=262144 \
	  -timeout=10 -artifact_prefix=build-fuzz/plan- build-fuzz/plan-corpus tests/data/plans > build-fuzz/plan-fuzz.log 2>&1 \
	  || { tail -40 build-fuzz/plan-fuzz.log; echo "fuzz: finding saved under build-fuzz/ (add it to tests/regress)"; exit 1; }
	@grep -E "^#[0-9]+.*DONE" build-fuzz/fuzz.log | tail -1

format:
	@clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf build build-asan build-tsan build-fuzz
