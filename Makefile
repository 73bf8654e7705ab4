# `make demo` and `make test` work from a fresh clone: they create .venv and install first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_RUNS ?= runs

.PHONY: install demo test test-fast lint format bench bench-accuracy clean

install: $(STAMP)

# --no-cache-dir: no second copy of the wheels (TensorFlow alone ~0.6 GB) in ~/.cache/pip; the
# last CI run stopped at "No space left on device" during this install
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-cache-dir --upgrade pip
	$(BIN)/python -m pip install --quiet --no-cache-dir -e '.[dev]'
	touch $(STAMP)

# DEMO_SET: extra train options, e.g. DEMO_SET="--set training.epochs=1", and DEMO_RUNS the
# runs folder (the tests set both);
# train's output goes through a file, not `tee /dev/stderr`: reopening /dev/stderr truncates
# the file that `make demo > out.txt 2>&1` writes to
demo: $(STAMP)
	@set -e; mkdir -p $(DEMO_RUNS); out=$(DEMO_RUNS)/.demo-train.out; \
	$(BIN)/forecast train configs/univariate.yaml --runs-dir $(DEMO_RUNS) $(DEMO_SET) > $$out; \
	cat $$out; run=$$(tail -n 1 $$out); rm $$out; \
	$(BIN)/forecast predict --run "$$run" --csv data/msft_daily.csv --horizon 10; \
	$(BIN)/forecast plot --run "$$run"; \
	echo; echo "Results are in $$run (metrics.json, test_predictions.csv, forecast.csv, *.png)"

# the tests run in one worker process per core (pytest-xdist), a test file's tests in one
# worker so that its module fixtures train once; TEST_WORKERS=0 runs them in this process
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

# mypy: its settings are in pyproject.toml ([tool.mypy])
lint: $(STAMP)
	$(BIN)/ruff check forecast tests benchmarks
	$(BIN)/ruff format --check forecast tests benchmarks
	$(BIN)/mypy forecast

format: $(STAMP)
	$(BIN)/ruff format forecast tests benchmarks
	$(BIN)/ruff check --fix forecast tests benchmarks

# the bench extra: plain PyTorch and Keras on JAX beside ours (benchmarks/peers.py), and
# statsforecast (benchmarks/accuracy.py, also run by bench's backtest group)
# (torch pinned first to the CPU build this machine class keeps on disk: the extra's range
# alone would let pip fetch a CUDA build of several GB)
$(VENV)/.installed-bench: $(STAMP)
	$(BIN)/python -m pip install --quiet 'torch==2.13.0'
	$(BIN)/python -m pip install --quiet --no-cache-dir -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py

# the recommended configs vs seasonal naive and statsforecast on data/accuracy (about an hour)
bench-accuracy: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/accuracy.py --seeds 1 2 3

clean:
	rm -rf $(VENV) runs plots .pytest_cache .ruff_cache .mypy_cache *.egg-info
