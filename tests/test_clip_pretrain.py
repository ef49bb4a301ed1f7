"""Pre-training synthclip (captions drawn afresh, MLflow, checkpoint reuse) and the zero-shot evaluation."""

import json
import math
import random
from dataclasses import replace

import pytest
import torch
from fixtures_clip import FakeCaptionedDataset, FakeEncoder

from repro import bf16
from repro.cli import main
from repro.clip import pretrain as pretrain_module
from repro.clip.encoders import build_encoder
from repro.clip.errors import ClipError
from repro.clip.pretrain import contrastive_loss, fresh_caption, pretrain, recipe, reusable_manifest, swapped_slots
from repro.clip.prompts import COLOUR_SLOTS, HANDS, HEADS, PromptParts, all_prompts, caption
from repro.clip.synthclip import PRESETS, Recipe
from repro.clip.zeroshot import evaluate, proportion_ci95
from repro.files import file_sha256


def test_fresh_captions_name_backdrop_or_lighting():
    rng, prompts = random.Random(0), set(all_prompts())
    normal = {"hand_colour": "black", "backdrop": "flower", "lighting": "normal", "scene": "room"}
    dark = {**normal, "lighting": "dark"}
    normal_captions = [caption(*fresh_caption(normal, rng)) for _ in range(200)]
    dark_captions = [caption(*fresh_caption(dark, rng)) for _ in range(200)]
    assert set(normal_captions) | set(dark_captions) <= prompts
    assert all(c.endswith("black hand with flower room") or c.endswith("black right hand with flower room") for c in normal_captions)
    assert {c.split(" with ")[1] for c in dark_captions} == {"flower room", "dark room"}
    # Heads and hand words are drawn afresh: all 7 x 2 combinations show up.
    assert len(set(normal_captions)) == len(HEADS) * len(HANDS)


def test_hard_negatives_change_only_the_background_word_to_a_wrong_one():
    rng = random.Random(0)
    dark = {"hand_colour": "black", "backdrop": "flower", "lighting": "dark", "scene": "room"}
    parts = PromptParts("one", "black", "hand", "dark", "room")
    negatives = swapped_slots(parts, dark, rng, 17)
    # 19 distinct slot words ("yellow" is listed twice), less the two right for a dark flower render.
    assert len(set(COLOUR_SLOTS)) == 19 and len({n.slot for n in negatives}) == 17
    assert {n.slot for n in negatives}.isdisjoint({"flower", "dark"})
    assert all(n._replace(slot="dark") == parts for n in negatives)
    assert swapped_slots(parts, dark, rng, 0) == []


@pytest.mark.parametrize("fields", [{"precision": "fp16"}, {"negatives": -1}, {"negatives": 18}])
def test_a_preset_with_an_unknown_precision_or_more_negatives_than_wrong_words_is_refused(fields):
    with pytest.raises(ClipError, match=r"precision must be bf16 or fp32 and negatives 0 to 17 \(the wrong background words\)"):
        replace(PRESETS["tiny"], **fields)
    assert replace(PRESETS["tiny"], negatives=17).negatives == 17


def test_contrastive_loss_by_hand_and_as_open_clips():
    # One pair and one negative caption at 90 degrees, scale 1: the image's choice is softmax([1, 0]),
    # -log(e / (e + 1)) = log(1 + 1/e) = 0.31326; the text's only choice is its image, 0; the mean 0.15663.
    one = torch.tensor([[1.0, 0.0]])
    assert contrastive_loss(one, one, torch.tensor(1.0), torch.tensor([[0.0, 1.0]])).item() == pytest.approx(0.156631, abs=1e-6)
    assert contrastive_loss(one, one, torch.tensor(1.0)).item() == 0.0
    import open_clip

    g = torch.Generator().manual_seed(0)
    image, text = (torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=1) for _ in range(2))
    scale = torch.tensor(7.0)
    assert torch.allclose(contrastive_loss(image, text, scale), open_clip.ClipLoss()(image, text, scale))


def test_zero_shot_of_a_perfect_encoder(repro_cache):
    dataset = FakeCaptionedDataset(21)
    result = evaluate(FakeEncoder(), dataset)
    assert result["n"] == 21 and result["n_captions"] == 21
    assert (result["hand_colour_top1"], result["background_top1"], result["i2t_R@1"], result["i2t_R@5"]) == (1.0, 1.0, 1.0, 1.0)
    assert result["background_top1_ci95"] == pytest.approx(proportion_ci95(21, 21))


def test_zero_shot_counts_the_lighting_word_and_misses_wrong_colours(repro_cache):
    dataset = FakeCaptionedDataset(21)
    # Naming bright/dark renders by their light is a right answer for the background word.
    assert evaluate(FakeEncoder(say_lighting=True), dataset)["background_top1"] == 1.0
    shifted = evaluate(FakeEncoder(weights_digest="1" * 64, colour_shift=1), dataset)
    assert shifted["hand_colour_top1"] == 0.0 and shifted["background_top1"] == 1.0


