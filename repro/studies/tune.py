"""`repro tune`: the paper's cross-validated choices (r and lambda3) by k-fold on the source only.

The search is a grid over the paper's candidate values (CANDIDATES: the values its Tables 4a and 5
try), not TPE: with at most 16 points, each a deterministic k-fold estimate, a model of the
objective saves nothing. Each grid point is a cell of a study run by runner.py (so it resumes,
retries and takes --workers like the tables); its value is the mean "val/epe_mm" over the K folds,
each fold a training with cv_folds = K, cv_fold = k, which validates on fold k of the source
training split and never reads a target (checked on every config). `--trials N` evaluates N grid
points, drawn with a fixed seed, instead of all. The other knobs come from the base config (IE+TE,
r = 0.6, lambda3 = 0.1 by default), so tuning one parameter holds the other at the paper's value.
"""

import itertools
import random
import statistics

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from repro.config import ConfigError, RunConfig, from_dict, with_overrides
from repro.studies.runner import Cell, study_name

CANDIDATES = {"ratio": (0.4, 0.6, 0.8, 0.9), "lambda_con": (1.0, 0.1, 0.01, 0.001)}


class TunePlan:
    journal = "tune"

    def __init__(self, base: RunConfig, folds: int = 5, params: tuple[str, ...] = ("ratio", "lambda_con"), trials: int | None = None):
        unknown = set(params) - set(CANDIDATES)
        if unknown or not params:
            raise ConfigError(f"--params: expected some of {', '.join(CANDIDATES)}, got {', '.join(params) or 'none'}")
        if folds < 2:
            raise ConfigError(f"--folds must be at least 2, got {folds}")
        if base.mode != "iete":
            raise ConfigError(f"repro tune chooses r and lambda3 for IE+TE: the base config has mode {base.mode!r}")
        if trials is not None and trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {trials}")
        self.base, self.folds, self.params, self.trials = base, folds, tuple(params), trials
        self.study_name = study_name(f"tune-{base.preset}-{'+'.join(self.params)}-k{folds}", base)

    def cells(self) -> list[Cell]:
        grid = [dict(zip(self.params, values)) for values in itertools.product(*(CANDIDATES[p] for p in self.params))]
        if self.trials is not None and self.trials < len(grid):
            grid = random.Random(0).sample(grid, self.trials)
        return [Cell(", ".join(f"{k}={v:g}" for k, v in point.items()), point) for point in grid]

    def fold_configs(self, point: dict) -> list[RunConfig]:
        configs = [with_overrides(self.base, {**point, "cv_folds": self.folds, "cv_fold": k}) for k in range(self.folds)]
        for cfg in configs:
            if cfg.targets != ():  # the choice must never see a target (RunConfig already drops them)
                raise ConfigError(f"cross-validation config {cfg.hash} would evaluate on targets {cfg.targets}")
        return configs

    def run_cell(self, cell: Cell, train) -> tuple[float, dict]:
        results = [train(cfg) for cfg in self.fold_configs(cell.attrs)]
        epes = [r.metrics["val/epe_mm"] for r in results]
        return statistics.fmean(epes), {"fold_epe_mm": epes, "run_ids": [r.run_id for r in results], "point": cell.attrs}

    def describe(self) -> dict:
        return {"tune_params": ",".join(self.params), "folds": self.folds, "preset": self.base.preset,
                "base_config_hash": self.base.hash, **{f"base.{k}": v for k, v in self.base.flat().items()}}  # fmt: skip

    def to_json(self) -> dict:
        return {"base": self.base.to_dict(), "folds": self.folds, "params": list(self.params), "trials": self.trials}

    @classmethod
    def from_json(cls, data: dict) -> "TunePlan":
        return cls(from_dict(data["base"]), data["folds"], tuple(data["params"]), data["trials"])


def tune_frame(plan: TunePlan, study) -> pd.DataFrame:
    """One row per grid point: its values, mean and std of the fold EPEs, folds done; NaN when missing."""
    complete = {t.user_attrs["cell"]: t.user_attrs for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    records = []
    for cell in plan.cells():
        epes = complete.get(cell.key, {}).get("fold_epe_mm", [])
        records.append({**cell.attrs, "val_epe_mm": float(np.mean(epes)) if epes else np.nan,
                        "std": float(np.std(epes, ddof=1)) if len(epes) > 1 else np.nan, "folds": len(epes)})  # fmt: skip
    return pd.DataFrame.from_records(records)


def chosen(frame: pd.DataFrame) -> dict | None:
    """The grid point with the lowest mean validation EPE, or None before any is done."""
    done = frame.dropna(subset=["val_epe_mm"])
    if done.empty:
        return None
    return done.loc[done["val_epe_mm"].idxmin()].to_dict()


def format_tune(plan: TunePlan, frame: pd.DataFrame) -> str:
    best = chosen(frame)
    lines = [f"{plan.study_name}: mean validation EPE (mm) over {plan.folds} folds of {plan.base.source}'s training split (no target read)",
             frame.to_string(index=False, float_format=lambda v: f"{v:g}", na_rep="-")]  # fmt: skip
    if best is None:
        lines.append("chosen: none (no grid point finished)")
    else:
        values = ", ".join(f"{p}={best[p]:g}" for p in plan.params)
        lines.append(f"chosen: {values} (mean validation EPE {best['val_epe_mm']:.2f} mm)")
    return "\n".join(lines)
