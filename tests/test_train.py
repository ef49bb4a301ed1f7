"""The trainer: determinism, resume after an interruption, the NaN guard, dedupe by run hash, cross-validation, what it logs."""

import contextlib
import json
import math
import sys

import mlflow
import pytest
import torch

import repro.train.evaluate as evaluate
import repro.train.loop as loop
import repro.train.objectives as objectives
import repro.train.run as run_module
import repro.train.working_weights as working_weights
from repro import bf16, tracking
from repro.presets import preset_config
from repro.train.run import find_runs, train_run


def _baseline(**overrides):
    return preset_config("tiny", {"mode": "baseline", "epochs": 3, **overrides})


def test_same_config_same_metrics_and_resume_after_interruption(store, monkeypatch, tmp_path):
    cfg = _baseline()
    first = train_run(cfg)
    assert first.status == "FINISHED" and not first.reused
    assert first.metrics["val/epe_mm"] > 0 and "synth-stb/epe_mm" in first.metrics and "synth-rhd/auc_20_50" in first.metrics

    # A second store: interrupt in epoch 2, then start again.
    monkeypatch.setenv("REPRO_MLRUNS", str(tmp_path / "second"))
    real_epoch = loop.train_epoch
    calls = {"n": 0}

    def dying_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_epoch", dying_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg)
    interrupted = find_runs(first.run_hash)
    assert len(interrupted) == 1 and interrupted[0].info.status != "FINISHED"

    monkeypatch.setattr(run_module, "train_epoch", real_epoch)
    resumed = train_run(cfg)
    assert resumed.run_id == interrupted[0].info.run_id  # the same run, continued
    history = tracking.client().get_metric_history(resumed.run_id, "train/loss")
    assert [m.step for m in history] == [1, 2, 3]
    for key, value in first.metrics.items():  # seeded + RNG restored: identical to the uninterrupted run
        assert resumed.metrics[key] == pytest.approx(value, rel=1e-5), key


@pytest.mark.filterwarnings("error:The specified dataset source can be interpreted")
def test_finished_config_is_reused_not_retrained(store, monkeypatch):
    cfg = _baseline(epochs=1)
    first = train_run(cfg)
    monkeypatch.setattr(run_module, "train_epoch", lambda *a, **k: pytest.fail("a finished config was retrained"))
    again = train_run(cfg)
    assert again.reused and again.run_id == first.run_id
    assert {k: again.metrics[k] for k in first.metrics} == pytest.approx(first.metrics)
    run = tracking.client().get_run(first.run_id)
    assert (
        run.data.tags["config_hash"] == cfg.hash
        and run.data.tags["run_hash"] == first.run_hash
        and run.data.params["model.width"] == "0.0625"
    )
    assert {"git_commit", "git_dirty", "preset", "data_digest/train", "data_digest/val", "data_digest/synth-stb"} <= set(run.data.tags)
    assert run.data.tags["precision_effective"] in ("bf16", "fp32")
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 8  # source train, val, two targets and their four diagnostic targets
    assert {i.dataset.source_type for i in inputs} == {"local"}
    monkeypatch.setattr(run_module, "train_epoch", loop.train_epoch)
    other = train_run(_baseline(epochs=1, seed=1))  # the seed is part of the hash
    assert other.run_id != first.run_id


def test_nan_loss_ends_the_run_as_failed_with_the_reason(store, monkeypatch):
    monkeypatch.setattr(objectives, "pose_loss", lambda pred, target: torch.tensor(float("nan")))
    result = train_run(_baseline(epochs=1))
    assert result.status == "FAILED"
    run = tracking.client().get_run(result.run_id)
    assert run.info.status == "FAILED" and "loss became nan" in run.data.tags["failure_reason"]
    assert result.diverged == run.data.tags["failure_reason"]  # the studies do not retry a divergence


def test_a_runaway_finite_loss_also_ends_the_run_as_failed(store, monkeypatch):
    """Eq. 4 is unbounded below: a run drifting to -1e20 is finite but garbage."""
    monkeypatch.setattr(objectives, "pose_loss", lambda pred, target: torch.tensor(-5.8e20))
    result = train_run(_baseline(epochs=1))
    assert result.status == "FAILED"
    reason = tracking.client().get_run(result.run_id).data.tags["failure_reason"]
    assert "loss became -5.8e+20" in reason and "epoch 1, batch 1" in reason


