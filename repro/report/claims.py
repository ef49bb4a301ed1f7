"""The paper's claims (studies/claims.toml) and every table row against its Baseline, checked on
our runs: a difference with a paired bootstrap interval per cell (repro.report.statistics), the
verdict on each claim, and what the table's seeds can resolve.

A claim is "row beats reference" in one table on one column; claims.toml gives the paper's two
numbers per column and the loader checks them against the table's spec, and that they go the
claimed way. A table's Baseline is its row named "Baseline"; a table without one (Tables 3, 5, 6)
compares with the Baseline config on its base (mode = baseline), read from whichever table study
trained it (Table 4(a)'s): the two have one config hash, so they are the same runs.

The cells' errors are the runs' per-sample artifacts (per_sample/<target>.parquet, logged by
repro.train.run), read once per run and split. Two cells are compared seed by seed when their runs
are the same seeds of one trainer version from PAIRED_SINCE on (the runs' identity.json).
"""

import json
import math
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from repro.config import ConfigError
from repro.report.figures import quiet_downloads
from repro.report.statistics import (
    ALPHA,
    DRAWS,
    INCONCLUSIVE,
    MIN_SEEDS,
    MOST_SEEDS,
    POWER,
    Difference,
    detectable_difference,
    paired_bootstrap,
    pooled_sd,
    seeds_needed,
    verdict,
)
from repro.studies.spec import BASELINE, BASELINE_ROW, STUDIES_DIR, load_table, spec_names
from repro.tracking import client

CLAIMS_FILE = STUDIES_DIR / "claims.toml"
CLAIM_KEYS = {"text", "table", "row", "reference", "paper"}
PER_SAMPLE = "per_sample"  # the runs' artifact folder: <split>.parquet
IDENTITY = "identity.json"  # the run's identity record (repro.train.identity)
# From trainer version 6 on, a seed's configs start from the same weights of their shared parts and see
# the same batches (repro.train), so a seed's runs of two configs are a pair.
PAIRED_SINCE = 6

# Why a cell has no difference
REFERENCE = "reference"
MISSING = "missing"
NO_REFERENCE = f"no {BASELINE} runs"
NO_SAMPLES = "no per-sample data"

DELTA_HEADER = f"Δ vs {BASELINE} [95% CI]"
CLAIM_HEADER = ("Claim", "Table", "Column", "Paper Δ (mm)", "Ours Δ [95% CI]", "P(improvement)", "Seeds", "Verdict")
CLAIMS_INTRO = (
    "Each of the paper's claims (studies/claims.toml) on our runs: Δ = the row's EPE minus the reference's (mm, "
    "negative: the row is better), the paper's and ours with its 95% paired bootstrap interval; P(improvement): the share "
    "of bootstrap draws in which the row is better; seeds: row vs reference, or n paired: n seeds compared seed by seed."
)
VERDICT_RULE = (
    "Verdict: holds when the interval excludes 0 on the paper's side; reversed when it excludes 0 on the other side; "
    f"inconclusive otherwise, and whenever a cell has fewer than {MIN_SEEDS} seeds (one seed's interval covers the test "
    "images only, not the spread between trainings)."
)


class ClaimsError(ConfigError):
    """A claims file that cannot be used; the message names the file, the claim and the field."""


@dataclass(frozen=True)
class Claim:
    number: int  # the entry's position in the file, from 1
    text: str
    table: str
    row: str  # the row that beats ...
    reference: str  # ... this one
    column: str
    paper: tuple[float, float]  # the paper's EPE of the row and of the reference

    @property
    def paper_delta(self) -> float:
        return self.paper[0] - self.paper[1]


def _shown(path: Path) -> str:
    """The file as errors name it: relative to the repository when inside it."""
    return str(path.relative_to(STUDIES_DIR.parent)) if path.is_relative_to(STUDIES_DIR.parent) else str(path)


