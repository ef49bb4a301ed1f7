#!/usr/bin/env bash
# Issue #18's GPU checks as one prepared run for a lent GPU machine, which starts bare, cannot reach a
# package index and holds torch but not mlflow, optuna or open_clip:
#
#   here, once:  make gpu-wheels                 (fills .devwheels/, git-ignored, about 46 MB)
#   device run:  bash bench/gpu_check.sh         (carry: [".devwheels"], timeout_s 600)
#
# It installs the carried wheels into /tmp/site where the Python lacks them, then runs the gpu-marked
# tests (every objective in bf16 on CUDA, both Table 6 readings, the crop store, two workers on two GPUs
# where there are two), bench/paper.py at the preset's batch 32 and at 128 (images/s, share of the bf16
# peak, first step cold and warm, peak memory), bench/compile.py on the paper preset (whether
# torch.compile pays there) and bench/train.py (the step's default path against the reference path).
# Each log goes to $OUT (the device tool's folder that comes back), else to /tmp/gpu_check; each part
# has its own time limit so that one hang does not take the others.
set -uo pipefail
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD:/tmp/site"
python=${PYTHON:-python3}

if ! "$python" -c "import mlflow, optuna, open_clip" 2>/dev/null && [ -d .devwheels ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devwheels/*.whl \
        || { echo "gpu_check: installing .devwheels failed" >&2; exit 1; }
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$out/gpu.txt" || echo "gpu_check: no nvidia-smi: the checks below run on the CPU"
"$python" -c "import torch, mlflow, optuna, open_clip; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    || { echo "gpu_check: a dependency is missing; run 'make gpu-wheels' here and carry .devwheels" >&2; exit 1; }

# The limits add up to 590 s, under the device tool's 600 s per command.
status=0
timeout 200 "$python" -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$out/pytest_gpu.log" || status=1
# The JSON alone on stdout (a file that parses); progress bars and errors to .err, whose last lines are shown
# (tqdm redraws with carriage returns: one "line" can hold a whole progress bar's history).
show_end() { tr '\r' '\n' < "$1" | grep -v '^[[:space:]]*$' | tail -n 3; }
timeout 120 "$python" bench/paper.py --json 2>"$out/paper.err" | tee "$out/paper.json" || status=1
show_end "$out/paper.err"
timeout 90 "$python" bench/paper.py --json --set batch_size=128 2>"$out/paper_batch128.err" | tee "$out/paper_batch128.json" || status=1
show_end "$out/paper_batch128.err"
timeout 120 "$python" bench/compile.py --preset paper --steps 20 2>&1 | tee "$out/compile.log" || status=1
timeout 60 "$python" bench/train.py --presets small --json 2>"$out/train.err" | tee "$out/train.json" || status=1
show_end "$out/train.err"
exit $status
