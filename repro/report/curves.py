"""PCK curves and training curves of tracked training runs, as figures.

Runs: the given ids, or every FINISHED run of the experiment, optionally only those of one preset
(tag `preset`) and/or one study (tag `study`, or a tag `reused_by/<study>/...` on a run a study
reused from elsewhere). PCK curves come from each run's logged table pck_curves.json (columns
threshold_mm, pck/<split>), the per-epoch losses from the metrics train/loss|heat|pose|con.
The notebook notebooks/compare_runs.ipynb uses these functions too. `repro report` draws a table's
PCK curves per row (table_pck, plot_table_pck): the mean over the row's seeds with a band.
"""

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from matplotlib.ticker import MaxNLocator

from repro.config import ConfigError
from repro.report.figures import new_figure, quiet_downloads, save_png
from repro.tracking import TRAIN_EXPERIMENT, client, experiment, use_store

PCK_TABLE = "pck_curves.json"
LOSSES = ("train/loss", "train/heat", "train/pose", "train/con")


def select_runs(
    experiment_name: str = TRAIN_EXPERIMENT, run_ids: list[str] | None = None, preset: str | None = None, study: str | None = None
) -> pd.DataFrame:
    """mlflow.search_runs rows of the chosen runs (see the module docstring), oldest first, with a `label` column."""
    exp = experiment(experiment_name)
    use_store()  # mlflow.search_runs is fluent
    filters = [f"attributes.run_id IN ({', '.join(map(repr, run_ids))})"] if run_ids else ["attributes.status = 'FINISHED'"]
    if preset:
        filters.append(f"tags.preset = '{preset}'")
    runs = mlflow.search_runs([exp], filter_string=" and ".join(filters), order_by=["attributes.start_time ASC"])
    if run_ids and len(runs) != len(set(run_ids)):
        missing = sorted(set(run_ids) - set(runs.get("run_id", [])))
        raise ConfigError(
            f"runs not found in experiment {experiment_name!r}{f' with preset {preset}' if preset else ''}: {', '.join(missing)}"
        )
    if study and len(runs):
        reused = [c for c in runs.columns if c.startswith(f"tags.reused_by/{study}/")]
        own = runs["tags.study"] == study if "tags.study" in runs else pd.Series(False, index=runs.index)
        runs = runs[own | runs[reused].notna().any(axis=1)] if reused else runs[own]
    if runs.empty:
        raise ConfigError(f"no finished runs in experiment {experiment_name!r} match (preset={preset}, study={study})")
    runs = runs.reset_index(drop=True)
    runs["label"] = runs["tags.mlflow.runName"].fillna("run") + " (" + runs["run_id"].str[:6] + ")"
    return runs


def pck_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table: run_id, split, threshold_mm, pck (in [0, 1]) from each run's pck_curves.json."""
    store = client()
    tables = []
    for run_id, exp_id in zip(runs["run_id"], runs["experiment_id"]):
        table = store.load_table(exp_id, PCK_TABLE, run_ids=[run_id], extra_columns=["run_id"])
        if len(table):  # a run that never finished has none
            tables.append(table.melt(id_vars=["run_id", "threshold_mm"], var_name="split", value_name="pck"))
    if not tables:
        raise ConfigError(f"none of the chosen runs has a logged {PCK_TABLE}")
    long = pd.concat(tables, ignore_index=True)
    long["split"] = long["split"].str.removeprefix("pck/")
    return long


