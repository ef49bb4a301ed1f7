"""--devices: which workers run on which device, checked against fake device lists (no GPU needed)."""

import pytest
import torch

from repro.cli import main
from repro.config import ConfigError
from repro.studies import runner
from repro.studies.runner import DEVICE_ENV, Cell, assign_devices, check_devices, run_study, worker_env

POPEN = runner.subprocess.Popen


def fake_gpus(monkeypatch, n: int) -> None:
    """Make torch see `n` GPUs (none: a CPU-only machine)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)


class OneCell:
    """A plan whose one cell trains nothing: the study machinery alone."""

    study_name = journal = "devices"

    def cells(self):
        return [Cell("only")]

    def run_cell(self, cell, train):
        return 1.0, {}

    def run_name(self, cell, cfg):
        return cell.key

    def describe(self):
        return {}

    def to_json(self):
        return {}


class Recorder:
    """Stands in for subprocess.Popen of a study worker: records its environment, and the worker exits
    at once; any other process (git, for the runs' tags) starts as usual."""

    def __init__(self):
        self.envs = []

    def __call__(self, cmd, **kwargs):
        if cmd[1:3] != ["-m", "repro.studies.runner"]:
            return POPEN(cmd, **kwargs)
        self.envs.append(kwargs["env"])
        return self

    def poll(self):
        return 0

    returncode = 0


@pytest.mark.parametrize(
    "devices, workers, expected",
    [
        (["cuda:0", "cuda:1"], 2, ["cuda:0", "cuda:1"]),
        (["cuda:0", "cuda:1"], 5, ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]),  # several per GPU
        (["cuda:0", "cuda:1", "cuda:2"], 2, ["cuda:0", "cuda:1"]),
        (["cpu"], 3, ["cpu"] * 3),
        (["cuda:1", "cpu"], 3, ["cuda:1", "cpu", "cuda:1"]),
    ],
)
def test_workers_go_round_robin_over_the_devices(devices, workers, expected):
    assert assign_devices(devices, workers) == expected


def test_devices_default_to_every_gpu_and_must_be_visible(monkeypatch):
    fake_gpus(monkeypatch, 2)
    assert check_devices(None) == ["cuda:0", "cuda:1"]
    assert check_devices(["cuda:1", "cpu"]) == ["cuda:1", "cpu"]
    with pytest.raises(ConfigError) as err:
        check_devices(["cuda:0", "cuda:7"])
    assert str(err.value) == "--devices: 'cuda:7' is not a visible device (visible: cuda:0, cuda:1, cpu)"
    with pytest.raises(ConfigError, match="'gpu0' is not a visible device"):
        check_devices(["gpu0"])
    with pytest.raises(ConfigError, match="names a device twice; --workers N runs several workers per device"):
        check_devices(["cuda:0", "cuda:0"])
    with pytest.raises(ConfigError, match="no device given"):
        check_devices([])

    fake_gpus(monkeypatch, 0)
    assert check_devices(None) == ["cpu"]
    with pytest.raises(ConfigError) as err:
        check_devices(["cuda:0"])
    assert str(err.value) == "--devices: 'cuda:0' is not a visible device (visible: cpu)"


def test_a_worker_sees_only_its_own_gpu():
    assert worker_env("cuda:1", "4", {"PATH": "/bin"}) == {
        "PATH": "/bin",
        "OMP_NUM_THREADS": "4",
        "CUDA_VISIBLE_DEVICES": "1",
        DEVICE_ENV: "cuda:1",
    }
    assert worker_env("cpu", "4", {})["CUDA_VISIBLE_DEVICES"] == ""  # no GPU: device_for_training() picks the cpu
    # Under a parent's own CUDA_VISIBLE_DEVICES, torch's cuda:N is its N-th entry.
    assert worker_env("cuda:1", "4", {"CUDA_VISIBLE_DEVICES": "2, 5"})["CUDA_VISIBLE_DEVICES"] == "5"
    assert worker_env("cuda:0", "4", {"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb"})["CUDA_VISIBLE_DEVICES"] == "GPU-aa"


def test_worker_processes_get_their_devices(store, monkeypatch):
    monkeypatch.setattr(runner, "POLL_S", 0.0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cases = [  # (GPUs, --workers, --devices): each worker's CUDA_VISIBLE_DEVICES
        (2, None, None, ["0", "1"]),  # default: one worker per GPU
        (2, 3, None, ["0", "1", "0"]),
        (3, None, ["cuda:2", "cuda:0"], ["2", "0"]),
        (2, None, ["cuda:1"], ["1"]),  # one worker, but not on the GPU this process would pick
        (2, None, ["cpu"], [""]),
        (0, 2, None, ["", ""]),
    ]
    for gpus, workers, devices, visible in cases:
        fake_gpus(monkeypatch, gpus)
        popen = Recorder()
        monkeypatch.setattr(runner.subprocess, "Popen", popen)
        run_study(OneCell(), workers, devices=devices)
        assert [env["CUDA_VISIBLE_DEVICES"] for env in popen.envs] == visible
        assert [env[DEVICE_ENV] for env in popen.envs] == assign_devices(devices or check_devices(None), len(visible))


def test_one_worker_on_its_own_device_runs_in_this_process(store, monkeypatch):
    fake_gpus(monkeypatch, 0)
    popen = Recorder()
    monkeypatch.setattr(runner.subprocess, "Popen", popen)
    session = run_study(OneCell())
    assert popen.envs == [] and not runner.missing_cells(session)
    [trial] = session.study.get_trials()
    assert trial.user_attrs["device"] == "cpu"  # where the cell ran, on record


@pytest.mark.parametrize("command", [["table4a"], ["all"], ["tune", "--folds", "2", "--params", "ratio"]])
def test_cli_rejects_an_invisible_device(store, monkeypatch, capsys, command):
    fake_gpus(monkeypatch, 2)
    assert main([*command, "--preset", "tiny", "--devices", "cuda:0,cuda:7"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "repro: error: --devices: 'cuda:7' is not a visible device (visible: cuda:0, cuda:1, cpu)"
