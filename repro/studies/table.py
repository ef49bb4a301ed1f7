"""A paper table as a study: its cells are (row, seed) for the spec's reproduced rows.

A cell trains every distinct config of its row (one per column when the row's knobs differ per
column, as "Ours" does: r = 0.6 for STB, r = 0.9 for RHD) and reads each column's metric from its
own run; the trial's value is the mean over the columns. Seeds are base.seed, base.seed + 1, ...;
the seed is a config field, so it is part of every config hash.

The study is named "<table>-<preset>-<hash8>" after the run hashes of its first seed's configs
(runner.study_name), so anything that changes the cells (--set, --source, --targets, --clip, a row
of the spec, a changed preset or trainer version, new data or CLIP weights) is another study;
--seeds only adds or drops cells of the same study.
"""

import json
import statistics
from functools import cached_property

from repro.config import ConfigError, RunConfig, from_dict
from repro.studies.runner import Cell, run_study, study_name
from repro.studies.spec import Row, TableSpec, load_spec, load_table


class TablePlan:
    def __init__(self, spec: TableSpec, base: RunConfig, seeds: int | None = None, targets: dict[str, str] | None = None):
        if seeds is not None and seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        self.spec = spec
        self.base = base
        self.seeds = seeds or spec.seeds
        self.targets = dict(targets or spec.columns)
        self.journal = spec.name

    @cached_property
    def study_name(self) -> str:
        """Named on first use: it opens the first seed's data and CLIP (runner.study_name)."""
        first = [cfg for row in self.spec.rows if row.reproduced for cfg in self.configs(row, self.base.seed).values()]
        return study_name(f"{self.spec.name}-{self.base.preset}", first)

    @classmethod
    def from_args(cls, name: str, base: RunConfig, seeds: int | None = None, targets: list[str] | None = None) -> "TablePlan":
        """The plan of studies/<name>.toml; `targets` (the --targets list) replaces its columns' targets in order."""
        spec = load_table(name)
        if targets is None:
            return cls(spec, base, seeds)
        if len(targets) != len(spec.columns):
            raise ConfigError(
                f"--targets: {spec.name} has {len(spec.columns)} columns ({', '.join(spec.columns)}), got {len(targets)} targets"
            )
        return cls(spec, base, seeds, dict(zip(spec.columns, targets)))

    def seed_values(self) -> range:
        return range(self.base.seed, self.base.seed + self.seeds)

    @staticmethod
    def cell_key(row: str, seed: int) -> str:
        return f"{row} | seed {seed}"

    def cells(self) -> list[Cell]:
        """Seed-major, so that a partial multi-seed run already has every row once."""
        reproduced = [r for r in self.spec.rows if r.reproduced]
        return [Cell(self.cell_key(r.name, s), {"row": r.name, "seed": s}) for s in self.seed_values() for r in reproduced]

    def configs(self, row: Row, seed: int) -> dict[str, RunConfig]:
        return self.spec.configs(row, self.base, seed, self.targets)

    def run_cell(self, cell: Cell, train) -> tuple[float, dict]:
        configs = self.configs(self.spec.row(cell.attrs["row"]), cell.attrs["seed"])
        results = {}
        for cfg in configs.values():
            if cfg.hash not in results:
                results[cfg.hash] = train(cfg)
        metrics = {col: results[cfg.hash].metrics[f"{self.targets[col]}/{self.spec.metric}"] for col, cfg in configs.items()}
        attrs = {
            "metrics": metrics,
            "config_hashes": {col: cfg.hash for col, cfg in configs.items()},
            "run_ids": {col: results[cfg.hash].run_id for col, cfg in configs.items()},
            "reused": {col: results[cfg.hash].reused for col, cfg in configs.items()},
        }
        return statistics.fmean(metrics.values()), attrs

    def describe(self) -> dict:
        return {
            "table": self.spec.name,
            "title": self.spec.title,
            "spec_file": str(self.spec.path),
            "preset": self.base.preset,
            "columns": json.dumps(self.targets),
            "base_config_hash": self.base.hash,
            **{f"base.{k}": v for k, v in self.base.flat().items()},
        }

    def to_json(self) -> dict:
        return {"spec": str(self.spec.path), "base": self.base.to_dict(), "seeds": self.seeds, "targets": self.targets}

    @classmethod
    def from_json(cls, data: dict) -> "TablePlan":
        return cls(load_spec(data["spec"]), from_dict(data["base"]), data["seeds"], data["targets"])


def run_tables(
    names: list[str],
    base: RunConfig,
    seeds: int | None = None,
    targets: list[str] | None = None,
    workers: int = 1,
    storage: str | None = None,
    trainer=None,
) -> list[tuple[TablePlan, object]]:
    """Each table's study in turn (`repro all` is every spec): configs shared with an earlier table
    are reused from MLflow, not trained again. Returns (plan, session) per table."""
    plans = [TablePlan.from_args(name, base, seeds, targets) for name in names]  # every spec checked before any training
    return [(plan, run_study(plan, workers, storage, trainer)) for plan in plans]
