# The two set-up commands of the README. Each creates .venv if needed, installs, and runs.
# --no-cache-dir: torch's CUDA build is about 4 GB of wheels; a copy of them in pip's cache would
# double what the install needs on disk (the venv itself is about 6.4 GB).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test bench gpu-wheels

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

# What a lent GPU machine lacks for bench/gpu_check.sh (it holds torch and its CUDA stack, not our other
# dependencies, and reaches no index), as wheels for its Python 3.12: the pins above with the packages
# they need that its image does not hold. Carried there as .devwheels.
GPU_WHEELS := alembic==1.20.1 annotated_types==0.8.0 blinker==1.9.0 cachetools==7.3.3 cffi==2.1.1 \
	colorlog==6.12.0 cryptography==50.0.2 databricks_sdk==0.162.0 docker==7.2.0 fastapi==0.165.0 flask==3.1.3 \
	flask_cors==6.0.5 ftfy==6.3.1 gitdb==4.0.12 gitpython==3.2.1 google_auth==2.63.0 graphene==3.4.3 \
	graphql_core==3.2.14 graphql_relay==3.2.0 gunicorn==26.2.0 huey==3.5.4 importlib_metadata==9.1.0 \
	itsdangerous==2.2.0 mako==1.4.3 mlflow==3.17.2 mlflow_skinny==3.17.2 mlflow_tracing==3.17.2 \
	open_clip_torch==3.3.0 opentelemetry_api==1.45.2 opentelemetry_proto==1.45.2 opentelemetry_sdk==1.45.2 \
	opentelemetry_semantic_conventions==0.66b2 optuna==5.0.0 platformdirs==4.14.9 prettytable==3.18.0 \
	psycopg2_binary==2.9.13 pyasn1==0.6.5 pyasn1_modules==0.4.2 pycparser==3.12 pydantic==2.14.4 \
	pydantic_core==2.50.5 python_dotenv==1.2.4 skops==0.16.0 sqlalchemy==2.1.9 sqlparse==0.6.1 \
	starlette==1.10.0 torchinfo==1.8.0 typing_inspection==0.4.5 uvicorn==0.54.0 wcwidth==0.9.4
gpu-wheels:
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .devwheels $(GPU_WHEELS)
