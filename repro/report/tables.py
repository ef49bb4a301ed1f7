"""`repro report`: each table's study as a paper-style table in Markdown, HTML and LaTeX, plus an index.

Per table with a study for the preset: <table>.<preset>.md/.html/.tex. Per paper column, "ours" is
mean ± std (n) over the finished seeds (no std for one seed), then the paper's value and ours - paper;
the best of ours per column is bold; a cell without a finished run reads "missing", never 0. Each
report names its data, CLIP, preset, the git commits of its runs and, per cell, the config hashes
and MLflow run ids it was read from. index.md/.html link every table report (of any preset) and
every PNG under figures/ in the out folder.

The text depends only on the study, its runs and the folder's files: no timestamps, no absolute
paths, fixed number formats and sorted lists, so the same runs give the same bytes.
"""

import html
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from repro.data.domains import DOMAINS, diagnostics_of
from repro.decisions import rows as decision_rows
from repro.presets import paper_departures
from repro.studies.results import results_frame, world_note
from repro.studies.runner import find_study, storage_label
from repro.studies.spec import load_table, spec_names
from repro.studies.table import TablePlan
from repro.tracking import client

MISSING = "missing"
NOT_REPRODUCED = "not reproduced"
DASH = "–"
PARTS = ("ours", "paper", "diff")
RUN_HEADER = ("Row", "Column", "Target", "Status", "Config hashes", "MLflow run ids")
MEAN_POSE = "Mean training pose"  # the constant floor: always predicting the training split's mean pose
DIAGNOSTICS_INTRO = (
    "EPE mm of the same runs on the targets and their diagnostic targets: 'style only' shows the target's styles "
    "with the source's viewpoints and camera, 'view only' the reverse; the last row always predicts the mean training pose."
)
DECISION_HEADER = ("Decision", "Value in these runs", "Held by", "Used in", "Why")
DECISIONS_INTRO = "Where the paper is silent, these runs used the following (generated from repro.decisions)."


@dataclass(frozen=True)
class Cell:
    text: str
    bold: bool = False


@dataclass(frozen=True)
class TableReport:
    stem: str  # "<table>.<preset>", the files' name
    title: str
    facts: tuple[tuple[str, str], ...]  # (label, text): data, CLIP, preset, study, commits
    columns: tuple[str, ...]  # the paper's columns, each shown as PARTS
    rows: tuple[tuple[str, tuple[Cell, ...]], ...]  # (row name, cells in column x PARTS order)
    legend: str
    notes: tuple[tuple[str, str], ...]
    runs: tuple[tuple[str, ...], ...]  # RUN_HEADER per reproduced cell
    decisions: tuple[tuple[str, ...], ...]  # DECISION_HEADER per entry of repro.decisions
    diagnostics: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]  # (header, rows) of _diagnostics