def test_wilson_interval_by_hand():
    # 9 of 10, z = 1.95996: centre (0.9 + z^2/20) / (1 + z^2/10) = 0.78899, half-width
    # z / (1 + z^2/10) * sqrt(0.9 * 0.1 / 10 + z^2 / 400) = 0.19314.
    assert proportion_ci95(9, 10) == pytest.approx([0.59585, 0.98212], abs=1e-5)
    # Every hit still leaves room below 1: the score interval, not the Wald one (which would be [1, 1]).
    assert proportion_ci95(21, 21) == pytest.approx([0.84536, 1.0], abs=1e-5)


def _fake_open_dataset(name, root=None, split=None, n=None):
    assert name == "synth-clip"
    return FakeCaptionedDataset(n, digest=f"fake-{split}-{n}")


@pytest.mark.slow
def test_pretrain_logs_stores_and_reuses(repro_cache, tmp_path, monkeypatch, capsys):
    import mlflow

    monkeypatch.setenv("REPRO_MLRUNS", str(tmp_path / "mlruns"))
    tiny = Recipe("tiny")
    preset = tiny.training
    train_set, val_set = (
        _fake_open_dataset("synth-clip", split="train", n=preset.n_train),
        _fake_open_dataset("synth-clip", split="val", n=preset.n_val),
    )
    manifest, reused = pretrain(train_set, val_set, tiny)

    assert not reused
    assert manifest["recipe"] == recipe(train_set, val_set, tiny)
    assert manifest["weights_sha256"] == file_sha256(tiny.checkpoint_path())
    assert manifest["precision_effective"] == "fp32"  # the tests pin fp32 on the CPU
    assert json.loads(tiny.manifest_path().read_text()) == manifest
    metrics = manifest["metrics"]
    assert metrics["n"] == preset.n_val and metrics["clip"] == "synthclip:tiny"
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("hand_colour_top1", "background_top1", "i2t_R@1", "i2t_R@5"))
    assert metrics["i2t_R@1"] <= metrics["i2t_R@5"]

    # The run is in MLflow: parameters, a loss per step, the final metrics.
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns'}/mlflow.db")
    run = client.get_run(manifest["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "clip-pretrain"
    assert run.data.params["steps"] == str(preset.steps) and run.data.params["train_data"] == train_set.digest
    assert (run.data.params["precision"], run.data.params["precision_effective"]) == ("bf16", "fp32")
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == list(range(preset.steps)) and all(m.value > 0 for m in losses)
    assert run.data.metrics["hand_colour_top1"] == metrics["hand_colour_top1"]

    # `--clip synthclip:tiny` now loads those weights.
    encoder = build_encoder("synthclip:tiny")
    assert encoder.weights_digest == manifest["weights_sha256"] and encoder.dim == 256

    # The CLI reuses the checkpoint for the same recipe (training would fail here), and `eval`
    # reproduces the stored metrics from the cached features.
    monkeypatch.setattr("repro.data.registry.open_dataset", _fake_open_dataset)
    monkeypatch.setattr(pretrain_module, "train", lambda *a, **k: pytest.fail("retrained"))
    assert main(["clip", "pretrain", "--preset", "tiny"]) == 0
    assert "synthclip:tiny reused" in capsys.readouterr().out
    assert main(["clip", "eval", "--clip", "synthclip:tiny", "--n", str(preset.n_val)]) == 0
    assert json.loads(capsys.readouterr().out) == {**metrics, "weights": manifest["weights_sha256"][:12]}

    # Another recipe has no stored manifest; other data does not match this one's; a tampered checkpoint is stale.
    assert reusable_manifest(Recipe("tiny", seed=1)) is None and reusable_manifest(Recipe("tiny", steps=7)) is None
    assert reusable_manifest(tiny, recipe(FakeCaptionedDataset(preset.n_train, digest="other"), val_set, tiny)) is None
    tiny.checkpoint_path().write_bytes(b"tampered")
    assert reusable_manifest(tiny) is None


@pytest.mark.parametrize("native", [True, False], ids=["bf16", "fp32"])
def test_train_learns_a_small_dataset(monkeypatch, native):
    """With the whole dataset in every batch, open_clip's contrastive loss falls within a few steps, in bf16
    autocast (the image tower channels-last) where bf16 pays, else in fp32."""
    monkeypatch.setattr(bf16, "native", lambda device: native)
    losses = []
    preset = replace(PRESETS["tiny"], steps=12, batch=8, lr=3e-4, warmup=2)
    model = pretrain_module.train(FakeCaptionedDataset(8), preset, on_loss=lambda step, loss: losses.append(loss))
    # Starts near chance: each image picks among 8 captions and their 8 hard negatives, each caption among 8 images.
    assert preset.negatives == 1 and len(losses) == 12 and abs(losses[0] - (math.log(16) + math.log(8)) / 2) < 0.3
    assert max(losses[-3:]) < 1.5
    stem = model.visual.conv1.weight
    assert stem.is_contiguous(memory_format=torch.channels_last) is native and stem.dtype == torch.float32
