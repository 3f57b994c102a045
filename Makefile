# Two entry points: `make demo` (the main job) and `make test` (everything CI checks). Each creates
# .venv on first use with the exact versions CI installs (constraints.txt). `make test` runs, in
# order: lint, the suite on those versions, the wheel smoke test (a built wheel installed in a fresh
# environment, run from outside the checkout), and RANGE_TESTS on the newest and on the oldest
# dependency releases pyproject.toml allows (constraints-oldest.txt). Each step is a target too.
# The extra environments live in .ci-venvs/ and borrow torch from .venv (.ci/shared_torch_venv.py).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# A fast subset that covers every dependency the ranges are about (tokenizers, conversion, loading,
# both pipelines, accelerate training and export).
RANGE_TESTS ?= tests/test_tokenization.py tests/test_loading.py tests/test_conversion.py \
	tests/test_diffusers_loading.py tests/test_pipeline_sd.py tests/test_pipeline_sdxl.py tests/test_train_loop.py

.PHONY: demo test lint test-pinned wheel-smoke test-newest test-oldest bench clean

$(STAMP): pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch torchvision
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(OFFLINE) $(BIN)/python examples/shapes_world/demo.py -o outputs/shapes_world

test: lint test-pinned wheel-smoke test-newest test-oldest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-pinned: $(STAMP)
	$(OFFLINE) $(BIN)/pytest -q

wheel-smoke: $(STAMP)
	bash .ci/wheel_smoke.sh

test-newest: $(STAMP)
	bash .ci/ranges.sh newest $(RANGE_TESTS)

test-oldest: $(STAMP)
	bash .ci/ranges.sh oldest $(RANGE_TESTS)

bench: $(STAMP)
	$(OFFLINE) $(BIN)/python bench/bench_text_encoding.py
	$(OFFLINE) $(BIN)/python bench/bench_pipelines.py
	$(OFFLINE) $(BIN)/python bench/bench_data_pipeline.py
	$(OFFLINE) $(BIN)/python bench/bench_train_step.py
	$(OFFLINE) $(BIN)/python bench/bench_prominence.py --size 256 --steps 20 --seeds 1 --detector-size 480

clean:
	rm -rf $(VENV) .ci-venvs outputs .pytest_cache .ruff_cache
