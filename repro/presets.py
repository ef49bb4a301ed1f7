"""Presets: named field values over RunConfig's defaults. One code path for all; only values differ.

- tiny: seconds, for tests (with the small preset's training choices, so tests exercise them).
- small: reproduces every table on two CPU cores: 64 px input, 1/8 width (f_PP at 1/2), and training
  choices measured to get a Baseline to half the mean-pose EPE within the CPU budget (README, Status):
  He init, LeakyReLU slope 0.2, lambda_heat 200, Adam at lr 2e-3 with a 2% warm-up and a cosine decay,
  gradients clipped to a global norm of 10, batch 16, 5 epochs (RESULTS.md, "Calibrating" and "Five epochs").
- paper: the paper's sizes (256 px, full width) and its lr and losses, for a GPU; batch size and
  epochs are our choice.
Reports list every field in which a preset differs from `paper` (presets.paper_departures).
"""

from repro.config import ConfigError, RunConfig, with_overrides

# Where the paper's training does not learn within a CPU budget (README, Status): shared by tiny and small.
CPU_TRAINING = {
    "model.init": "he",
    "model.leaky_slope": 0.2,
    "lambda_heat": 200.0,
    # lr 2e-3 with a 2% warm-up reaches in 5 epochs what lr 1e-3 with 5% did in 8 (RESULTS.md, "Five epochs").
    "lr": 2e-3,
    "lr_schedule": "cosine",
    "lr_warmup": 0.02,
    # Some He draws start with huge heatmaps (first heat loss 0.24, gradient norms to 12,000, against
    # 0.04 and about 5 later): unclipped they fill Adam's second moments for the whole run (RESULTS.md).
    "grad_clip": 10.0,
}

PRESETS: dict[str, dict[str, object]] = {
    "tiny": {
        "image_size": 32, "n_train": 64, "n_val": 32, "n_test": 32, "batch_size": 16, "epochs": 2,
        "model.input_size": 32, "model.width": 0.0625, "clip": "synthclip:tiny", **CPU_TRAINING,
    },
    "small": {
        "image_size": 128, "n_train": 16384, "n_val": 1024, "n_test": 1024, "batch_size": 16, "epochs": 5,
        "model.input_size": 64, "model.width": 0.125, "model.prior_width": 0.5, **CPU_TRAINING,
    },
    "paper": {
        "image_size": 256, "n_train": None, "n_val": None, "n_test": None, "batch_size": 32, "epochs": 40,
        "model.input_size": 256, "model.width": 1.0,
    },
}  # fmt: skip


def preset_config(name: str, overrides: dict[str, object] | None = None) -> RunConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    base = with_overrides(RunConfig(), {**PRESETS[name], "preset": name})
    return with_overrides(base, overrides or {})


def paper_departures(cfg: RunConfig) -> list[str]:
    """'field value (paper preset: value)' for every field that cfg's preset sets and the paper preset does
    not share: what a report on cfg must say about its sizes and training choices."""
    ours, paper = cfg.flat(), preset_config("paper").flat()
    keys = sorted(set(PRESETS.get(cfg.preset, {})) | set(PRESETS["paper"]))
    return [f"{k} {ours[k]} (paper preset: {paper[k]})" for k in keys if ours[k] != paper[k]]
