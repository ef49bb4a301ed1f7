"""`repro report`: each table's study as a paper-style table in Markdown, HTML and LaTeX, plus an index.

Per table with a study for the preset: <table>.<preset>.md/.html/.tex. Per paper column, "ours" is
mean ± std (n) over the finished seeds (no std for one seed), then the paper's value and ours - paper;
the best of ours per column among rows with every seed finished is bold; a cell without a finished run
reads "missing", never 0. Each report names its data, CLIP, preset, the git commits of its runs and, per
cell, the config hashes and MLflow run ids it was read from, every run id a link to its page in the
MLflow UI (Markdown and HTML). Per column, each row's difference from the table's Baseline with its
95% paired bootstrap interval, under the table what its seeds can resolve, the paper's claims on the table with a verdict
(repro.report.claims), and two figures beside the files: <stem>.pck.png (PCK curves per row) and
<stem>.forest.png (the differences with their intervals). index.md/.html link every table report
(of any preset) and every PNG under figures/ in the out folder.

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
from repro.report.claims import (
    BASELINE,
    CLAIM_HEADER,
    CLAIMS_INTRO,
    DELTA_HEADER,
    VERDICT_RULE,
    Scores,
    TableStats,
    claim_rows,
    delta_legend,
    interval_text,
    load_claims,
    power_lines,
    runs_by_config,
    table_statistics,
)
from repro.report.cost import cost_facts
from repro.report.curves import plot_table_pck, table_pck
from repro.report.figures import save_png
from repro.report.forest import plot_forest
from repro.report.statistics import Difference
from repro.studies.results import results_frame, world_note
from repro.studies.runner import find_study, storage_label
from repro.studies.spec import load_table, spec_names
from repro.studies.table import TablePlan
from repro.tracking import client

MISSING = "missing"
NOT_REPRODUCED = "not reproduced"
DASH = "–"
PARTS = ("ours", "paper", "diff", DELTA_HEADER)
RUN_HEADER = ("Row", "Column", "Target", "Status", "Config hashes", "MLflow run ids")
MEAN_POSE = "Mean training pose"  # the constant floor: always predicting the training split's mean pose
DIAGNOSTICS_INTRO = (
    "EPE mm of the same runs on the targets and their diagnostic targets: 'style only' shows the target's styles "
    "with the source's viewpoints and camera, 'view only' the reverse; the last row always predicts the mean training pose."
)
DECISION_HEADER = ("Decision", "Value in these runs", "Held by", "Used in", "Why")
DECISIONS_INTRO = "Where the paper is silent, these runs used the following (generated from repro.decisions)."
POWER_INTRO = "What the seeds can resolve, per column:"
RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")  # an MLflow run id, linked where the report names one


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
    delta_legend: str  # what the Δ column holds and where its Baseline comes from
    power: tuple[str, ...]  # per column: the spread between seeds and what the seeds resolve
    claims: tuple[tuple[str, ...], ...]  # CLAIM_HEADER per claim of the paper on this table
    figures: tuple[tuple[str, str], ...]  # (caption, file name beside the report)
    links: dict[str, str]  # run id -> its page in the MLflow UI


def study_plan(name: str, base, targets: list[str] | None = None, storage: str | None = None) -> tuple[TablePlan, object | None]:
    """The table's plan and its study (None when never run), with the seeds of the study's grid when
    it last ran (`repro table4a --seeds 3` is reported over 3 seeds): the distinct seeds of its cells."""
    plan = TablePlan.from_args(name, base, targets=targets)
    study = find_study(plan, storage)
    seeds = {key.rpartition(" | seed ")[2] for key in study.user_attrs.get("cells", [])} if study is not None else set()
    if seeds and len(seeds) != plan.seeds:
        plan = TablePlan.from_args(name, base, len(seeds), targets)
    return plan, study


def table_studies(base, targets: list[str] | None = None, storage: str | None = None, skip: tuple[str, ...] = ()) -> list:
    """(plan, study or None) of every table but `skip`, for base's preset and flags."""
    return [study_plan(name, base, targets, storage) for name in spec_names() if name not in skip]