def loss_history(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table: run_id, metric, step (epoch), value of the per-epoch training losses."""
    store = client()
    rows = [(run_id, key, m.step, m.value) for run_id in runs["run_id"] for key in LOSSES for m in store.get_metric_history(run_id, key)]
    return pd.DataFrame(rows, columns=["run_id", "metric", "step", "value"])


def plot_pck(pck: pd.DataFrame, runs: pd.DataFrame):
    """One panel per split (val and each target): 3D PCK against the threshold, a line per run, EPE in the legend."""
    labels = dict(zip(runs["run_id"], runs["label"]))
    splits = list(dict.fromkeys(pck["split"]))
    fig = new_figure(4.2 * len(splits), 3.8)
    for ax, split in zip(fig.subplots(1, len(splits), squeeze=False)[0], splits):
        for run_id, curve in pck[pck["split"] == split].groupby("run_id", sort=False):
            epe = (
                runs.loc[runs["run_id"] == run_id, f"metrics.{split}/epe_mm"].iloc[0] if f"metrics.{split}/epe_mm" in runs else float("nan")
            )
            ax.plot(curve["threshold_mm"], curve["pck"], label=f"{labels[run_id]}, EPE {epe:.1f} mm")
        ax.set(title=split, xlabel="threshold (mm)", ylabel="3D PCK", ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return fig


def plot_losses(history: pd.DataFrame, runs: pd.DataFrame):
    """One panel per loss term: its per-epoch mean against the epoch, a line per run."""
    labels = dict(zip(runs["run_id"], runs["label"]))
    fig = new_figure(4.2 * len(LOSSES), 3.5)
    for ax, key in zip(fig.subplots(1, len(LOSSES)), LOSSES):
        for run_id, series in history[history["metric"] == key].groupby("run_id", sort=False):
            ax.plot(series["step"], series["value"], marker="o", markersize=3, label=labels[run_id])
        ax.set(title=key, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=6)
    return fig


def run_curves(*, experiment_name: str, run_ids: list[str] | None, preset: str | None, study: str | None, out) -> tuple[dict, list]:
    """Draw and write the PCK and training-loss figures of the chosen runs; returns (a summary, the files)."""
    runs = select_runs(experiment_name, run_ids, preset, study)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metric_columns = [c for c in runs.columns if c.startswith("metrics.") and c.endswith(("epe_mm", "auc_20_50"))]
    runs[["run_id", "label", *metric_columns]].to_csv(out / "curves_runs.csv", index=False)
    files = [
        save_png(plot_pck(pck_table(runs), runs), out / "pck_curves.png"),
        save_png(plot_losses(loss_history(runs), runs), out / "training_curves.png"),
        out / "curves_runs.csv",
    ]
    return {"runs": len(runs), "run_ids": runs["run_id"].tolist()}, files


def table_pck(cells: dict[tuple[str, str], list[str]], targets: dict[str, str]) -> pd.DataFrame:
    """Long table: row, column, run_id, threshold_mm, pck of every run of each (row, column) cell on
    the column's target, from the runs' pck_curves.json; empty when no run logged one."""
    store, parts = client(), []
    for (row, col), run_ids in cells.items():
        for run_id in run_ids:
            if PCK_TABLE not in {a.path for a in store.list_artifacts(run_id)}:
                continue
            with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
                table = pd.read_json(store.download_artifacts(run_id, PCK_TABLE, tmp), orient="split")  # as log_table wrote it
            if f"pck/{targets[col]}" in table:
                curve = table[["threshold_mm", f"pck/{targets[col]}"]].set_axis(["threshold_mm", "pck"], axis=1)
                parts.append(curve.assign(row=row, column=col, run_id=run_id))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["row", "column", "run_id", "threshold_mm", "pck"])


def plot_table_pck(pck: pd.DataFrame, title: str):
    """One panel per column, one line per row: 3D PCK against the threshold, the mean over the row's
    seeds, with a band of one standard deviation (ddof=1) between seeds where there are two or more."""
    columns = list(dict.fromkeys(pck["column"]))
    fig = new_figure(4.6 * len(columns), 4.0)
    fig.suptitle(title, fontsize=9)
    for ax, col in zip(fig.subplots(1, len(columns), squeeze=False)[0], columns):
        for row, cell in pck[pck["column"] == col].groupby("row", sort=False):
            curves = cell.pivot(index="threshold_mm", columns="run_id", values="pck")
            mean = curves.mean(axis=1)
            (line,) = ax.plot(curves.index, mean, label=f"{row} (n={curves.shape[1]})")
            if curves.shape[1] > 1:
                spread = curves.std(axis=1, ddof=1)
                ax.fill_between(curves.index, mean - spread, mean + spread, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set(title=col, xlabel="threshold (mm)", ylabel="3D PCK", ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return fig
