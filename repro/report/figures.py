"""Shared plumbing of the report figures: drawing without a display, files, and their MLflow run.

Figures are built on matplotlib.figure.Figure directly, never through pyplot: no global figure
state, no backend to select (saving uses Agg), and a notebook importing these helpers keeps its
own inline backend. Every figure command logs what it wrote as one run of the experiment
"repro-figures": its options as params, its numbers as metrics, its files as artifacts (the JSON
among them names the CLIP weights' and the data's digests), plus the git state as tags.
"""

import os
from contextlib import contextmanager
from pathlib import Path

from matplotlib.figure import Figure

from repro.tracking import FIGURES_EXPERIMENT, log_files_run

DPI = 150


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def save_png(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def flat_metrics(data: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a nested dict as MLflow metrics ("a/b" keys); strings, lists and None are not metrics."""
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_metrics(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def log_figure_run(name: str, params: dict, numbers: dict, files: list[Path]) -> str:
    """One run of "repro-figures" holding a figure invocation; returns its run id. The numbers'
    top-level strings (CLIP identity, weights digest, ...) become tags, their numbers metrics."""
    tags = {"figure": name, **{k: v for k, v in numbers.items() if isinstance(v, str)}}
    return log_files_run(FIGURES_EXPERIMENT, name, files, tags, params, flat_metrics(numbers))


@contextmanager
def quiet_downloads():
    """No MLflow progress bar per artifact read: a report reads hundreds of small ones."""
    key, before = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before
