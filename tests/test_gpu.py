"""Training on CUDA (issue #18): every objective in bf16, and study workers spread over two GPUs.

Run on a GPU machine with `pytest -m gpu`; without CUDA (or with one GPU, for the two-device test)
they skip. The CPU suite covers the same paths on the CPU (tests/test_train.py, test_devices.py).
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro import tracking
from repro.presets import preset_config
from repro.tracking import TRAIN_EXPERIMENT, experiment
from repro.train.run import train_run

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

# Every objective the trainer registers: Table 4's modes, Table 4(b)'s sum fusion, and Table 6's two
# readings of the augmentation (and the styles study's re-rendered positives).
OBJECTIVES = [
    {"mode": "baseline"},
    {"mode": "ie"},
    {"mode": "te"},
    {"mode": "iete"},
    {"mode": "iete", "model.fusion": "sum"},
    {"mode": "baseline", "augment": "normal-supervised"},
    {"mode": "baseline", "augment": "normal-contrastive"},
    {"mode": "baseline", "augment": "restyle-supervised"},
    {"mode": "baseline", "augment": "restyle-contrastive"},
]


@pytest.mark.parametrize("overrides", OBJECTIVES, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_every_objective_trains_on_cuda_in_bf16(store, overrides):
    cfg = preset_config("tiny", {**overrides, "epochs": 2})
    assert cfg.precision == "bf16" and cfg.memory_format == "channels_last"  # the defaults under test
    result = train_run(cfg)
    assert result.status == "FINISHED", result
    assert all(math.isfinite(v) for k, v in result.metrics.items() if k.endswith("epe_mm"))
    run = tracking.client().get_run(result.run_id)
    assert run.data.tags["device"] == "cuda:0" and run.data.tags["precision_effective"] == "bf16"
    assert math.isfinite(run.data.metrics["train/loss"])
    assert torch.backends.cudnn.benchmark  # cuDNN picks its algorithms by timing (issue #18's GPU step)
    assert not torch.backends.cudnn.allow_tf32  # f_PP and the augmentation's convolutions in IEEE fp32


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_workers_train_on_two_gpus(store, shared_cache, tmp_path):
    env = {
        **os.environ,
        "REPRO_MLRUNS": str(store),
        "REPRO_CACHE": str(shared_cache),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [sys.executable, "-m", "repro", "table4a", "--preset", "tiny", "--workers", "2", "--devices", "cuda:0,cuda:1"]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    train_exp = experiment(TRAIN_EXPERIMENT)  # before tracking.client(): it points MLflow at this test's store
    runs = tracking.client().search_runs([train_exp])
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["device"] for r in runs} == {"cuda:0", "cuda:1"}  # each worker on its own GPU
    assert {r.data.tags["precision_effective"] for r in runs} == {"bf16"}


def test_a_checkpoint_brings_back_the_gpus_generator():
    """A resumed run draws the augmentation's noise (drawn on the device) where it stopped, not from its seed again."""
    from repro.train.checkpoints import rng_state, set_rng_state

    torch.cuda.manual_seed(3)
    state = rng_state()
    first = torch.randn(4, device="cuda")
    torch.cuda.manual_seed(99)  # as a resumed run's new_state seeds every generator
    set_rng_state(state)
    assert torch.equal(torch.randn(4, device="cuda"), first)