class _Split:
    """A training split of random crops and labels (uint8 images like the real ones)."""

    def __init__(self, n: int = 32, size: int = 32):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 255, (n, 3, size, size), generator=g, dtype=torch.uint8)
        self.uv = torch.rand(n, 21, 2, generator=g) * size
        self.visible = torch.ones(n, 21, dtype=torch.bool)
        self.xyz = torch.randn(n, 21, 3, generator=g) * 40 + torch.tensor([0, 0, 500.0])

    def __len__(self) -> int:
        return len(self.images)


def test_the_guard_reports_the_first_bad_step_when_it_reads_it(monkeypatch):
    """The guard is read every GUARD_EVERY steps, not every step; it names the first bad step and its losses."""
    real, calls = objectives.pose_loss, []

    def pose_loss(pred, target):  # fine, fine, NaN, then runaway
        calls.append(None)
        return real(pred, target) if len(calls) < 3 else torch.tensor(float("nan") if len(calls) == 3 else 5e6)

    monkeypatch.setattr(objectives, "pose_loss", pose_loss)
    monkeypatch.setattr(loop, "GUARD_EVERY", 4)
    cfg = _baseline(batch_size=4)
    steps, cpu = [], torch.device("cpu")
    with pytest.raises(loop.TrainingDiverged, match=r"loss became nan .* at epoch 1, batch 3 \(heat [0-9.]+, pose nan, con 0\)"):
        loop.train_epoch(cfg, loop.new_state(cfg, 16, cpu), _Split(), None, cpu, on_step=steps.append)
    assert steps == [0, 1, 2]  # read after the fourth step, before its callback


