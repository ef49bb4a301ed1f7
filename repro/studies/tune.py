"""`repro tune`: the paper's cross-validated choices (r, lambda1, lambda2, lambda3) by k-fold on the source only.

The paper chose all four this way: "From the 10-random fold cross validation, we set lambda1 and
lambda2 as 1 and set lambda3 as 0.1" (Sec. 3.4), and r (6:4 / 9:1) and lambda3 "via the 10-fold
cross-validation" (Secs. 3.3, 4.3). Hence 10 folds and all four parameters by default (RunConfig
fields ratio, lambda_heat, lambda_pose, lambda_con; the paper's names r, lambda1..3 are accepted too).

The search is a grid, not TPE: each point is a deterministic k-fold estimate, and a model of the
objective saves little on a few dozen points. CANDIDATES: for r and lambda3 the values the paper's
Tables 4a and 5 try; for lambda1 and lambda2 the paper gives no grid, so ours is the base config's
value times (0.1, 1, 10) (RELATIVE), which holds the value the base trains with (the paper's 1, or
the CPU presets' lambda_heat 200, presets.CPU_TRAINING) and one decade either side. The full grid is
4 x 3 x 3 x 4 = 144 points, each K trainings: `--params ratio,lambda_con` searches the 16 points of
the two parameters the paper ablates, `--trials N` evaluates N grid points drawn with a fixed seed.

Each grid point is a cell of a study run by runner.py (so it resumes, retries and takes --workers
like the tables); its value is the mean "val/epe_mm" over the K folds, each fold a training with
cv_folds = K, cv_fold = k, which validates on fold k of the source training split and never reads
a target (checked on every config). Folds hold whole pose groups (repro.train.data.cv_split: a
FreiHAND pose's 4 background renders never straddle folds). The parameters not tuned come from the
base config (IE+TE, r = 0.6, lambda1 = lambda2 = 1, lambda3 = 0.1 by default).
"""

import itertools
import random
import statistics
from functools import cached_property

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from repro.config import ConfigError, RunConfig, from_dict, with_overrides
from repro.studies.runner import Cell, study_name

# Candidate values per parameter, in canonical order. RELATIVE ones are factors of the base config's
# value: the paper gives no grid for lambda1 / lambda2, and the base value (paper 1, CPU presets'
# lambda_heat 200) must be a candidate.
CANDIDATES = {
    "ratio": (0.4, 0.6, 0.8, 0.9),  # r: Table 4a
    "lambda_heat": (0.1, 1.0, 10.0),  # lambda1: x the base value (the paper gives no grid)
    "lambda_pose": (0.1, 1.0, 10.0),  # lambda2: x the base value (the paper gives no grid)
    "lambda_con": (1.0, 0.1, 0.01, 0.001),  # lambda3: Table 5
}
RELATIVE = frozenset({"lambda_heat", "lambda_pose"})
ALIASES = {"r": "ratio", "lambda1": "lambda_heat", "lambda2": "lambda_pose", "lambda3": "lambda_con"}  # the paper's names
DEFAULT_FOLDS = 10  # "10-fold cross-validation"
DEFAULT_PARAMS = tuple(CANDIDATES)  # the paper cross-validated all four


def canonical_params(params) -> tuple[str, ...]:
    """`params` (field names or the paper's r, lambda1..3) as field names in CANDIDATES' order; ConfigError naming the allowed ones."""
    names = [ALIASES.get(p, p) for p in params]
    unknown = [p for p, name in zip(params, names) if name not in CANDIDATES]
    allowed = ", ".join(f"{name} ({alias})" for alias, name in ALIASES.items())
    if unknown or not names:
        raise ConfigError(
            f"--params: unknown {', '.join(map(repr, unknown)) if unknown else '(none given)'}; expected some of {allowed}, comma-separated"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"--params: {', '.join(params)} names a parameter twice")
    return tuple(p for p in CANDIDATES if p in names)


class TunePlan:
    journal = "tune"

    def __init__(self, base: RunConfig, folds: int = DEFAULT_FOLDS, params: tuple[str, ...] = DEFAULT_PARAMS, trials: int | None = None):
        params = canonical_params(params)
        if folds < 2:
            raise ConfigError(f"--folds must be at least 2, got {folds}")
        if base.mode != "iete":
            raise ConfigError(f"repro tune chooses r, lambda1, lambda2 and lambda3 for IE+TE: the base config has mode {base.mode!r}")
        if trials is not None and trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {trials}")
        self.base, self.folds, self.params, self.trials = base, folds, params, trials

    @cached_property
    def study_name(self) -> str:
        """Named on first use: it opens the source's data and the CLIP (runner.study_name)."""
        configs = [cfg for cell in self.cells() for cfg in self.fold_configs(cell.attrs)]
        return study_name(f"tune-{self.base.preset}-{'+'.join(self.params)}-k{self.folds}", configs)

    def candidates(self, param: str) -> tuple[float, ...]:
        """The values tried for `param`: CANDIDATES, times the base config's value for a RELATIVE one."""
        if param not in RELATIVE:
            return CANDIDATES[param]
        base = float(getattr(self.base, param))
        return tuple(dict.fromkeys(float(f"{base * f:.12g}") for f in CANDIDATES[param]))  # 20 * 0.1 is 2, not 2.0000000000000004

    def cells(self) -> list[Cell]:
        grid = [dict(zip(self.params, values)) for values in itertools.product(*(self.candidates(p) for p in self.params))]
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

    def run_name(self, cell: Cell, cfg: RunConfig) -> str:
        """E.g. "tune ratio=0.4, lambda_con=0.1 fold 3/10"."""
        return f"tune {cell.key} fold {cfg.cv_fold + 1}/{cfg.cv_folds}"

    def describe(self) -> dict:
        return {
            "tune_params": ",".join(self.params),
            "folds": self.folds,
            "preset": self.base.preset,
            "base_config_hash": self.base.hash,
            **{f"base.{k}": v for k, v in self.base.flat().items()},
        }

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
        records.append(
            {
                **cell.attrs,
                "val_epe_mm": float(np.mean(epes)) if epes else np.nan,
                "std": float(np.std(epes, ddof=1)) if len(epes) > 1 else np.nan,
                "folds": len(epes),
            }
        )
    return pd.DataFrame.from_records(records)


def chosen(frame: pd.DataFrame) -> dict | None:
    """The grid point with the lowest mean validation EPE, or None before any is done."""
    done = frame.dropna(subset=["val_epe_mm"])
    if done.empty:
        return None
    return done.loc[done["val_epe_mm"].idxmin()].to_dict()


def format_tune(plan: TunePlan, frame: pd.DataFrame) -> str:
    best = chosen(frame)
    lines = [
        f"{plan.study_name}: mean validation EPE (mm) over {plan.folds} folds of {plan.base.source}'s training split (no target read)",
        frame.to_string(index=False, float_format=lambda v: f"{v:g}", na_rep="-"),
    ]
    if best is None:
        lines.append("chosen: none (no grid point finished)")
    else:
        values = ", ".join(f"{p}={best[p]:g}" for p in plan.params)
        lines.append(f"chosen: {values} (mean validation EPE {best['val_epe_mm']:.2f} mm)")
    return "\n".join(lines)
