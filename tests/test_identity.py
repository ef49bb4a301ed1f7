"""A run's identity covers its data, CLIP weights and effective precision: what changes any trains anew, old runs stay."""

import dataclasses

import pytest
import torch
from optuna.trial import TrialState

from repro import bf16, tracking
from repro.data import domains
from repro.files import file_sha256, save_tensor
from repro.presets import preset_config
from repro.studies.runner import find_study, run_study
from repro.studies.spec import load_spec
from repro.studies.table import TablePlan
from repro.tracking import TRAIN_EXPERIMENT, experiment
from repro.train import evaluate
from repro.train.identity import identity, identity_hash, open_inputs

SPEC = """title = "identity check"
seeds = 1
[columns]
STB = "synth-stb"
[base]
mode = "iete"
[[rows]]
name = "Baseline"
set = { mode = "baseline" }
[[rows]]
name = "IE+TE"
set = { ratio = 0.6 }
"""
TINY = {"epochs": 1, "n_train": 32, "n_val": 16, "n_test": 16, "batch_size": 8}


def _run(spec, clip: str) -> dict[str, str]:
    """Run the two-row study with synthclip recipe `clip`; its run id per row."""
    plan = TablePlan(spec, preset_config("tiny", {**TINY, "clip": clip}))
    run_study(plan)
    trials = find_study(plan).get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2
    return {t.user_attrs["row"]: t.user_attrs["run_ids"]["STB"] for t in trials}


@pytest.mark.slow
def test_new_clip_weights_or_world_train_again_and_keep_the_old_runs(store, tmp_path, monkeypatch, request):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    path = tmp_path / "identity.toml"
    path.write_text(SPEC)
    spec = load_spec(path)

    first = _run(spec, "synthclip:tiny")
    # synthclip re-pretrained with another seed: other weights, so the CLIP cell trains again; the
    # Baseline reads no CLIP, so its finished run is reused.
    reseeded = _run(spec, "synthclip:tiny,seed=1")
    assert reseeded["Baseline"] == first["Baseline"]
    assert reseeded["IE+TE"] != first["IE+TE"]

    # A new world: every cell trains again.
    monkeypatch.setattr(domains, "GENERATOR_VERSION", domains.GENERATOR_VERSION + 1)
    new_world = _run(spec, "synthclip:tiny")
    assert not set(new_world.values()) & (set(first.values()) | set(reseeded.values()))

    client = tracking.client()
    runs = client.search_runs([experiment(TRAIN_EXPERIMENT)])
    old = {*first.values(), *reseeded.values()}
    assert old <= {r.info.run_id for r in runs if r.info.status == "FINISHED"}  # nothing lost or overwritten
    assert len({r.data.tags["run_hash"] for r in runs}) == 5
    ie = client.get_run(new_world["IE+TE"])
    assert ie.data.tags["clip_identity"] == "synthclip:tiny" and len(ie.data.tags["clip_weights_digest"]) == 64
    assert ie.data.tags["data_digest/synth-stb"] != client.get_run(first["IE+TE"]).data.tags["data_digest/synth-stb"]


def test_the_run_hash_covers_config_data_and_clip(store):
    cfg = preset_config("tiny", {**TINY, "mode": "baseline"})
    record = identity(cfg, open_inputs(cfg))
    diagnostics = {"synth-stb-style", "synth-stb-view", "synth-rhd-style", "synth-rhd-view"}
    assert set(record["data"]) == {"train", "val", "synth-stb", "synth-rhd", *diagnostics} and record["clip"] is None
    assert record["config"] == cfg.to_dict() and record["trainer_version"] >= 3
    changed = {**record, "data": {**record["data"], "val": {**record["data"]["val"], "digest": "0" * 64}}}
    assert identity_hash(changed) != identity_hash(record)
    assert identity_hash({**record, "clip": {"identity": "x", "weights_digest": "0"}}) != identity_hash(record)
    assert identity_hash(dict(reversed(record.items()))) == identity_hash(record)  # key order does not matter