def earlier_studies(base, skip: list[str], targets: list[str] | None = None, storage: str | None = None) -> list:
    """The studies of every table but `skip` that have run for base's preset and flags: where a table
    without a Baseline row finds the Baseline's runs when Table 4(a) ran in an earlier command."""
    return [study for _, study in table_studies(base, targets, storage, tuple(skip)) if study is not None]


def _ids(joined: str) -> list[str]:
    return [x for x in joined.split(",") if x]


def _runs(ids) -> dict[str, object]:
    """The MLflow runs (info, data) of the ids, by run id."""
    store = client()
    return {i: store.get_run(i) for i in sorted(set(ids))}


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
    diverged = f", {r['diverged']} diverged" if r["diverged"] else ""
    if r["n"] == 0:
        return Cell(f"{MISSING} ({r['diverged']} diverged)" if diverged else MISSING)
    n, mean = int(r["n"]), r["mean"]
    count = (f"n={n}" if n == seeds else f"n={n} of {seeds}") + diverged
    return Cell(_mean_text(mean, r["std"], n, count), bold=n == seeds and round(mean, 2) == best)


def _number(value: float, fmt: str) -> str:
    return format(value, fmt) if math.isfinite(value) else DASH


def build_report(
    plan: TablePlan,
    frame,
    runs: dict[str, object],
    parent_run_id: str,
    stats: TableStats,
    figures: tuple[tuple[str, str], ...],
    links: dict[str, str],
) -> TableReport:
    """`frame` is results_frame's, `runs` the MLflow data of its runs by run id, `parent_run_id` the
    study's MLflow run, `stats` table_statistics', `figures` (caption, file) beside the report,
    `links` every run id's page in the MLflow UI."""
    tags = {i: data.tags for i, data in runs.items()}
    higher = plan.spec.metric.startswith("auc")
    pick = max if higher else min  # over the rounded means, so that equal printed values are all bold
    # Only rows with every seed's run: a mean over the seeds that did not diverge is biased to the good ones.
    complete = frame.loc[frame["n"] == plan.seeds, "mean"]
    best = {col: pick(round(v, 2) for v in means) for col, means in complete.groupby(level="column")}
    rows = []
    for row in dict.fromkeys(frame.index.get_level_values("row")):
        cells = []
        for col in plan.targets:
            r = frame.loc[(row, col)]
            cells += [_ours(r, plan.seeds, best.get(col, math.nan)), Cell(_number(r["paper"], ".2f")), Cell(_number(r["diff"], "+.2f"))]
            cells.append(Cell(interval_text(stats.deltas[row, col]) if (row, col) in stats.deltas else DASH))
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
        *cost_facts(runs),
    )
    legend = (
        f"ours: mean ± std (n) of {plan.spec.metric} over the n seeds with a finished run (no std for n = 1; "
        f"d diverged: seeds whose training diverged, not in the mean); "
        f"paper: the paper's value; diff: ours - paper; bold: the best of ours per column ({'highest' if higher else 'lowest'}) "
        f"among rows with all {plan.seeds} seed(s) finished; "
        f"{MISSING}: no finished run; {NOT_REPRODUCED}: another method, the paper's number only."
    )
    notes = tuple((row, note) for row, note in frame["note"].groupby(level="row", sort=False).first().items() if note)
    stem = f"{plan.spec.name}.{plan.base.preset}"
    configs = [cfg for row in plan.spec.rows if row.reproduced for seed in plan.seed_values() for cfg in plan.configs(row, seed).values()]
    decisions = tuple(tuple(d[k] for k in ("decision", "value", "holder", "where", "why")) for d in decision_rows(configs))
    return TableReport(
        stem,
        plan.spec.title,
        facts,
        tuple(plan.targets),
        tuple(rows),
        legend,
        notes,
        run_rows,
        decisions,
        _diagnostics(plan, frame, runs),
        delta_legend(stats),
        tuple(power_lines(stats)),
        tuple(claim_rows(stats)),
        figures,
        links,
    )