def test_a_step_reads_nothing_back_from_the_device(monkeypatch):
    """Losses are summed and guarded on the device: an epoch reads them back once, plus the progress bar's
    redraws. (Counted: the reads by the suite's own code; the fused Adam keeps its step counts on the device.)"""
    reads = []

    def counted(name):
        method = getattr(torch.Tensor, name)

        def read(self, *args):
            if "/repro/" in sys._getframe(1).f_code.co_filename:
                reads.append(name)
            return method(self, *args)

        return read

    for name in ("item", "tolist", "__bool__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    bar = loop.tqdm
    monkeypatch.setattr(loop, "tqdm", lambda *a, **k: bar(*a, **{**k, "mininterval": 3600}))  # it redraws only when it starts
    cfg = _baseline(batch_size=2)
    cpu = torch.device("cpu")
    losses = loop.train_epoch(cfg, loop.new_state(cfg, 16, cpu), _Split(), None, cpu)
    assert all(math.isfinite(v) for v in losses.values())
    assert sorted(reads) == ["item", "tolist"]  # 16 steps; at the end, the guard and the sums


def test_training_on_the_real_dataset_formats(store, tmp_path, capsys):
    """`repro train --source freihand --targets stb,rhd --data-root PATH` on files in the real formats."""
    import fixtures_real as fx

    from repro.cli import main

    root = tmp_path / "data"
    for name, write in (("freihand", fx.write_freihand), ("rhd", fx.write_rhd), ("stb", fx.write_stb)):
        (root / name).mkdir(parents=True)
        write(root / name)
    argv = [
        "train",
        "--preset",
        "tiny",
        "--source",
        "freihand",
        "--targets",
        "stb,rhd",
        "--data-root",
        str(root),
        "--set",
        "mode=baseline",
        "--set",
        "batch_size=4",
        "--set",
        "epochs=1",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "FINISHED"
    assert {"val/epe_mm", "stb/epe_mm", "rhd/epe_mm", "rhd/auc_20_50"} <= set(result["metrics"])
    run = tracking.client().get_run(result["run_id"])
    assert run.data.params["source"] == "freihand" and run.data.params["targets"] == "('stb', 'rhd')"


def test_scheduled_lr_constant_cosine_and_warmup():
    constant = _baseline(lr=1e-3, lr_schedule="constant")
    assert [loop.scheduled_lr(constant, s, 10) for s in (0, 5, 9)] == [1e-3, 1e-3, 1e-3]
    cosine = _baseline(lr=1e-3, lr_schedule="cosine")
    # 0.5 (1 + cos(pi s / 10)): 1 at s = 0, 0.5 at s = 5, (1 + cos(0.9 pi)) / 2 = 0.02447 at s = 9
    assert [loop.scheduled_lr(cosine, s, 10) for s in (0, 5, 9)] == pytest.approx([1e-3, 5e-4, 2.447e-5], rel=1e-3)
    warm = _baseline(lr=1e-3, lr_schedule="cosine", lr_warmup=0.4)
    # 4 of the 10 steps warm up: steps 0-3 scaled by 1/4 .. 4/4 of the cosine's 1.0, 0.9755, 0.9045, 0.7939
    assert [loop.scheduled_lr(warm, s, 10) for s in (0, 1, 3, 5)] == pytest.approx([2.5e-4, 4.878e-4, 7.939e-4, 5e-4], rel=1e-3)


def test_per_sample_errors_reproduce_the_logged_metrics(store):
    """Every evaluated split's per-image errors are a Parquet artifact from which the run's EPE and AUC follow."""
    import pandas as pd

    from repro.metrics import auc, epe_summary, pck_curve

    result = train_run(_baseline(epochs=1))
    folder = mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/per_sample")
    for split in ("val", "synth-stb", "synth-rhd-view"):
        frame = pd.read_parquet(f"{folder}/{split}.parquet")
        assert list(frame["sample"]) == list(range(len(frame))) and len(frame) > 0
        errors = torch.tensor(frame[[f"err_mm_{k}" for k in range(21)]].to_numpy())
        visible = torch.tensor(frame[[f"vis_{k}" for k in range(21)]].to_numpy())
        assert epe_summary(errors, visible)["mean"] == pytest.approx(result.metrics[f"{split}/epe_mm"], rel=1e-9)
        assert epe_summary(errors)["mean"] == pytest.approx(result.metrics[f"{split}/epe_all_mm"], rel=1e-9)
        assert auc(pck_curve(errors, visible=visible)) == pytest.approx(result.metrics[f"{split}/auc_20_50"], rel=1e-9)


def test_repro_eval_reproduces_the_logged_metrics(store, capsys):
    from repro.cli import main

    result = train_run(_baseline(epochs=1))
    assert main(["eval", result.run_id]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    # By default what the training evaluated: the targets and their diagnostic targets.
    assert list(evaluated) == ["synth-stb", "synth-stb-style", "synth-stb-view", "synth-rhd", "synth-rhd-style", "synth-rhd-view"]
    for split, metrics in evaluated.items():
        for name, value in metrics.items():
            assert value == pytest.approx(result.metrics[f"{split}/{name}"], rel=1e-5), (split, name)


def test_cross_validation_trains_on_whole_pose_groups_and_reads_no_target(store):
    """train_run with cv_folds: validates on one fold of the source's training split, logs no target metric."""
    cfg = _baseline(epochs=1, cv_folds=2, cv_fold=1)
    assert cfg.targets == ()  # RunConfig drops the targets under cross-validation
    result = train_run(cfg)
    assert result.status == "FINISHED" and result.metrics["val/epe_mm"] > 0
    assert not any(k.startswith("synth-") for k in result.metrics)  # no target, no diagnostic was evaluated
    record = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/identity.json"))
    assert set(record["data"]) == {"train"} and record["cv_dealing"].startswith("pose-groups")
    other = train_run(_baseline(epochs=1, cv_folds=2, cv_fold=0))
    assert other.run_hash != result.run_hash and other.metrics["val/epe_mm"] != result.metrics["val/epe_mm"]


def test_a_subset_reads_its_rows_from_the_splits_images_without_copying_them():
    from repro.train.data import Rows, SplitTensors

    images = torch.arange(6 * 3 * 2 * 2, dtype=torch.uint8).reshape(6, 3, 2, 2)
    split = SplitTensors("d", "train", images, torch.zeros(6, 21, 3), torch.zeros(6, 21, 2), torch.ones(6, 21, dtype=torch.bool), "x", None)
    odd = split.subset(torch.tensor([False, True, False, True, False, True]), "odd")
    assert isinstance(odd.images, Rows) and odd.images.images is images  # the store's tensor, not a copy
    assert odd.images.shape == (3, 3, 2, 2) and len(odd) == 3
    assert torch.equal(odd.images[torch.tensor([2, 0])], images[[5, 1]])
    assert torch.equal(odd.images[1:], images[[3, 5]])
    last = odd.subset(torch.tensor([False, False, True]), "last")  # a subset of a subset: rows of the same tensor
    assert last.images.images is images and torch.equal(last.images[0:1], images[[5]])
    assert last.digest != odd.digest != split.digest


def test_a_process_prepares_a_training_split_once_per_input_size(monkeypatch):
    """loop.batch_inputs keeps the last PREPARED_KEPT splits' inputs, by digest and input size: a study
    worker's next training of the same split reuses them; another split, or another size, prepares anew."""
    from types import SimpleNamespace

    monkeypatch.setattr(loop, "_prepared", type(loop._prepared)())
    made = []
    monkeypatch.setattr(loop, "BatchInputs", lambda images, size, device, fmt: made.append((images, size)) or object())
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    a, b, c = (SimpleNamespace(digest=d, images=images) for d in "abc")
    cpu, at16, at8 = torch.device("cpu"), preset_config("tiny", {"model.input_size": 16}), preset_config("tiny", {"model.input_size": 8})
    first = loop.batch_inputs(at16, a, cpu)
    assert loop.batch_inputs(at16, a, cpu) is first and len(made) == 1
    assert loop.batch_inputs(at8, a, cpu) is not first and len(made) == 2  # another input size
    assert loop.batch_inputs(at16, a, cpu) is first  # now used after a at the other size
    loop.batch_inputs(at16, b, cpu)  # a third: the least recently used (a at the other size) goes
    assert len(loop._prepared) == loop.PREPARED_KEPT == 2 and loop.batch_inputs(at16, a, cpu) is first and len(made) == 3
    loop.batch_inputs(at16, c, cpu)  # b was used before a: b goes
    assert loop.batch_inputs(at16, a, cpu) is first and len(made) == 4
    loop.batch_inputs(at16, b, cpu)
    assert len(made) == 5


def test_the_rows_of_a_seed_see_the_same_batches(monkeypatch):
    """Paired rows: the Baseline and IE+TE of a seed get one batch order although IE+TE draws prompts from
    the global generator; another seed gets another order."""
    seen = []

    def recording(factory):
        def build(cfg):
            objective = factory(cfg)
            return lambda model, batch: seen[-1].append(batch.uv.clone()) or objective(model, batch)

        return build

    monkeypatch.setattr(loop, "OBJECTIVES", {k: recording(v) for k, v in objectives.OBJECTIVES.items()})
    cpu, split = torch.device("cpu"), _Split()
    clip = loop.ClipFeatures(
        torch.nn.functional.normalize(torch.randn(len(split), 16), dim=1), torch.nn.functional.normalize(torch.randn(40, 16), dim=1)
    )
    for mode, seed in (("baseline", 0), ("iete", 0), ("baseline", 1)):
        cfg = _baseline(mode=mode, seed=seed, batch_size=8)
        state = loop.new_state(cfg, 16, cpu)
        seen.append([])
        for _ in range(2):
            loop.train_epoch(cfg, state, split, clip if mode == "iete" else None, cpu)
            state.epoch += 1
    baseline, iete, other_seed = (torch.cat(s) for s in seen)
    assert len(baseline) == 2 * len(split)  # two epochs of 4 batches of 8
    assert torch.equal(baseline, iete) and not torch.equal(baseline, other_seed)
    assert not torch.equal(baseline[: len(split)], baseline[len(split) :])  # each epoch its own order


def test_bf16_working_weights_train_what_autocast_trains_bit_for_bit(monkeypatch):
    """Under bf16 autocast a step trains bf16 copies of f_H2D's weights (repro.train.working_weights): the
    weights after an epoch are autocast's own, bit for bit, for a Baseline, an IE+TE model (its projection
    head serves e1' and e2') and Table 6's normal-contrastive (two forward passes a step); during the epoch
    f_H2D computes with bf16 parameters and f_PP with its fp32 ones, after it the model holds fp32 masters."""
    monkeypatch.setattr(bf16, "native", lambda device: True)
    cpu, split = torch.device("cpu"), _Split()
    gen = torch.Generator().manual_seed(0)
    clip = loop.ClipFeatures(
        torch.nn.functional.normalize(torch.randn(len(split), 16, generator=gen), dim=1),
        torch.nn.functional.normalize(torch.randn(40, 16, generator=gen), dim=1),
    )
    runs = {"baseline": {"mode": "baseline"}, "iete": {"mode": "iete"}, "normal-contrastive": {"augment": "normal-contrastive"}}
    dtypes, weights = [], {}
    for impl in ("working", "autocast"):
        if impl == "autocast":  # the step as it was: autocast casts every weight itself
            monkeypatch.setattr(loop, "working_weights", lambda model, bf16: contextlib.nullcontext(working_weights._Unchanged()))
        for name, overrides in runs.items():
            cfg = _baseline(batch_size=8, **overrides)
            state = loop.new_state(cfg, 16, cpu)
            first = {k: v.clone() for k, v in state.model.state_dict().items()}
            objective = loop.OBJECTIVES[cfg.objective](cfg)

            def spying(model, batch, objective=objective):
                dtypes.append((impl, model.h2d.trunk[0][0].weight.dtype, model.pose_prior.conv_a[0][0].weight.dtype))
                return objective(model, batch)

            monkeypatch.setitem(loop.OBJECTIVES, cfg.objective, lambda cfg, spying=spying: spying)
            loop.train_epoch(cfg, state, split, clip if name == "iete" else None, cpu)
            weights[impl, name] = state.model.state_dict()
            assert all(v.dtype == torch.float32 for v in weights[impl, name].values())
            assert not torch.equal(first["h2d.trunk.0.0.weight"], weights[impl, name]["h2d.trunk.0.0.weight"])
    for name in runs:
        working, autocast = weights["working", name], weights["autocast", name]
        assert all(torch.equal(working[k], autocast[k]) for k in autocast), name
    assert set(dtypes) == {("working", torch.bfloat16, torch.float32), ("autocast", torch.float32, torch.float32)}


def test_grad_clip_caps_the_global_gradient_norm_of_every_step():
    cpu, split = torch.device("cpu"), _Split()
    norms = {}
    for clip in (0.0, 0.5):
        cfg = _baseline(batch_size=8, grad_clip=clip)
        state = loop.new_state(cfg, 16, cpu)
        step, norms[clip] = state.optimizer.step, []

        def recorded(*args, step=step, seen=norms[clip], model=state.model, **kwargs):
            seen.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item())
            return step(*args, **kwargs)

        state.optimizer.step = recorded
        loop.train_epoch(cfg, state, split, None, cpu)
    # the same first batch and weights: unclipped its gradient is longer than 0.5, clipped it is 0.5
    assert norms[0.0][0] > 0.5 and norms[0.5][0] == pytest.approx(0.5, rel=1e-5)
    assert len(norms[0.5]) == 4 and max(norms[0.5]) <= 0.5 * (1 + 1e-5)


def test_clip_gradients_is_torchs_clip_grad_norm_bit_for_bit():
    """Under the limit (left as they are) and over it (scaled), with a gradient left None; both return the
    total norm before clipping."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(8, 3, 3, 3), (8,), (16, 8), (5,), (4, 4)]
    for scale, clipped in ((1e-3, False), (10.0, True)):
        ours = [torch.zeros(s, requires_grad=True) for s in shapes]
        theirs = [torch.zeros(s, requires_grad=True) for s in shapes]
        for a, b in zip(ours[:-1], theirs[:-1]):
            a.grad = torch.randn(a.shape, generator=gen) * scale
            b.grad = a.grad.clone()
        before = [p.grad.clone() for p in ours[:-1]]
        total = loop.clip_gradients(ours, 1.0)
        assert torch.equal(total, torch.nn.utils.clip_grad_norm_(theirs, 1.0, foreach=True))
        assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours[:-1], theirs[:-1])) and ours[-1].grad is None
        assert clipped != all(torch.equal(a.grad, b) for a, b in zip(ours[:-1], before))


def test_batch_inputs_prepared_once_are_the_per_batch_inputs_bit_for_bit(monkeypatch):
    """A split that needs resizing is resized once, whole, when it fits PREPARE_LIMIT; its batches are then
    the very values model_inputs gives per batch, in the asked memory format. Over the limit, or at the
    model's size already, nothing is prepared."""
    from repro.train.evaluate import BatchInputs, model_inputs

    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    idx = torch.tensor([37, 2, 19, 5])
    monkeypatch.setattr(evaluate, "PREPARE_CHUNK", 16)  # chunks of 16, 16 and 8
    for fmt in ("channels_last", "contiguous"):
        prepared = BatchInputs(images, 16, torch.device("cpu"), fmt)
        assert prepared.prepared is not None and prepared.prepared.shape == (40, 3, 16, 16)
        batch, expected = prepared[idx], model_inputs(images[idx], 16, torch.device("cpu"), fmt)
        assert torch.equal(batch, expected)
        assert batch.is_contiguous(memory_format=evaluate.TORCH_MEMORY_FORMATS[fmt])
    assert BatchInputs(images, 32, torch.device("cpu"), "channels_last").prepared is None  # no resize to save
    monkeypatch.setattr(evaluate, "PREPARE_LIMIT", 40 * 3 * 16 * 16 * 4 - 1)
    per_batch = BatchInputs(images, 16, torch.device("cpu"), "channels_last")
    assert per_batch.prepared is None and torch.equal(per_batch[idx], model_inputs(images[idx], 16, torch.device("cpu"), "channels_last"))
