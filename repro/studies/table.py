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
from repro.studies.runner import Cell, run_studies, study_name
from repro.studies.spec import BASELINE, BASELINE_ROW, Row, TableSpec, load_spec, load_table


class TablePlan:
    def __init__(self, spec: TableSpec, base: RunConfig, seeds: int | None = None, targets: dict[str, str] | None = None):
        if seeds is not None and seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        self.spec = spec
        self.base = base
        self.seeds = seeds or spec.seeds_for(base.preset)
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
        """Seed-major, a wave per seed, so that a partial multi-seed run already has every row once; a row is a
        kind, whose first seed times the others (runner.claim_order)."""
        reproduced = [r for r in self.spec.rows if r.reproduced]
        return [
            Cell(self.cell_key(r.name, s), {"row": r.name, "seed": s}, wave=i, kind=r.name)
            for i, s in enumerate(self.seed_values())
            for r in reproduced
        ]

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

    def reads(self, other: "TablePlan") -> bool:
        """Whether this table's report reads runs of `other`'s cells: the Baseline config on its base,
        when it has no Baseline row of its own (repro.report.claims.baseline_runs: Tables 3, 5 and 6
        read Table 4(a)'s)."""
        if any(row.name == BASELINE and row.reproduced for row in self.spec.rows):
            return False
        wanted = {cfg.hash for seed in self.seed_values() for cfg in self.configs(BASELINE_ROW, seed).values()}
        return any(
            cfg.hash in wanted
            for cell in other.cells()
            for cfg in other.configs(other.spec.row(cell.attrs["row"]), cell.attrs["seed"]).values()
        )

    def run_name(self, cell: Cell, cfg: RunConfig) -> str:
        """The row's name, then what else tells its trainings apart: the knobs of the column `cfg`
        trains (a per-column row), the fusion (unless the row names it), the seed;
        e.g. "IE+TE r=0.4 concat seed 0", "Ours ratio=0.9 concat seed 0", "Baseline seed 0"."""
        row = self.spec.row(cell.attrs["row"])
        column = next(col for col, c in self.configs(row, cell.attrs["seed"]).items() if c.hash == cfg.hash)
        parts = [row.name, *(f"{k}={v}" for k, v in row.per_column.get(column, {}).items())]
        if cfg.uses_clip and cfg.model.fusion not in row.name.split():
            parts.append(cfg.model.fusion)
        return " ".join([*parts, f"seed {cfg.seed}"])

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
    workers: int | None = None,
    storage: str | None = None,
    trainer=None,
    devices: list[str] | None = None,
    on_done=None,
) -> list[tuple[TablePlan, object]]:
    """The tables' studies as one pool of trainings (`repro all` is every spec; runner.run_studies):
    no barrier between tables, and a config shared by two tables trains once (the second cell waits
    for it under its config lock, then reuses it). `on_done(plan, session, settled)` is called per
    table once its cells are settled and so are those of the tables it reads (reads()); `settled`
    holds every session settled so far, the studies its report may read. Returns (plan, session)
    per table."""
    plans = [TablePlan.from_args(name, base, seeds, targets) for name in dict.fromkeys(names)]  # every spec checked before any training
    reads = {p.spec.name: [q.spec.name for q in plans if q is not p and p.reads(q)] for p in plans}
    settled, reported = {}, set()

    def settle(session) -> None:
        settled[session.plan.spec.name] = session
        for plan in plans:
            name = plan.spec.name
            if on_done is not None and name in settled and name not in reported and all(q in settled for q in reads[name]):
                reported.add(name)
                on_done(plan, settled[name], list(settled.values()))

    sessions = run_studies(plans, workers, storage, trainer, devices=devices, on_settled=settle)
    return list(zip(plans, sessions))
