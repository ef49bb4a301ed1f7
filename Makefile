# The two set-up commands of the README. Each creates .venv if needed, installs, and runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test bench

$(BIN)/repro: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/repro

install: $(BIN)/repro

# The main job on the embedded default (the offline synthetic hand world).
run: install
	$(BIN)/repro data build --domain synth-frei --split train
	$(BIN)/repro data show --domain synth-frei --out reports/figures/synth-frei.png

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/render.py
