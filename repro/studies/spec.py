"""A table of the paper as data: one TOML file per table under studies/ (read with tomllib).

Format (every key but `rows` is optional; see studies/table4a.toml):

    title = "Table 4(a): ..."
    seeds = { default = 3, tiny = 1 }  # seeds per cell, per preset (or one integer for all); `--seeds` overrides
    metric = "epe_mm"                  # read as "<target>/<metric>" from each training run
    [columns]                          # the paper's columns, in order -> the target each one reads
    STB = "synth-stb"
    RHD = "synth-rhd"
    [base]                             # config fields every row of the table shares
    mode = "iete"
    [[rows]]
    name = "IE+TE sum"                 # unique within the table
    set = { ratio = 0.6, model.fusion = "sum" }   # the knobs this row changes (dotted or nested keys)
    per_column = { STB = { ratio = 0.6 }, RHD = { ratio = 0.9 } }  # knobs that differ per column
    paper = { STB = 42.98, RHD = 48.24 }          # the paper's numbers (EPE mm)
    reproduced = false                 # a paper-only row (another method): no config, no training
    note = "why"                       # printed beside a paper-only row

A cell's config is: the preset with the command line's overrides, then `base`, then the row's
`set`, then its `per_column` entry (the table's own knobs win over --set: they define the
ablation). Every training evaluates on all of the table's targets, so a row whose config does
not differ per column trains once, and a per-column row reads each column from its own run.
Errors name the file and the field (SpecError is a ConfigError, so the CLI prints them).
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from repro.config import ConfigError, RunConfig, with_overrides
from repro.presets import PRESETS
from repro.tracking import SPLIT_METRICS

# Next to the package: the repository's studies/ folder (the package is installed editable).
STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"
NOT_TABLES = {"claims"}  # studies/claims.toml lists the paper's claims over the tables (repro.report.claims)

TOP_KEYS = {"title", "seeds", "metric", "columns", "base", "rows"}
ROW_KEYS = {"name", "set", "per_column", "paper", "reproduced", "note"}


class SpecError(ConfigError):
    """A table spec that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Row:
    name: str
    set: dict[str, object]
    per_column: dict[str, dict[str, object]]
    paper: dict[str, float]
    reproduced: bool = True
    note: str = ""


BASELINE = "Baseline"  # the row every other row of a table is compared with
BASELINE_ROW = Row(BASELINE, {"mode": "baseline"}, {}, {})  # the Baseline config on a table's base, for tables without the row


@dataclass(frozen=True)
class TableSpec:
    name: str  # the file's stem: the command (`repro table4a`) and the study's prefix
    path: Path
    title: str
    seeds: dict[str, int]  # preset -> seeds per cell; "default" for the presets not named
    metric: str
    columns: dict[str, str]  # paper column -> target dataset
    base: dict[str, object]
    rows: tuple[Row, ...] = field(default_factory=tuple)

    def seeds_for(self, preset: str) -> int:
        return self.seeds.get(preset, self.seeds["default"])

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def configs(self, row: Row, base: RunConfig, seed: int, targets: dict[str, str] | None = None) -> dict[str, RunConfig]:
        """Column -> the config its cell trains (`targets` remaps columns to other datasets)."""
        targets = targets or self.columns
        common = {**self.base, **row.set, "targets": tuple(dict.fromkeys(targets.values())), "seed": seed}
        return {col: with_overrides(base, {**common, **row.per_column.get(col, {})}) for col in self.columns}


def spec_names() -> list[str]:
    """The tables under studies/, in order (the files' stems, sorted: table3, table4a, ...)."""
    return sorted(p.stem for p in STUDIES_DIR.glob("*.toml") if p.stem not in NOT_TABLES)