# --- Markdown ---------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", r"\|")


def _md_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_linked(text: str, links: dict[str, str]) -> str:
    """Markdown text with every run id of `links` as a link to its MLflow page."""
    return RUN_ID.sub(lambda m: f"[{m.group()}]({links[m.group()]})" if m.group() in links else m.group(), _md(text))


def _md_statistics(rep: TableReport) -> list[str]:
    """The Δ legend and power lines, then the Claims and Figures sections."""
    lines = [_md_linked(rep.delta_legend, rep.links), "", POWER_INTRO, "", *(f"- {_md(line)}" for line in rep.power), ""]
    if rep.claims:
        lines += ["## Claims", "", CLAIMS_INTRO, "", _md_row(CLAIM_HEADER), _md_row(["---"] * 3 + ["---:"] * 4 + ["---"])]
        lines += [*(_md_row(map(_md, c)) for c in rep.claims), "", VERDICT_RULE, ""]
    if rep.figures:
        lines += ["## Figures", "", *(f"- [{_md(caption)}]({name})" for caption, name in rep.figures), ""]
    return lines


def to_markdown(rep: TableReport) -> str:
    header = ["Method", *(f"{col} {part}" for col in rep.columns for part in PARTS)]
    body = [_md_row([_md(name), *(f"**{_md(c.text)}**" if c.bold else _md(c.text) for c in cells)]) for name, cells in rep.rows]
    lines = [
        f"# {_md(rep.title)}",
        "",
        *(f"- **{label}**: {_md_linked(text, rep.links)}" for label, text in rep.facts),
        "",
        _md_row(header),
        _md_row(["---", *["---:"] * (len(header) - 1)]),
        *body,
        "",
        rep.legend,
        "",
        *_md_statistics(rep),
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
    runs = (_md_row([*map(_md, r[:-1]), _md_linked(r[-1], rep.links)]) for r in rep.runs)
    lines += ["## MLflow runs", "", _md_row(RUN_HEADER), _md_row(["---"] * len(RUN_HEADER)), *runs]
    return "\n".join(lines) + "\n"


# --- HTML -------------------------------------------------------------------------------------

STYLE = (
    "body{font-family:sans-serif;max-width:72em;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
    "th,td{padding:.2em .6em;border-bottom:1px solid #ccc}td.n{text-align:right}img{max-width:100%}"
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


def _html_linked(text: str, links: dict[str, str]) -> str:
    """Escaped text with every run id of `links` as a link to its MLflow page."""

    def linked(m: re.Match) -> str:
        return f'<a href="{html.escape(links[m.group()])}">{m.group()}</a>' if m.group() in links else m.group()

    return RUN_ID.sub(linked, html.escape(text))


def _html_statistics(rep: TableReport) -> list[str]:
    """The Δ legend and power lines, then the Claims and Figures sections."""
    esc = html.escape
    body = [
        f"<p>{_html_linked(rep.delta_legend, rep.links)}</p>",
        f"<p>{POWER_INTRO}</p>",
        "<ul>",
        *(f"<li>{esc(x)}</li>" for x in rep.power),
        "</ul>",
    ]
    if rep.claims:
        claims = [
            f"<tr>{''.join(f'<td>{esc(x)}</td>' for x in c[:3])}{''.join(_td(Cell(x)) for x in c[3:7])}<td>{esc(c[7])}</td></tr>"
            for c in rep.claims
        ]
        body += [
            "<h2>Claims</h2>",
            f"<p>{esc(CLAIMS_INTRO)}</p>",
            "<table>",
            f"<tr>{''.join(f'<th>{esc(h)}</th>' for h in CLAIM_HEADER)}</tr>",
        ]
        body += [*claims, "</table>", f"<p>{esc(VERDICT_RULE)}</p>"]
    if rep.figures:
        body += ["<h2>Figures</h2>"]
        body += [
            f'<figure><img src="{esc(name)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'
            for caption, name in rep.figures
        ]
    return body


def to_html(rep: TableReport) -> str:
    esc = html.escape
    groups = "".join(f'<th colspan="{len(PARTS)}">{esc(col)}</th>' for col in rep.columns)
    parts = "".join(f"<th>{p}</th>" for _ in rep.columns for p in PARTS)
    body = [f"<tr><th>{esc(name)}</th>{''.join(_td(c) for c in cells)}</tr>" for name, cells in rep.rows]
    runs = [f"<tr>{''.join(f'<td>{esc(x)}</td>' for x in r[:-1])}<td>{_html_linked(r[-1], rep.links)}</td></tr>" for r in rep.runs]
    decisions = [f"<tr>{''.join(f'<td>{esc(x)}</td>' for x in d)}</tr>" for d in rep.decisions]
    header, diag = rep.diagnostics
    diagnostics = [f"<tr><th>{esc(r[0])}</th>{''.join(_td(Cell(x)) for x in r[1:])}</tr>" for r in diag]
    notes = ["<h2>Notes</h2>", "<ul>", *(f"<li>{esc(row)}: {esc(note)}</li>" for row, note in rep.notes), "</ul>"] if rep.notes else []
    return _page(
        rep.title,
        [
            f"<h1>{esc(rep.title)}</h1>",
            "<ul>",
            *(f"<li><b>{esc(label)}</b>: {_html_linked(text, rep.links)}</li>" for label, text in rep.facts),
            "</ul>",
            "<table>",
            f'<tr><th rowspan="2">Method</th>{groups}</tr>',
            f"<tr>{parts}</tr>",
            *body,
            "</table>",
            f"<p>{esc(rep.legend)}</p>",
            *_html_statistics(rep),
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
    "Δ": r"$\Delta$",
}
_TEX_RE = re.compile("->|" + "|".join(re.escape(k) for k in _TEX if k != "->"))


# Opens a box that scales a wider table down to the text width (closed by "}" after \end{tabular}).
FIT_WIDTH = r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%"


def tex_escape(text: str) -> str:
    return _TEX_RE.sub(lambda m: _TEX[m.group()], text)


_LONG_HEX = re.compile(r"[0-9a-f]{16,}")


def _tex_breakable(text: str) -> str:
    """tex_escape, with break points every 8 characters of a long hash (run ids, weights digests),
    which TeX would otherwise set past the right margin."""
    return _LONG_HEX.sub(lambda m: r"\allowbreak{}".join(m[0][i : i + 8] for i in range(0, len(m[0]), 8)), tex_escape(text))


def _tex_cell(cell: Cell) -> str:
    return rf"\textbf{{{tex_escape(cell.text)}}}" if cell.bold else tex_escape(cell.text)


def _tex_row(cells) -> str:
    return " & ".join(cells) + r" \\"


def _tex_statistics(rep: TableReport) -> list[str]:
    """The Δ legend and power lines, then the Claims section (the figures are PNGs beside the HTML)."""
    lines = [tex_escape(rep.delta_legend), "", tex_escape(POWER_INTRO), r"\begin{itemize}", *(rf"\item {tex_escape(x)}" for x in rep.power)]
    lines.append(r"\end{itemize}")
    if rep.claims:
        lines += [
            r"\subsection*{Claims}",
            tex_escape(CLAIMS_INTRO),
            r"\par{\scriptsize",
            FIT_WIDTH,
            r"\begin{tabular}{lllrrrrl}",
            r"\toprule",
        ]
        lines += [_tex_row(map(tex_escape, CLAIM_HEADER)), r"\midrule", *(_tex_row(map(tex_escape, c)) for c in rep.claims)]
        lines += [r"\bottomrule", r"\end{tabular}}}", "", tex_escape(VERDICT_RULE)]
    return lines


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
                r"\usepackage{graphicx}",
                r"\usepackage[margin=2cm]{geometry}",
                r"\begin{document}",
                rf"\section*{{{tex_escape(rep.title)}}}",
                r"\begin{description}",
                *(rf"\item[{tex_escape(label)}] {_tex_breakable(text)}" for label, text in rep.facts),
                r"\end{description}",
                r"\begin{table}[ht]",
                r"\centering",
                FIT_WIDTH,
                rf"\begin{{tabular}}{{l{'r' * k * n}}}",
                r"\toprule",
                groups,
                rules,
                _tex_row(["Method", *(tex_escape(p) for _ in rep.columns for p in PARTS)]),
                r"\midrule",
                *body,
                r"\bottomrule",
                r"\end{tabular}}",
                rf"\caption{{{tex_escape(rep.legend)}}}",
                r"\end{table}",
                *_tex_statistics(rep),
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


def write_figures(plan: TablePlan, frame, stats: TableStats, out: Path) -> list[tuple[str, Path]]:
    """The table's PCK curves per row and its forest plot of the differences from the Baseline, as
    PNGs beside the report: (caption, path) of each figure drawn (none without the data)."""
    stem = f"{plan.spec.name}.{plan.base.preset}"
    reproduced = [r for r in plan.spec.rows if r.reproduced]
    figures = []
    cells = {(r.name, col): _ids(frame.loc[(r.name, col), "run_ids"]) for r in reproduced for col in plan.targets}
    pck = table_pck(cells, plan.targets)
    if len(pck):
        caption = "3D PCK per row: the mean over the seeds, with a band of one standard deviation between seeds"
        figures.append((caption, save_png(plot_table_pck(pck, plan.spec.title), out / f"{stem}.pck.png")))
    if any(isinstance(d, Difference) for d in stats.deltas.values()):
        own = {r.name: r for r in reproduced}.get(BASELINE)
        paper = {
            (r.name, col): r.paper[col] - own.paper[col]
            for r in reproduced
            for col in plan.targets
            if own is not None and r is not own and col in r.paper and col in own.paper
        }
        caption = f"{DELTA_HEADER} per row and column; x: the paper's difference; filled: the interval excludes 0"
        rows = [r.name for r in reproduced]
        figures.append(
            (caption, save_png(plot_forest(plan.spec.title, rows, list(plan.targets), stats.deltas, paper), out / f"{stem}.forest.png"))
        )
    return figures


def run_report(base, out: Path, targets: list[str] | None = None, storage: str | None = None, *, ui: str) -> tuple[list[Path], list[str]]:
    """Write the reports of every table with a study for base's preset, their figures and the index;
    returns the files written and the tables without a study. Raises NoStudies when no table has one.
    `ui`: the MLflow UI the run ids link to."""
    found, absent = [], []
    for plan, study in table_studies(base, targets, storage):
        (found if study is not None else absent).append((plan, study))
    if not found:
        where = storage_label(storage, "*")
        names = ", ".join(plan.study_name for plan, _ in absent)
        raise NoStudies(
            f"no table study for preset {base.preset!r} in {where} (looked for {names}); "
            f"run `repro table4a --preset {base.preset}` (or another table) first"
        )
    files, claims, scores = [], load_claims(), Scores()
    index = runs_by_config([study for _, study in found])  # a table without a Baseline row reads another study's
    for plan, study in found:
        frame = results_frame(plan, study)
        stats = table_statistics(plan, frame, index, claims, scores)
        parent = study.user_attrs["mlflow_parent_run_id"]
        runs = _runs(i for joined in frame["run_ids"] for i in _ids(joined))
        named = {**runs, **_runs([*stats.reference_runs, parent])}
        links = {i: f"{ui}/#/experiments/{r.info.experiment_id}/runs/{i}" for i, r in named.items()}
        figures = write_figures(plan, frame, stats, out)
        shown = tuple((caption, path.name) for caption, path in figures)
        data = {i: r.data for i, r in runs.items()}
        files += write_report(build_report(plan, frame, data, parent, stats, shown, links), out) + [path for _, path in figures]
    return files + write_index(out), [plan.study_name for plan, _ in absent]