def test_runs_whose_inputs_differ_elsewhere_share_one_copy_of_each_split(store):
    """A study worker opens the Baseline's, a CLIP row's and a restyled row's inputs in turn: their common
    splits are one object each, so their tensors are in memory once, not once per set of inputs."""
    baseline, clip_row, restyled = (
        preset_config("tiny", {**TINY, **fields})
        for fields in ({"mode": "baseline"}, {"mode": "iete", "ratio": 0.6}, {"mode": "baseline", "augment": "restyle-supervised"})
    )
    a, b, c = (open_inputs(cfg) for cfg in (baseline, clip_row, restyled))
    assert a is not b and a is not c and b.encoder is not None and "restyled" in c.splits  # three sets of inputs
    for role, split in a.splits.items():
        assert b.splits[role] is split and c.splits[role] is split, role


def test_the_run_hash_covers_the_precision_the_machine_computes_in(store, monkeypatch):
    """A bf16 run on a machine without native bf16 computes in fp32: it is another run than one in bf16."""
    cfg = preset_config("tiny", {**TINY, "mode": "baseline"})
    inputs = open_inputs(cfg)
    monkeypatch.setattr(bf16, "native", lambda device: True)
    native = identity(cfg, inputs)
    monkeypatch.setattr(bf16, "native", lambda device: False)
    emulated = identity(cfg, inputs)
    assert (native["precision_effective"], emulated["precision_effective"]) == ("bf16", "fp32")
    assert identity_hash(native) != identity_hash(emulated)
    fp32 = identity(dataclasses.replace(cfg, precision="fp32"), inputs)
    assert fp32["precision_effective"] == "fp32" and identity_hash(fp32) != identity_hash(emulated)  # the config differs


def test_a_gpu_run_records_cudnns_fp32_and_a_cpu_run_does_not(store, monkeypatch):
    """GPU runs computed with TF32 convolutions before cuDNN's fp32 was set: their hashes must not match today's."""
    from repro.train import identity as identity_module

    cfg = preset_config("tiny", {**TINY, "mode": "baseline"})
    inputs = open_inputs(cfg)
    monkeypatch.setattr(identity_module, "device_for_training", lambda: torch.device("cpu"))
    cpu = identity(cfg, inputs)
    monkeypatch.setattr(identity_module, "device_for_training", lambda: torch.device("cuda"))
    monkeypatch.setattr(bf16, "native", lambda device: True)
    gpu = identity(cfg, inputs)
    assert "cuda_conv_fp32" not in cpu and gpu["cuda_conv_fp32"] == "ieee"
    assert identity_hash({k: v for k, v in gpu.items() if k != "cuda_conv_fp32"}) != identity_hash(gpu)


def test_cuda_numerics_turn_tf32_off_and_time_the_algorithms():
    """What training and evaluation on a GPU set (the flags are process-wide and need no GPU to be set)."""
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark
    try:
        evaluate.cuda_numerics(torch.device("cpu"))
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark) == flags  # the CPU: untouched
        evaluate.cuda_numerics(torch.device("cuda"))
        assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cudnn.conv.fp32_precision != "tf32"
        assert torch.backends.cudnn.benchmark is True
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # torch's own readers of the flag still work
            pass
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = flags


def test_the_same_weights_saved_twice_have_one_digest(tmp_path):
    # A CLIP checkpoint's sha256 is part of the run hash: saving the same tensors again, under another
    # name or in another clone, must give the same bytes.
    weights = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}
    save_tensor(weights, tmp_path / "a" / "synthclip.pt")
    save_tensor(weights, tmp_path / "b" / "other.pt")
    assert file_sha256(tmp_path / "a" / "synthclip.pt") == file_sha256(tmp_path / "b" / "other.pt")
    assert torch.equal(torch.load(tmp_path / "b" / "other.pt", weights_only=True)["w"], weights["w"])
