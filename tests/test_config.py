"""The run config: hash identity, canonical fields, overrides, presets."""

import pytest

from repro.config import RunConfig, from_dict, with_overrides
from repro.presets import PRESETS, paper_departures, preset_config


def test_hash_is_stable_and_follows_every_field_that_matters():
    cfg = preset_config("small")
    assert cfg.hash == preset_config("small").hash and len(cfg.hash) == 16
    assert with_overrides(cfg, {"seed": "1"}).hash != cfg.hash
    assert with_overrides(cfg, {"model.width": "0.5"}).hash != cfg.hash
    assert with_overrides(cfg, {"ratio": "0.9"}).hash != cfg.hash


def test_unused_fields_are_canonical_so_equal_trainings_share_a_hash():
    base = preset_config("small", {"mode": "baseline"})
    assert preset_config("small", {"mode": "baseline", "ratio": "0.9", "lambda_con": "1", "clip": "ViT-B-32:openai"}).hash == base.hash
    assert base.clip == "none" and not base.model.branch2 and base.lambda_con == 0.0
    assert preset_config("small", {"mode": "te", "ratio": "0.9"}).ratio == 0.0
    assert preset_config("small", {"mode": "ie", "ratio": "0.4"}).hash == preset_config("small", {"mode": "ie"}).hash
    contrast = preset_config("small", {"mode": "baseline", "augment": "normal-contrastive"})
    assert contrast.model.branch2 and contrast.lambda_con == 0.1
    cv = preset_config("small", {"cv_folds": "5", "cv_fold": "2"})
    assert cv.targets == () and cv.cv_fold == 2


def test_overrides_are_typed_and_bad_ones_are_named():
    cfg = with_overrides(RunConfig(), {"targets": "stb,rhd", "n_train": "none", "model.width": "0.5", "epochs": "3"})
    assert cfg.targets == ("stb", "rhd") and cfg.n_train is None and cfg.model.width == 0.5 and cfg.epochs == 3
    with pytest.raises(ValueError, match="unknown config field 'epoch'"):
        with_overrides(RunConfig(), {"epoch": "3"})
    with pytest.raises(ValueError, match="'mode'"):
        with_overrides(RunConfig(), {"mode": "clip"})
    with pytest.raises(ValueError, match="'epochs'"):
        with_overrides(RunConfig(), {"epochs": "three"})
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("huge")


def test_numerics_default_to_bf16_channels_last_fused_adam_and_bad_ones_are_named():
    cfg = RunConfig()
    assert (cfg.precision, cfg.memory_format, cfg.adam_impl) == ("bf16", "channels_last", "fused")
    reference = with_overrides(cfg, {"precision": "fp32", "memory_format": "contiguous", "adam_impl": "torch"})
    assert reference.hash != cfg.hash and with_overrides(cfg, {"precision": "fp32"}).hash != reference.hash
    with pytest.raises(ValueError, match=r"config field 'precision' = 'fp16': expected one of \('bf16', 'fp32'\)"):
        with_overrides(cfg, {"precision": "fp16"})
    with pytest.raises(ValueError, match=r"config field 'memory_format' = 'nhwc': expected one of \('channels_last', 'contiguous'\)"):
        with_overrides(cfg, {"memory_format": "nhwc"})
    with pytest.raises(ValueError, match=r"config field 'adam_impl' = 'foreach': expected one of \('fused', 'torch'\)"):
        with_overrides(cfg, {"adam_impl": "foreach"})


def test_a_run_is_recreated_from_its_logged_config():
    cfg = preset_config("tiny", {"mode": "iete", "ratio": "0.9", "targets": "synth-rhd"})
    assert from_dict(cfg.to_dict()) == cfg and from_dict(cfg.to_dict()).hash == cfg.hash


def test_the_paper_preset_sets_only_sizes_and_reports_list_the_others_departures():
    sizes = {"image_size", "n_train", "n_val", "n_test", "batch_size", "epochs", "model.input_size", "model.width"}
    assert set(PRESETS["paper"]) <= sizes
    paper = preset_config("paper")
    assert paper.model.input_size == 256 and paper.model.width == 1.0 and paper.lr == 1e-4 and paper.lambda_con == 0.1
    assert paper.lr_schedule == "constant" and paper.model.init == "torch" and paper.lambda_heat == 1.0
    assert paper_departures(paper) == []
    small = paper_departures(preset_config("small"))
    assert "lr 0.002 (paper preset: 0.0001)" in small and "model.init he (paper preset: torch)" in small
    assert "batch_size 16 (paper preset: 32)" in small and "lr_warmup 0.02 (paper preset: 0.0)" in small
    assert "grad_clip 10.0 (paper preset: 0.0)" in small
    assert len(small) == len(set(PRESETS["small"]) | set(PRESETS["paper"]))  # every field differs