def load_table(name: str) -> TableSpec:
    path = STUDIES_DIR / f"{name}.toml"
    if not path.is_file():
        raise SpecError(f"no table spec {path}; known: {', '.join(spec_names()) or 'none'}")
    return load_spec(path)


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    """TOML's nested tables ({model = {fusion = "sum"}}) -> dotted config keys ("model.fusion").

    Numbers become strings, so that with_overrides parses them by the field's type: TOML's
    `lambda_con = 1` must hash like the float 1.0, and `epochs = 2.5` must be an error."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = repr(value)
        else:
            out[f"{prefix}{key}"] = value
    return out


def _expect(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise SpecError(f"{where}: {message}")


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    _expect(isinstance(value, dict), f"{where}.{key}", f"expected a table, got {value!r}")
    return value


def _check_overrides(overrides: dict, where: str) -> None:
    try:
        with_overrides(RunConfig(), overrides)
    except (ConfigError, ValueError, TypeError) as err:
        raise SpecError(f"{where}: {err}") from None


def _row(data: object, where: str, columns: dict[str, str]) -> Row:
    _expect(isinstance(data, dict), where, "expected a table ([[rows]])")
    _expect(not set(data) - ROW_KEYS, where, f"unknown keys {sorted(set(data) - ROW_KEYS)}; known: {sorted(ROW_KEYS)}")
    _expect(isinstance(data.get("name"), str) and data["name"], f"{where}.name", "expected a non-empty string")
    where = f"{where} ({data['name']!r})"
    reproduced = data.get("reproduced", True)
    _expect(isinstance(reproduced, bool), f"{where}.reproduced", "expected true or false")
    paper = _table(data, "paper", where)
    _expect(not set(paper) - set(columns), f"{where}.paper", f"columns {sorted(set(paper) - set(columns))} are not in [columns]")
    for col, value in paper.items():
        _expect(isinstance(value, int | float) and not isinstance(value, bool), f"{where}.paper.{col}", f"expected a number, got {value!r}")
    overrides = _flatten(_table(data, "set", where))
    per_column = {
        col: _flatten(_table(_table(data, "per_column", where), col, f"{where}.per_column")) for col in _table(data, "per_column", where)
    }
    _expect(
        not set(per_column) - set(columns), f"{where}.per_column", f"columns {sorted(set(per_column) - set(columns))} are not in [columns]"
    )
    if not reproduced:
        _expect(not overrides and not per_column, where, "a paper-only row (reproduced = false) has no set or per_column")
    _check_overrides(overrides, f"{where}.set")
    for col, extra in per_column.items():
        _check_overrides({**overrides, **extra}, f"{where}.per_column.{col}")
    note = data.get("note", "")
    _expect(isinstance(note, str), f"{where}.note", "expected a string")
    return Row(data["name"], overrides, per_column, {k: float(v) for k, v in paper.items()}, reproduced, note)


def _seeds(value: object, where: str) -> dict[str, int]:
    """`seeds = 3` (every preset) or `seeds = { default = 3, tiny = 1 }` -> {preset or "default": count}."""
    counts = value if isinstance(value, dict) else {"default": value}
    expected = f"expected an integer >= 1 or a table of them by preset ({', '.join(['default', *PRESETS])}), got {value!r}"
    _expect("default" in counts and not set(counts) - {"default", *PRESETS}, where, expected)
    for count in counts.values():
        _expect(isinstance(count, int) and not isinstance(count, bool) and count >= 1, where, expected)
    return dict(counts)


def load_spec(path: str | Path) -> TableSpec:
    """Read and validate one table spec; every error names the file and the field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise SpecError(f"{path}: {err}") from None
    where = str(path)
    _expect(not set(data) - TOP_KEYS, where, f"unknown keys {sorted(set(data) - TOP_KEYS)}; known: {sorted(TOP_KEYS)}")
    columns = _table(data, "columns", where) or {"STB": "synth-stb", "RHD": "synth-rhd"}
    for col, target in columns.items():
        _expect(isinstance(target, str) and target, f"{where}.columns.{col}", f"expected a dataset name, got {target!r}")
    seeds = _seeds(data.get("seeds", 1), f"{where}.seeds")
    metric = data.get("metric", "epe_mm")
    _expect(metric in SPLIT_METRICS, f"{where}.metric", f"expected one of {', '.join(SPLIT_METRICS)}")
    base = _flatten(_table(data, "base", where))
    _check_overrides(base, f"{where}.base")
    rows_data = data.get("rows")
    _expect(isinstance(rows_data, list) and rows_data, f"{where}.rows", "expected at least one [[rows]] entry")
    rows = tuple(_row(r, f"{where}.rows[{i}]", columns) for i, r in enumerate(rows_data))
    names = [r.name for r in rows]
    _expect(len(set(names)) == len(names), f"{where}.rows", f"row names must be unique, got {names}")
    title = data.get("title", path.stem)
    _expect(isinstance(title, str), f"{where}.title", "expected a string")
    return TableSpec(path.stem, path, title, seeds, metric, dict(columns), base, rows)
