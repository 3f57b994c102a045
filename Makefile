# Two entry points: `make demo` (the main job) and `make test` (the suite). Each creates
# .venv on first use with the exact versions CI installs (constraints.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch torchvision
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(OFFLINE) $(BIN)/python examples/shapes_world/demo.py --output outputs/shapes_world

test: $(STAMP)
	$(BIN)/ruff check .
	$(OFFLINE) $(BIN)/pytest -q

bench: $(STAMP)
	$(OFFLINE) $(BIN)/python bench/bench_text_encoding.py
	$(OFFLINE) $(BIN)/python bench/bench_pipelines.py
	$(OFFLINE) $(BIN)/python bench/bench_data_pipeline.py
	$(OFFLINE) $(BIN)/python bench/bench_train_step.py
	$(OFFLINE) $(BIN)/python bench/bench_prominence.py --size 256 --steps 20 --seeds 1 --detector-size 480

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
