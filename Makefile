# The two set-up commands of the README. Each creates .venv if needed, installs, and runs.
# uv (from the package registry, into .venv) installs what pip would, the same versions, in about a
# quarter of pip's time (22 against 90 s, RESULTS.md). It reads neither pip.conf nor PIP_INDEX_URL, so
# where it cannot install (say, behind a mirror only pip is configured for) pip does it, as it did
# before. --no-cache(-dir): torch's CUDA build is about 4 GB of wheels; a copy of them in a cache would
# double what the install needs on disk (the venv is about 6 GB).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test bench gpu-wheels

$(BIN)/repro: pyproject.toml
	$(PY) -m venv $(VENV)
	{ $(BIN)/pip install -q --no-cache-dir 'uv>=0.13' && $(BIN)/uv pip install -q --no-cache --python $(BIN)/python -e '.[test]'; } || \
		{ echo "make: uv did not install the dependencies; pip installs them" >&2 && $(BIN)/pip install -q --no-cache-dir -e '.[test]'; }
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

# What a lent GPU machine lacks for bench/gpu_check.sh (it holds torch and its CUDA stack, not our other
# dependencies, and reaches no index): these packages as wheels for its Python 3.12, at the versions
# installed here, so that pyproject.toml stays the only place that pins them. Carried there as .devwheels.
GPU_PACKAGES := alembic annotated_types blinker cachetools cffi colorlog cryptography databricks_sdk docker \
	fastapi flask flask_cors ftfy gitdb gitpython google_auth graphene graphql_core graphql_relay gunicorn huey \
	importlib_metadata itsdangerous mako mlflow mlflow_skinny mlflow_tracing open_clip_torch opentelemetry_api \
	opentelemetry_proto opentelemetry_sdk opentelemetry_semantic_conventions optuna platformdirs prettytable \
	psycopg2_binary pyasn1 pyasn1_modules pycparser pydantic pydantic_core python_dotenv skops sqlalchemy \
	sqlparse starlette torchinfo typing_inspection uvicorn wcwidth
gpu-wheels: install
	$(BIN)/python -c 'import sys, importlib.metadata as m; print(*(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' \
		$(GPU_PACKAGES) | xargs $(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .devwheels