def _claim(entry: object, number: int, where: str) -> list[Claim]:
    """The claims of one [[claims]] entry, one per column of its `paper`."""

    def fail(message: str) -> NoReturn:
        raise ClaimsError(f"{where}: claim {number}: {message}")

    if not isinstance(entry, dict):
        fail("expected a table ([[claims]])")
    if set(entry) != CLAIM_KEYS:
        fail(f"expected the keys {sorted(CLAIM_KEYS)}, got {sorted(entry)}")
    if entry["table"] not in spec_names():
        fail(f"unknown table {entry['table']!r}; known: {', '.join(spec_names())}")
    spec = load_table(entry["table"])
    rows = {r.name: r for r in spec.rows if r.reproduced}
    for key in ("row", "reference"):
        if not isinstance(entry[key], str) or entry[key] not in rows:
            fail(f"{key}: unknown row {entry[key]!r} of {spec.name} (reproduced rows: {', '.join(rows)})")
    if entry["row"] == entry["reference"]:
        fail(f"row and reference are both {entry['row']!r}")
    if not isinstance(entry["text"], str) or not entry["text"]:
        fail("text: expected a non-empty string")
    paper = entry["paper"]
    if not isinstance(paper, dict) or not paper:
        fail("paper: expected a table column = [row's EPE, reference's EPE]")
    claims = []
    for col, pair in paper.items():
        if col not in spec.columns:
            fail(f"paper: unknown column {col!r} of {spec.name} (columns: {', '.join(spec.columns)})")
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)):
            fail(f"paper.{col}: expected [row's EPE, reference's EPE], got {pair!r}")
        listed = (rows[entry["row"]].paper.get(col), rows[entry["reference"]].paper.get(col))
        if tuple(pair) != listed:
            fail(f"paper.{col}: {pair} differs from the spec's paper values {list(listed)} (studies/{spec.name}.toml)")
        if not pair[0] < pair[1]:
            fail(f"paper.{col}: the paper's numbers ({pair[0]} vs {pair[1]}) do not say {entry['row']!r} beats {entry['reference']!r}")
        claims.append(Claim(number, entry["text"], spec.name, entry["row"], entry["reference"], col, (float(pair[0]), float(pair[1]))))
    return claims


