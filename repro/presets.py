"""Presets: named field values over RunConfig's defaults. One code path for all; only sizes differ.

- tiny: seconds, for tests.
- small: reproduces every table on two CPU cores (quarter width, 64 px input).
- paper: the paper's sizes (256 px, full width) for a GPU; batch size and epochs are our choice.
"""

from repro.config import ConfigError, RunConfig, with_overrides

PRESETS: dict[str, dict[str, object]] = {
    "tiny": {
        "image_size": 32, "n_train": 64, "n_val": 32, "n_test": 32, "batch_size": 16, "epochs": 2,
        "model.input_size": 32, "model.width": 0.0625,
    },
    "small": {
        "image_size": 128, "n_train": 8192, "n_val": 1024, "n_test": 1024, "batch_size": 16, "epochs": 6,
        "model.input_size": 64, "model.width": 0.25,
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
