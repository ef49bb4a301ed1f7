# The two set-up commands of the README. Each creates .venv if needed, installs, and runs.
# --no-cache-dir: torch's CUDA build is about 4 GB of wheels; a copy of them in pip's cache would
# double what the install needs on disk (the venv itself is about 6.4 GB).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test bench

$(BIN)/repro: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --no-cache-dir --upgrade pip
	$(BIN)/pip install -q --no-cache-dir -e '.[test]'
	touch $(BIN)/repro

install: $(BIN)/repro

# The main job on the embedded default (the offline synthetic hand world): pre-train the suite's
# small CLIP (reused once done), then reproduce Table 4(a) and print it beside the paper's numbers.
# Two single-threaded workers train two cells at once: 1.30x the throughput of one process with two
# threads on a two-core machine (bench/workers.py, RESULTS.md).
PRESET ?= small
WORKERS ?= 2
run: install
	$(BIN)/repro clip pretrain --preset small
	$(BIN)/repro table4a --preset $(PRESET) --workers $(WORKERS)

# The formatter and the linter first (configured in pyproject.toml), then the suite, one pytest-xdist
# worker per core; a module's tests stay on one worker (--dist loadfile), which builds its data once.
test: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n auto --dist loadfile

bench: install
	$(BIN)/python bench/render.py
	$(BIN)/python bench/clip_cache.py
	$(BIN)/python bench/train.py
