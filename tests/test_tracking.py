"""The suite's MLflow store: experiments marked as model training for MLflow 3's UI, training runs
named, tagged and costed (repro.train.cost), and a table's cost summed for its report (repro.report.cost)."""

import os
from types import SimpleNamespace

import pytest
import torch

from repro import tracking
from repro.presets import preset_config
from repro.report.cost import cost_facts
from repro.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, client, experiment
from repro.train.cost import CPU, DEVICE, DEVICE_NAME, FIRST_STEP, PEAK_RSS, WALL, Meter, cpu_model, device_tags
from repro.train.run import run_name, train_run


def test_experiments_are_marked_as_model_training(store):
    exp = experiment("repro-train")
    assert client().get_experiment(exp).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    older = client().create_experiment("made-before-the-tag")  # as the suite did before it set the tag
    assert EXPERIMENT_KIND_TAG not in client().get_experiment(older).tags
    assert experiment("made-before-the-tag") == older
    assert client().get_experiment(older).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


@pytest.mark.parametrize(
    "overrides, name",
    [
        ({"mode": "iete", "ratio": 0.4}, "IE+TE r=0.4 concat seed 0"),
        ({"mode": "te", "model.fusion": "sum", "seed": 2}, "TE sum seed 2"),
        ({"mode": "ie"}, "IE concat seed 0"),
        ({"mode": "baseline", "model.fusion": "sum"}, "Baseline seed 0"),  # a Baseline has no fusion
        ({"mode": "baseline", "augment": "normal-supervised", "seed": 1}, "Baseline normal-supervised seed 1"),
        ({"mode": "iete", "cv_folds": 10, "cv_fold": 3}, "IE+TE r=0.6 concat fold 4/10 seed 0"),
    ],
)
def test_a_plain_training_is_named_by_its_config(overrides, name):
    assert run_name(preset_config("tiny", overrides)) == name


def test_a_training_run_logs_its_name_seed_preset_cost_and_device(store):
    cfg = preset_config("tiny", {"mode": "baseline", "epochs": 2, "n_train": 32, "n_val": 16, "n_test": 16, "batch_size": 8, "seed": 3})
    result = train_run(cfg)
    run = client().get_run(result.run_id)
    assert run.info.run_name == "Baseline seed 3"
    tags = run.data.tags
    assert tags["repro.seed"] == "3" and tags["repro.preset"] == "tiny"
    assert tags[DEVICE] == ("cuda:0" if torch.cuda.is_available() else "cpu") and tags[DEVICE_NAME]
    metrics = run.data.metrics
    assert 0 < metrics[CPU] and 0 < metrics[WALL] and metrics[PEAK_RSS] > 100  # torch alone takes more
    assert 0 < metrics[FIRST_STEP] < metrics[WALL]
    wall = client().get_metric_history(result.run_id, WALL)  # after each epoch, then at the end
    assert [m.step for m in wall] == [1, 2, 2] and sorted(m.value for m in wall) == [m.value for m in wall]


def test_the_meter_adds_a_resumed_runs_earlier_sessions():
    meter = Meter()
    fresh = meter.metrics({})
    assert fresh[WALL] >= 0 and fresh[CPU] >= 0 and fresh[PEAK_RSS] > 0 and FIRST_STEP not in fresh  # no step yet
    meter.step(0)
    first = meter.metrics({})[FIRST_STEP]
    meter.step(1)  # only the first step sets it
    assert meter.metrics({FIRST_STEP: 1e9})[FIRST_STEP] == first <= meter.metrics({})[WALL]
    resumed = meter.metrics({WALL: 100.0, CPU: 50.0, PEAK_RSS: 1e9})
    assert resumed[WALL] >= 100.0 and resumed[CPU] >= 50.0 and resumed[PEAK_RSS] == 1e9
    assert device_tags(torch.device("cpu")) == {DEVICE: "cpu", DEVICE_NAME: cpu_model()} and cpu_model()


def _run(seed, wall=None, cpu=None, peak=None, device="cpu", name="Xeon"):
    metrics = {} if wall is None else {WALL: wall, CPU: cpu, PEAK_RSS: peak}
    return SimpleNamespace(metrics=metrics, tags={"repro.seed": str(seed), DEVICE: device, DEVICE_NAME: name}, params={})


def test_cost_facts_sum_a_tables_runs():
    runs = {
        "a": _run(0, 60.0, 100.0, 900.0),
        "b": _run(0, 90.0, 170.0, 1200.4),
        "c": _run(1, 7000.0, 7300.0, 800.0, "cuda:0", "NVIDIA H200"),
        "d": _run(1),  # trained before runs logged their cost
    }
    assert cost_facts(runs) == [
        ("Compute", "119.2 min wall time, 2.10 h CPU time, summed over 3 runs; 1 run without cost metrics"),
        ("Compute per seed", "seed 0: 2.5 min wall, 4.5 min CPU (2 runs); seed 1: 116.7 min wall, 2.03 h CPU (1 run)"),
        ("Peak memory", "1200 MB (the largest peak resident memory of a run's process)"),
        ("Devices", "cpu (Xeon): 2 runs, cuda:0 (NVIDIA H200): 1 run"),
    ]
    assert cost_facts({"d": _run(0)}) == [("Compute", "not measured: no cost metrics in the table's 1 run")]


def test_processes_opening_a_fresh_store_at_once_all_succeed(tmp_path):
    """Two `repro train` on a fresh store raced to create its tables and one failed with "duplicate
    column name"; the store is now created under a lock."""
    import subprocess
    import sys

    code = "from repro import tracking; tracking.experiment('repro-train'); print('ok')"
    env = {**os.environ, "REPRO_MLRUNS": str(tmp_path / "mlruns")}
    env.pop("REPRO_TRACKING_URI", None)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-500:] for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["ok"] * 4


def test_the_git_state_is_read_once_per_process(monkeypatch):
    """A worker runs the code it imported: an edit of the tree later (here: git unreadable) does not relabel its runs."""
    first = tracking.git_state()
    assert len(first["git_commit"]) == 40  # the tests run from a clone

    def unreadable(*args, **kwargs):
        raise OSError("git is gone")

    monkeypatch.setattr(tracking.subprocess, "run", unreadable)
    assert tracking.git_state() == first