def load_claims(path: Path | None = None) -> tuple[Claim, ...]:
    """Every claim of the file (default CLAIMS_FILE), one per (entry, column), checked against the table specs."""
    path = Path(path or CLAIMS_FILE)
    where = _shown(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ClaimsError(f"{where}: {err}") from None
    if set(data) != {"claims"} or not isinstance(data["claims"], list):
        raise ClaimsError(f"{where}: expected [[claims]] entries only, got the keys {sorted(data)}")
    return tuple(claim for number, entry in enumerate(data["claims"], start=1) for claim in _claim(entry, number, where))


class Scores:
    """The per-sample errors of training runs, read from MLflow once per (run, split)."""

    def __init__(self):
        self._store = client()
        self._read: dict[tuple[str, str], tuple[np.ndarray, np.ndarray] | None] = {}
        self._compared: dict[tuple, Difference | str] = {}
        self._paired: dict[str, tuple[int, int] | None] = {}

    def _artifact(self, run_id: str, path: str, read):
        """read(local file) of the run's artifact at `path`, None when the run has none (a run from before it existed)."""
        folder = path.rpartition("/")[0] or None
        if path not in {a.path for a in self._store.list_artifacts(run_id, folder)}:
            return None
        with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
            return read(Path(self._store.download_artifacts(run_id, path, tmp)))

    def _load(self, run_id: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
        frame = self._artifact(run_id, f"{PER_SAMPLE}/{split}.parquet", pd.read_parquet)
        if frame is None:
            return None
        return frame.filter(regex=r"^err_mm_\d+$").to_numpy(float), frame.filter(regex=r"^vis_\d+$").to_numpy(bool)

    def errors(self, run_id: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(errors (images, joints) mm, visible (images, joints)) of the run on the split, None without the artifact."""
        if (run_id, split) not in self._read:
            self._read[run_id, split] = self._load(run_id, split)
        return self._read[run_id, split]

    def pairing(self, run_id: str) -> tuple[int, int] | None:
        """(trainer version, seed) of a run whose trainer pairs a seed's configs, else None."""
        if run_id not in self._paired:
            record = self._artifact(run_id, IDENTITY, lambda f: json.loads(f.read_text()))
            paired = record is not None and record["trainer_version"] >= PAIRED_SINCE
            self._paired[run_id] = (record["trainer_version"], record["config"]["seed"]) if paired else None
        return self._paired[run_id]

    def seed_order(self, row_ids: list[str], ref_ids: list[str]) -> list[int] | None:
        """For each of the row's runs the position of its seed's run among the reference's, when the
        two cells are the same seeds of one pairing trainer version; None otherwise."""
        row, ref = [self.pairing(i) for i in row_ids], [self.pairing(i) for i in ref_ids]
        if None in row or None in ref or len(set(row)) != len(row) or sorted(row) != sorted(ref):
            return None
        if len({version for version, _ in row}) != 1:
            return None
        return [ref.index(pair) for pair in row]

    def cell(self, run_ids: list[str], split: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(errors (runs, images, joints), visible) of a cell's runs, None when one has no per-sample data."""
        read = [self.errors(i, split) for i in run_ids]
        if any(r is None for r in read):
            return None
        for run_id, (_, visible) in zip(run_ids[1:], read[1:]):
            if not np.array_equal(visible, read[0][1]):
                raise ConfigError(f"runs {run_ids[0]} and {run_id} were scored on different images of {split}: they cannot be paired")
        return np.stack([e for e, _ in read]), read[0][1]

    def compare(self, row_ids: list[str], ref_ids: list[str], split: str) -> Difference | str:
        """The row's cell against the reference's on the split, or why there is no difference."""
        key = (tuple(row_ids), tuple(ref_ids), split)
        if key not in self._compared:
            self._compared[key] = self._compare(row_ids, ref_ids, split)
        return self._compared[key]

    def _compare(self, row_ids: list[str], ref_ids: list[str], split: str) -> Difference | str:
        if not row_ids or not ref_ids:
            return MISSING
        row, ref = self.cell(row_ids, split), self.cell(ref_ids, split)
        if row is None or ref is None:
            return NO_SAMPLES
        if not np.array_equal(row[1], ref[1]):
            raise ConfigError(f"runs {row_ids[0]} and {ref_ids[0]} were scored on different images of {split}: they cannot be paired")
        order = self.seed_order(row_ids, ref_ids)
        if order is None:
            return paired_bootstrap(row[0], ref[0], row[1])
        return paired_bootstrap(row[0], ref[0][order], row[1], by_seed=True)


def runs_by_config(studies) -> dict[str, tuple[str, str]]:
    """config hash -> (run id, study name) over the finished cells of table studies."""
    index = {}
    for study in studies:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            for col, config_hash in trial.user_attrs["config_hashes"].items():
                index.setdefault(config_hash, (trial.user_attrs["run_ids"][col], study.study_name))
    return index


@dataclass(frozen=True)
class Checked:
    claim: Claim
    found: Difference | str  # a string: why there is no difference
    verdict: str


@dataclass(frozen=True)
class Power:
    column: str
    sd: float  # spread between seeds of one config (paired: of a row's per-seed differences from the Baseline), pooled over rows
    pooled: int  # configs (paired: rows) with two seeds or more in the pool
    paired: bool  # the column's differences are paired by seed
    seeds: int  # the table's seeds per config
    detectable: float  # the smallest difference those seeds resolve
    needs: tuple[tuple[str, float, int | None], ...]  # per claim of the table on the column: (text, paper Δ, seeds it needs)


@dataclass(frozen=True)
class TableStats:
    reference: str  # where the Baseline's runs come from
    reference_runs: tuple[str, ...]
    deltas: dict[tuple[str, str], Difference | str]  # (row, column) -> against the Baseline
    claims: tuple[Checked, ...]
    power: tuple[Power, ...]


def _ids(joined: str) -> list[str]:
    return [x for x in joined.split(",") if x]


def baseline_runs(plan, index: dict[str, tuple[str, str]]) -> tuple[dict[str, list[str]], str]:
    """Per column the run ids of the table's Baseline (its own row, or the Baseline config on its base
    trained by another study of `index`), and a sentence saying which."""
    own = next((r for r in plan.spec.rows if r.name == BASELINE and r.reproduced), None)
    runs, studies = {col: [] for col in plan.targets}, set()
    for seed in plan.seed_values():
        for col, cfg in plan.configs(own or BASELINE_ROW, seed).items():
            if cfg.hash in index:
                runs[col].append(index[cfg.hash][0])
                studies.add(index[cfg.hash][1])
    if own is not None:
        return runs, f"the table's {BASELINE} row"
    if not studies:
        return runs, (
            f"no {BASELINE}: this table has no {BASELINE} row and no study read here trained the {BASELINE} config on its base "
            f"(run `repro table4a` with the same flags)"
        )
    found = ", ".join(dict.fromkeys(i for col in plan.targets for i in runs[col]))
    return runs, (
        f"the {BASELINE} config on this table's base (mode = baseline), not a row of this table: runs {found} of study "
        f"{', '.join(sorted(studies))}"
    )


def table_statistics(plan, frame, index: dict[str, tuple[str, str]], claims: tuple[Claim, ...], scores: Scores) -> TableStats:
    """Every reproduced row against the Baseline per column, the table's claims, and its power lines.
    `frame` is results_frame's, `index` runs_by_config's over the studies read together."""
    ref_runs, note = baseline_runs(plan, index)
    reproduced = [r for r in plan.spec.rows if r.reproduced]
    deltas = {}
    for row in reproduced:
        for col, target in plan.targets.items():
            ids = _ids(frame.loc[(row.name, col), "run_ids"])
            if row.name == BASELINE:
                deltas[row.name, col] = REFERENCE
            else:
                deltas[row.name, col] = scores.compare(ids, ref_runs[col], target) if ref_runs[col] else NO_REFERENCE
    checked = []
    for claim in (c for c in claims if c.table == plan.spec.name):
        row_ids, ref_ids = (_ids(frame.loc[(name, claim.column), "run_ids"]) for name in (claim.row, claim.reference))
        found = scores.compare(row_ids, ref_ids, plan.targets[claim.column])
        checked.append(Checked(claim, found, verdict(found, claim.paper_delta) if isinstance(found, Difference) else INCONCLUSIVE))
    power = []
    for col in plan.targets:
        found = [d for (_, c), d in deltas.items() if c == col and isinstance(d, Difference)]
        paired = bool(found) and all(d.by_seed for d in found)
        if paired:  # what a comparison seed by seed has to beat: the spread of the per-seed differences
            spreads = [(d.spread, d.n_row) for d in found]
        else:
            cells = frame.xs(col, level="column").loc[[r.name for r in reproduced]]
            spreads = list(zip(cells["std"], cells["n"]))
        sd = pooled_sd(spreads)
        needs = tuple(
            (c.claim.text, c.claim.paper_delta, seeds_needed(c.claim.paper_delta, sd, paired=paired))
            for c in checked
            if c.claim.column == col
        )
        pooled = sum(n >= 2 for _, n in spreads)
        power.append(Power(col, sd, pooled, paired, plan.seeds, float(detectable_difference(sd, plan.seeds, paired=paired)), needs))
    return TableStats(note, tuple(dict.fromkeys(i for col in plan.targets for i in ref_runs[col])), deltas, tuple(checked), tuple(power))


# --- Text, shared by `repro report` and `repro table*` ------------------------------------------------


def interval_text(found: Difference | str) -> str:
    """'-1.23 [-2.50, +0.10]', with '*' when the interval resolves the difference; or why there is none."""
    if not isinstance(found, Difference):
        return found
    mark = "*" if found.excludes_zero else ""
    return f"{found.delta:+.2f} [{found.low:+.2f}, {found.high:+.2f}]{mark}"


def pairing_text(stats: TableStats) -> str:
    """How many of the table's differences resampled the seeds as pairs."""
    found = [d for d in stats.deltas.values() if isinstance(d, Difference)]
    return f"here {sum(d.by_seed for d in found)} of {len(found)} differences are paired by seed"


def delta_legend(stats: TableStats) -> str:
    return (
        f"{DELTA_HEADER}: the row's EPE minus the {BASELINE}'s (mm, negative: the row is better), {stats.reference}; "
        f"a 95% percentile interval of a paired two-level bootstrap ({DRAWS} draws: the seeds with replacement, then the "
        f"test images with replacement, one draw for both cells, EPE as logged). The seeds are drawn as pairs, one draw "
        f"for both cells, when the cells are the same seeds of trainer version {PAIRED_SINCE} or later, which gives a "
        f"seed's configs the same initial weights of their shared parts and the same batches; otherwise each cell's "
        f"seeds are drawn on their own ({pairing_text(stats)}). *: the interval excludes 0 and both cells have "
        f"{MIN_SEEDS} seeds or more; {NO_SAMPLES}: a run logged no per-sample errors. Before the seeds are resampled, "
        f"each run's EPE (each pair's difference) is moved from the mean by sqrt(n / (n - 1)) t(n - 1) / z, so that n "
        f"seeds' interval is as wide as a t interval over them (2 seeds: 9.2x, 3 seeds: 2.7x)."
    )


def claim_rows(stats: TableStats) -> list[tuple[str, ...]]:
    """CLAIM_HEADER per claim of the table."""
    rows = []
    for c in stats.claims:
        found = c.found
        p = f"{found.p_better:.2f}" if isinstance(found, Difference) else "–"
        seeds = (
            "–" if not isinstance(found, Difference) else f"{found.n_row} paired" if found.by_seed else f"{found.n_row} vs {found.n_ref}"
        )
        rows.append(
            (f"{c.claim.text} ({c.claim.row} vs {c.claim.reference})", c.claim.table, c.claim.column, f"{c.claim.paper_delta:+.2f}")
            + (interval_text(found), p, seeds, c.verdict)
        )
    return rows


def power_lines(stats: TableStats) -> list[str]:
    """One sentence per column: the spread between seeds, what the seeds resolve, what the paper's differences would need."""
    lines = []
    for p in stats.power:
        if not math.isfinite(p.sd):
            lines.append(f"{p.column}: no config has two finished seeds, so the spread between seeds is unknown.")
            continue
        method = f"two-sided {'paired' if p.paired else 'two-sample'} t-test at alpha {ALPHA}, {POWER:.0%} power, the t approximation"
        spread = (
            f"a row's per-seed differences from the {BASELINE} spread {p.sd:.2f} mm (standard deviation, ddof = 1, pooled over {p.pooled} rows)"
            if p.paired
            else f"seeds of one config spread {p.sd:.2f} mm (standard deviation, ddof = 1, pooled over {p.pooled} configs)"
        )
        text = f"{p.column}: {spread}; {p.seeds} seeds per config resolve a difference of {p.detectable:.2f} mm ({method})"
        needs = [f"{claim}, {delta:+.2f} mm: {f'more than {MOST_SEEDS}' if n is None else n} seeds" for claim, delta, n in p.needs]
        lines.append(text + ("; the paper's differences would need " + "; ".join(needs) if needs else "; no claim of the paper here") + ".")
    return lines


def statistics_text(stats: TableStats) -> str:
    """The Δ legend, power lines and claims as plain text (`repro table*` prints it under the table)."""
    lines = [delta_legend(stats), "Power:", *(f"  {line}" for line in power_lines(stats))]
    if stats.claims:
        lines += [
            "Claims:",
            *(f"  {r[0]}, {r[2]}: paper {r[3]}, ours {r[4]}, P(improvement) {r[5]}, seeds {r[6]}: {r[7]}" for r in claim_rows(stats)),
        ]
        lines.append(VERDICT_RULE)
    return "\n".join(lines)


def with_deltas(frame: pd.DataFrame, stats: TableStats) -> pd.DataFrame:
    """The results frame with the difference against the Baseline per cell (delta, its interval, P), NaN where there is none."""
    out = frame.copy()
    for key in ("delta", "delta_low", "delta_high", "p_better"):
        out[key] = math.nan
    for (row, col), found in stats.deltas.items():
        if isinstance(found, Difference):
            out.loc[(row, col), ["delta", "delta_low", "delta_high", "p_better"]] = [found.delta, found.low, found.high, found.p_better]
    out[DELTA_HEADER] = [interval_text(stats.deltas[key]) if key in stats.deltas else "–" for key in out.index]
    return out
