"""The results of a table study as a pandas frame, our numbers beside the paper's.

One row per (table row, paper column), indexed by (row, column): target, mean, std (sample
standard deviation over seeds, NaN for one seed), n (seeds with a finished cell), diverged (seeds
whose last attempt diverged: the mean is over the others, which a reader must know), paper, diff
(mean - paper), status ("ok", "partial k/N", "missing", or "paper only" for rows of another method;
", d diverged" added when d > 0), the config hashes and MLflow run ids it was read from, and the
row's note. A missing cell is NaN with n = 0, never 0. Values come from the study's COMPLETE trials
(their "metrics" attr).
"""

import math

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from repro.data.registry import is_synthetic
from repro.tracking import client


def results_frame(plan, study) -> pd.DataFrame:
    complete = {t.user_attrs["cell"]: t.user_attrs for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    last_failure = {
        t.user_attrs.get("cell"): t.user_attrs.get("failure_kind") for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    }
    records = []
    for row in plan.spec.rows:
        for col, target in plan.targets.items():
            keys = [plan.cell_key(row.name, s) for s in plan.seed_values()] if row.reproduced else []
            cells = [complete[k] for k in keys if k in complete]
            diverged = sum(k not in complete and last_failure.get(k) == "diverged" for k in keys)
            values = [c["metrics"][col] for c in cells]
            n = len(values)
            mean = float(np.mean(values)) if values else math.nan
            paper = row.paper.get(col, math.nan)
            if not row.reproduced:
                status = "paper only"
            else:
                status = "ok" if n == plan.seeds else "missing" if n == 0 else f"partial {n}/{plan.seeds}"
                status += f", {diverged} diverged" if diverged else ""
            records.append(
                {
                    "row": row.name,
                    "column": col,
                    "target": target,
                    "mean": mean,
                    "std": float(np.std(values, ddof=1)) if n > 1 else math.nan,
                    "n": n,
                    "diverged": diverged,
                    "paper": paper,
                    "diff": mean - paper,
                    "status": status,
                    "config_hashes": ",".join(dict.fromkeys(c["config_hashes"][col] for c in cells)),
                    "run_ids": ",".join(c["run_ids"][col] for c in cells),
                    "note": row.note,
                }
            )
    return pd.DataFrame.from_records(records).set_index(["row", "column"])


def world_note(plan) -> str:
    """Say where the numbers come from: on the synthetic world they are not the paper's datasets."""
    mapping = ", ".join(f"{col} -> {target}" for col, target in plan.targets.items())
    if any(is_synthetic(name) for name in (plan.base.source, *plan.targets.values())):
        return (
            f"this suite, trained on {plan.base.source}, evaluated on {mapping} -- the synthetic hand world, "
            f"not the paper's FreiHAND/STB/RHD; 'paper' is the paper's number on the real dataset."
        )
    return f"this suite, trained on {plan.base.source}, evaluated on {mapping} (the real datasets)."


def mean_pose_floor(plan, frame: pd.DataFrame) -> dict[str, float]:
    """Per column, what always predicting the mean training pose scores on its target (EPE mm), read
    from the MLflow runs the frame names (`<target>/epe_mean_pose_mm`): the floor a model must beat."""
    store, floor = client(), {}
    for col, target in plan.targets.items():
        ids = [i for joined in frame.xs(col, level="column")["run_ids"] for i in joined.split(",") if i]
        value = store.get_run(ids[0]).data.metrics.get(f"{target}/epe_mean_pose_mm") if ids else None  # one training split: one floor
        floor[col] = math.nan if value is None else value
    return floor


def format_results(plan, frame: pd.DataFrame, extra: tuple[str, ...] = ()) -> str:
    """The frame as printed by `repro table*`, with the `extra` columns after the status."""
    shown = frame[["target", "mean", "std", "n", "paper", "diff", "status", *extra]]
    table = shown.to_string(float_format=lambda v: f"{v:.2f}", na_rep="-")
    notes = [f"  {name}: {note}" for name, note in frame["note"].groupby(level="row", sort=False).first().items() if note]
    header = f"{plan.spec.title}  [study {plan.study_name}, {plan.spec.metric}, {plan.seeds} seed(s), preset {plan.base.preset}]"
    floor = ", ".join(f"{col} {value:.2f}" if math.isfinite(value) else f"{col} -" for col, value in mean_pose_floor(plan, frame).items())
    lines = [header, table, f"Mean training pose (the constant floor, EPE mm): {floor}", f"mean/std: {world_note(plan)}"]
    return "\n".join([*lines, *(["notes:", *notes] if notes else [])])


def log_results(session, frame: pd.DataFrame, text: str) -> None:
    """Attach the frame (CSV) and its printed form to the study's parent MLflow run."""
    store = client()
    store.log_text(session.parent_run_id, frame.to_csv(), f"results/{session.plan.study_name}.csv")
    store.log_text(session.parent_run_id, text, f"results/{session.plan.study_name}.txt")