def study_plan(name: str, base, targets: list[str] | None = None, storage: str | None = None) -> tuple[TablePlan, object | None]:
    """The table's plan and its study (None when never run), with as many seeds as the study's grid
    had when it last ran (`repro table4a --seeds 3` is reported over 3 seeds)."""
    plan = TablePlan.from_args(name, base, targets=targets)
    study = find_study(plan, storage)
    reproduced = sum(r.reproduced for r in plan.spec.rows)
    cells = len(study.user_attrs.get("cells", [])) if study is not None else 0
    if cells and reproduced and cells // reproduced != plan.seeds:
        plan = TablePlan.from_args(name, base, cells // reproduced, targets)
    return plan, study


def _ids(joined: str) -> list[str]:
    return [x for x in joined.split(",") if x]


def _run_data(frame) -> dict[str, object]:
    """The MLflow data (tags, metrics) of every run the frame names, by run id."""
    store = client()
    ids = sorted({i for joined in frame["run_ids"] for i in _ids(joined)})
    return {i: store.get_run(i).data for i in ids}


def _mean_text(mean: float, std: float, n: int, count: str) -> str:
    """'mean ± std (count)', no std for one value: the form of every "ours" cell."""
    spread = f" ± {std:.2f}" if n > 1 else ""
    return f"{mean:.2f}{spread} ({count})"


def _mean_of(values: list[float]) -> str:
    if not values:
        return MISSING
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return _mean_text(statistics.fmean(values), std, len(values), f"n={len(values)}")


def _diagnostics(plan: TablePlan, frame, runs: dict[str, object]) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(header, rows): per table row, each column's diagnostic targets (the target's style with the
    source's views, and the reverse) read from the cell's runs, then the mean-training-pose floor of
    every column and diagnostic; EPE mm, mean ± std (n) over the seeds."""
    shown = [(col, col, target) for col, target in plan.targets.items()]  # (label, paper column, dataset)
    shown += [(f"{col} {DOMAINS[d].keeps} only", col, d) for col, target in plan.targets.items() for d in diagnostics_of(target)]
    reproduced = [r.name for r in plan.spec.rows if r.reproduced]
    rows = []
    for row in reproduced:
        cells = []
        for _, col, dataset in shown:
            ids = _ids(frame.loc[(row, col), "run_ids"])
            cells.append(_mean_of([runs[i].metrics[f"{dataset}/epe_mm"] for i in ids if f"{dataset}/epe_mm" in runs[i].metrics]))
        rows.append((row, *cells))
    floor = []
    for _, _, dataset in shown:
        values = {runs[i].metrics[f"{dataset}/epe_mean_pose_mm"] for i in runs if f"{dataset}/epe_mean_pose_mm" in runs[i].metrics}
        floor.append(f"{statistics.fmean(values):.2f}" if values else MISSING)
    rows.append((MEAN_POSE, *floor))
    return ("Method", *(label for label, _, _ in shown)), tuple(rows)


def _clip_fact(plan: TablePlan, tags: dict[str, dict[str, str]]) -> str:
    text = plan.base.clip + (f" with checkpoint {Path(plan.base.clip_checkpoint).name}" if plan.base.clip_checkpoint else "")
    used = sorted(
        {f"{t['clip_identity']} (weights sha256 {t.get('clip_weights_digest', 'unknown')})" for t in tags.values() if "clip_identity" in t}
    )
    return f"{text}; runs used {', '.join(used)}" if used else f"{text}; no run of this table used CLIP"


def _commits(tags: dict[str, dict[str, str]]) -> str:
    found = {t.get("git_commit", "unknown") + (" (dirty)" if t.get("git_dirty") == "true" else "") for t in tags.values()}
    return ", ".join(sorted(found)) or "no runs"


def _ours(r, seeds: int, best: float) -> Cell:
    if r["status"] == "paper only":
        return Cell(NOT_REPRODUCED)
    if r["n"] == 0:
        return Cell(MISSING)
    n, mean = int(r["n"]), r["mean"]
    count = f"n={n}" if n == seeds else f"n={n} of {seeds}"
    return Cell(_mean_text(mean, r["std"], n, count), bold=round(mean, 2) == best)


def _number(value: float, fmt: str) -> str:
    return format(value, fmt) if math.isfinite(value) else DASH


def build_report(plan: TablePlan, frame, runs: dict[str, object], parent_run_id: str) -> TableReport:
    """`frame` is results_frame's, `runs` the MLflow data of its runs by run id, `parent_run_id` the study's MLflow run."""
    tags = {i: data.tags for i, data in runs.items()}
    higher = plan.spec.metric.startswith("auc")
    pick = max if higher else min  # over the rounded means, so that equal printed values are all bold
    best = {col: pick(round(v, 2) for v in means) for col, means in frame.loc[frame["n"] > 0, "mean"].groupby(level="column")}
    rows = []
    for row in dict.fromkeys(frame.index.get_level_values("row")):
        cells = []
        for col in plan.targets:
            r = frame.loc[(row, col)]
            cells += [_ours(r, plan.seeds, best.get(col, math.nan)), Cell(_number(r["paper"], ".2f")), Cell(_number(r["diff"], "+.2f"))]
        rows.append((row, tuple(cells)))
    run_rows = tuple(
        (row, col, r["target"], r["status"], ", ".join(_ids(r["config_hashes"])) or DASH, ", ".join(_ids(r["run_ids"])) or DASH)
        for (row, col), r in frame.iterrows()
        if r["status"] != "paper only"
    )
    departures = paper_departures(plan.base)
    facts = (
        ("Data", world_note(plan)),
        ("CLIP", _clip_fact(plan, tags)),
        (
            "Preset",
            plan.base.preset
            + (f"; differs from the paper preset (the paper's sizes, lr and losses) in: {', '.join(departures)}" if departures else ""),
        ),
        (
            "Study",
            f"{plan.study_name} (spec studies/{plan.spec.name}.toml, base config {plan.base.hash}, MLflow run {parent_run_id}), "
            f"{plan.seeds} seed(s) per cell",
        ),
        ("Git commits of the runs", _commits(tags)),
    )
    legend = (
        f"ours: mean ± std (n) of {plan.spec.metric} over the n seeds with a finished run (no std for n = 1); "
        f"paper: the paper's value; diff: ours - paper; bold: the best of ours per column ({'highest' if higher else 'lowest'}); "
        f"{MISSING}: no finished run; {NOT_REPRODUCED}: another method, the paper's number only."
    )
    notes = tuple((row, note) for row, note in frame["note"].groupby(level="row", sort=False).first().items() if note)
    stem = f"{plan.spec.name}.{plan.base.preset}"
    configs = [cfg for row in plan.spec.rows if row.reproduced for seed in plan.seed_values() for cfg in plan.configs(row, seed).values()]
    decisions = tuple(tuple(d[k] for k in ("decision", "value", "holder", "where", "why")) for d in decision_rows(configs))
    return TableReport(
        stem, plan.spec.title, facts, tuple(plan.targets), tuple(rows), legend, notes, run_rows, decisions, _diagnostics(plan, frame, runs)
    )


# --- Markdown ---------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", r"\|")


def _md_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def to_markdown(rep: TableReport) -> str:
    header = ["Method", *(f"{col} {part}" for col in rep.columns for part in PARTS)]
    body = [_md_row([_md(name), *(f"**{_md(c.text)}**" if c.bold else _md(c.text) for c in cells)]) for name, cells in rep.rows]
    lines = [
        f"# {_md(rep.title)}",
        "",
        *(f"- **{label}**: {_md(text)}" for label, text in rep.facts),
        "",
        _md_row(header),
        _md_row(["---", *["---:"] * (len(header) - 1)]),
        *body,
        "",
        rep.legend,
        "",
    ]
    if rep.notes:
        lines += ["## Notes", "", *(f"- {_md(row)}: {_md(note)}" for row, note in rep.notes), ""]
    header, diag = rep.diagnostics
    lines += [
        "## Diagnostic targets",
        "",
        DIAGNOSTICS_INTRO,
        "",
        _md_row(map(_md, header)),
        _md_row(["---", *["---:"] * (len(header) - 1)]),
        *(_md_row(map(_md, r)) for r in diag),
        "",
    ]
    lines += [
        "## Decisions",
        "",
        DECISIONS_INTRO,
        "",
        _md_row(DECISION_HEADER),
        _md_row(["---"] * len(DECISION_HEADER)),
        *(_md_row(map(_md, d)) for d in rep.decisions),
        "",
    ]
    lines += ["## MLflow runs", "", _md_row(RUN_HEADER), _md_row(["---"] * len(RUN_HEADER)), *(_md_row(map(_md, r)) for r in rep.runs)]
    return "\n".join(lines) + "\n"


# --- HTML -------------------------------------------------------------------------------------

STYLE = (
    "body{font-family:sans-serif;max-width:72em;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
    "th,td{padding:.2em .6em;border-bottom:1px solid #ccc}td.n{text-align:right}"
)


def _page(title: str, body: list[str]) -> str:
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
    ]
    return "\n".join([*head, *body, "</body>", "</html>"]) + "\n"


def _td(cell: Cell) -> str:
    text = html.escape(cell.text)
    return f'<td class="n">{f"<b>{text}</b>" if cell.bold else text}</td>'


def to_html(rep: TableReport) -> str:
    esc = html.escape
    groups = "".join(f'<th colspan="{len(PARTS)}">{esc(col)}</th>' for col in rep.columns)
    parts = "".join(f"<th>{p}</th>" for _ in rep.columns for p in PARTS)
    body = [f"<tr><th>{esc(name)}</th>{''.join(_td(c) for c in cells)}</tr>" for name, cells in rep.rows]
    runs = [f"<tr>{''.join(f'<td>{esc(x)}</td>' for x in r)}</tr>" for r in rep.runs]
    decisions = [f"<tr>{''.join(f'<td>{esc(x)}</td>' for x in d)}</tr>" for d in rep.decisions]
    header, diag = rep.diagnostics
    diagnostics = [f"<tr><th>{esc(r[0])}</th>{''.join(_td(Cell(x)) for x in r[1:])}</tr>" for r in diag]
    notes = ["<h2>Notes</h2>", "<ul>", *(f"<li>{esc(row)}: {esc(note)}</li>" for row, note in rep.notes), "</ul>"] if rep.notes else []
    return _page(
        rep.title,
        [
            f"<h1>{esc(rep.title)}</h1>",
            "<ul>",
            *(f"<li><b>{esc(label)}</b>: {esc(text)}</li>" for label, text in rep.facts),
            "</ul>",
            "<table>",
            f'<tr><th rowspan="2">Method</th>{groups}</tr>',
            f"<tr>{parts}</tr>",
            *body,
            "</table>",
            f"<p>{esc(rep.legend)}</p>",
            *notes,
            "<h2>Diagnostic targets</h2>",
            f"<p>{esc(DIAGNOSTICS_INTRO)}</p>",
            "<table>",
            f"<tr>{''.join(f'<th>{esc(h)}</th>' for h in header)}</tr>",
            *diagnostics,
            "</table>",
            "<h2>Decisions</h2>",
            f"<p>{esc(DECISIONS_INTRO)}</p>",
            "<table>",
            f"<tr>{''.join(f'<th>{esc(h)}</th>' for h in DECISION_HEADER)}</tr>",
            *decisions,
            "</table>",
            "<h2>MLflow runs</h2>",
            "<table>",
            f"<tr>{''.join(f'<th>{esc(h)}</th>' for h in RUN_HEADER)}</tr>",
            *runs,
            "</table>",
        ],
    )


# --- LaTeX (booktabs) -------------------------------------------------------------------------

_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "->": r"$\rightarrow$",
    "±": r"$\pm$",
    "–": "--",
}
_TEX_RE = re.compile("->|" + "|".join(re.escape(k) for k in _TEX if k != "->"))


def tex_escape(text: str) -> str:
    return _TEX_RE.sub(lambda m: _TEX[m.group()], text)


def _tex_cell(cell: Cell) -> str:
    return rf"\textbf{{{tex_escape(cell.text)}}}" if cell.bold else tex_escape(cell.text)


def _tex_row(cells) -> str:
    return " & ".join(cells) + r" \\"


def to_latex(rep: TableReport) -> str:
    k, n = len(PARTS), len(rep.columns)
    groups = _tex_row(["", *(rf"\multicolumn{{{k}}}{{c}}{{{tex_escape(c)}}}" for c in rep.columns)])
    rules = "".join(rf"\cmidrule(lr){{{2 + i * k}-{1 + (i + 1) * k}}}" for i in range(n))
    body = [_tex_row([tex_escape(name), *map(_tex_cell, cells)]) for name, cells in rep.rows]
    runs = [_tex_row([*map(tex_escape, r[:4]), *(rf"\texttt{{{tex_escape(x)}}}" for x in r[4:])]) for r in rep.runs]
    header, diag = rep.diagnostics
    diagnostics = [_tex_row(map(tex_escape, r)) for r in diag]
    decisions = [
        rf"\item[{tex_escape(name)}] {tex_escape(value)} ({tex_escape(holder)}; used in {tex_escape(where)}): {tex_escape(why)}"
        for name, value, holder, where, why in rep.decisions
    ]
    notes = (
        [
            r"\subsection*{Notes}",
            r"\begin{itemize}",
            *(rf"\item {tex_escape(row)}: {tex_escape(note)}" for row, note in rep.notes),
            r"\end{itemize}",
        ]
        if rep.notes
        else []
    )
    return (
        "\n".join(
            [
                r"\documentclass{article}",
                r"\usepackage{booktabs}",
                r"\usepackage[margin=2cm]{geometry}",
                r"\begin{document}",
                rf"\section*{{{tex_escape(rep.title)}}}",
                r"\begin{description}",
                *(rf"\item[{tex_escape(label)}] {tex_escape(text)}" for label, text in rep.facts),
                r"\end{description}",
                r"\begin{table}[ht]",
                r"\centering",
                rf"\begin{{tabular}}{{l{'r' * k * n}}}",
                r"\toprule",
                groups,
                rules,
                _tex_row(["Method", *(p for _ in rep.columns for p in PARTS)]),
                r"\midrule",
                *body,
                r"\bottomrule",
                r"\end{tabular}",
                rf"\caption{{{tex_escape(rep.legend)}}}",
                r"\end{table}",
                *notes,
                r"\subsection*{Diagnostic targets}",
                tex_escape(DIAGNOSTICS_INTRO),
                r"\par{\small",
                rf"\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}",
                r"\toprule",
                _tex_row(map(tex_escape, header)),
                r"\midrule",
                *diagnostics,
                r"\bottomrule",
                r"\end{tabular}}",
                r"\subsection*{Decisions}",
                tex_escape(DECISIONS_INTRO),
                r"\begin{description}",
                *decisions,
                r"\end{description}",
                r"\subsection*{MLflow runs}",
                r"{\scriptsize",
                rf"\begin{{tabular}}{{{'l' * len(RUN_HEADER)}}}",
                r"\toprule",
                _tex_row(map(tex_escape, RUN_HEADER)),
                r"\midrule",
                *runs,
                r"\bottomrule",
                r"\end{tabular}}",
                r"\end{document}",
            ]
        )
        + "\n"
    )


# --- Files and index --------------------------------------------------------------------------

RENDERERS = {"md": to_markdown, "html": to_html, "tex": to_latex}


def write_report(rep: TableReport, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, render in RENDERERS.items():
        path = out / f"{rep.stem}.{ext}"
        path.write_text(render(rep), encoding="utf-8", newline="\n")
        paths.append(path)
    return paths


def write_index(out: Path) -> list[Path]:
    """index.md and index.html: every table report in `out` (by preset, then table) and every figure under figures/."""
    stems = [(preset, name) for name in spec_names() for preset in sorted({p.name.split(".")[1] for p in out.glob(f"{name}.*.md")})]
    titles = {name: load_table(name).title for _, name in stems}
    figures = sorted(p.relative_to(out).as_posix() for p in (out / "figures").glob("*.png"))
    md, body = ["# Reproduction report", ""], []
    for preset in sorted({p for p, _ in stems}):
        md += [f"## Tables, preset {preset}", ""]
        body += [f"<h2>Tables, preset {html.escape(preset)}</h2>", "<ul>"]
        for name in [n for p, n in stems if p == preset]:
            stem = f"{name}.{preset}"
            md.append(f"- [{_md(titles[name])}]({stem}.md) ([HTML]({stem}.html), [LaTeX]({stem}.tex))")
            body.append(
                f'<li><a href="{stem}.html">{html.escape(titles[name])}</a> '
                f'(<a href="{stem}.md">Markdown</a>, <a href="{stem}.tex">LaTeX</a>)</li>'
            )
        md.append("")
        body.append("</ul>")
    none = "none yet (repro fig3, repro fig4 and repro curves write them)"
    md += ["## Figures", "", *(f"- [{f}]({f})" for f in figures)] if figures else ["## Figures", "", none]
    links = [f'<li><a href="{html.escape(f)}">{html.escape(f)}</a></li>' for f in figures]
    body += ["<h2>Figures</h2>", *(["<ul>", *links, "</ul>"] if figures else [f"<p>{none}</p>"])]
    paths = [out / "index.md", out / "index.html"]
    paths[0].write_text("\n".join(md) + "\n", encoding="utf-8", newline="\n")
    paths[1].write_text(_page("Reproduction report", ["<h1>Reproduction report</h1>", *body]), encoding="utf-8", newline="\n")
    return paths


class NoStudies(LookupError):
    """No table has a study for the preset."""


def run_report(base, out: Path, targets: list[str] | None = None, storage: str | None = None) -> tuple[list[Path], list[str]]:
    """Write the reports of every table with a study for base's preset and the index; returns the
    files written and the tables without a study. Raises NoStudies when no table has one."""
    found, absent = [], []
    for name in spec_names():
        plan, study = study_plan(name, base, targets, storage)
        (found if study is not None else absent).append((plan, study))
    if not found:
        where = storage_label(storage, "*")
        names = ", ".join(plan.study_name for plan, _ in absent)
        raise NoStudies(
            f"no table study for preset {base.preset!r} in {where} (looked for {names}); "
            f"run `repro table4a --preset {base.preset}` (or another table) first"
        )
    files = []
    for plan, study in found:
        frame = results_frame(plan, study)
        files += write_report(build_report(plan, frame, _run_data(frame), study.user_attrs["mlflow_parent_run_id"]), out)
    return files + write_index(out), [plan.study_name for plan, _ in absent]
