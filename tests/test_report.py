"""`repro report`: the paper-style tables' cells against the MLflow runs, the three formats agreeing,
byte-identical reruns, missing and partial cells, the differences from the Baseline, the claims and
what the seeds resolve, the figures, the run links, and the errors.

One real tiny `repro table4a` (shrunk as in test_studies) serves the module; the other tests train
with tests/fake_trainer.py.
"""

import re
import statistics
from pathlib import Path

import fake_trainer
import pytest
from fixtures_clip import save_random_open_clip
from mlflow.tracking import MlflowClient

from repro.cli import main
from repro.decisions import DECISIONS
from repro.presets import preset_config
from repro.report import claims as claims_module
from repro.report.claims import load_claims
from repro.report.tables import PARTS, tex_escape
from repro.studies.results import results_frame
from repro.studies.runner import TRAIN_EXPERIMENT, run_study
from repro.studies.spec import load_table
from repro.studies.table import TablePlan
from repro.tracking import REPORTS_EXPERIMENT as EXPERIMENT
from repro.tracking import tracking_uri

TINY = ["--set", "epochs=1", "--set", "n_train=32", "--set", "n_val=16", "--set", "n_test=16", "--set", "batch_size=8"]
UI = "http://127.0.0.1:5000"  # `repro ui`'s address: the default of the report's links
LINKED = re.compile(r"\[([0-9a-f]{32})\]\((\S+)/#/experiments/(\d+)/runs/([0-9a-f]{32})\)")


@pytest.fixture(scope="module")
def table4a(tmp_path_factory, shared_cache):
    """`repro table4a --preset tiny` once for the module: (its config flags, its store)."""
    root = tmp_path_factory.mktemp("report")
    checkpoint = root / "synthclip-random.pt"
    save_random_open_clip("synthclip", checkpoint)
    flags = ["--preset", "tiny", "--clip-checkpoint", str(checkpoint), *TINY]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPRO_CACHE", str(shared_cache))
        mp.setenv("REPRO_MLRUNS", str(root / "mlruns"))
        mp.delenv("REPRO_TRACKING_URI", raising=False)
        mp.delenv("REPRO_TRAINER", raising=False)
        assert main(["table4a", *flags]) == 0
        yield flags, root / "mlruns"


def _md_rows(text: str, first: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header starts with `first`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first} |"))
    body = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        body.append([c.strip() for c in line.strip("|").split(" | ")])
    return body


def _html_rows(text: str) -> list[list[str]]:
    """The main table's rows, with <b> as Markdown's ** so that they compare with the Markdown."""
    main_table = text.split("<h2>", 1)[0]  # the paper-style table comes before every section
    rows = re.findall(r'<tr><th>([^<]*)</th>((?:<td class="n">.*?</td>)+)</tr>', main_table)
    return [[name, *(re.sub(r"</?b>", "**", c) for c in re.findall(r'<td class="n">(.*?)</td>', cells))] for name, cells in rows]


def _tex_rows(text: str) -> list[list[str]]:
    body = text.split("\\midrule\n", 1)[1].split("\n\\bottomrule", 1)[0]
    return [[re.sub(r"\\textbf\{(.*)\}", r"**\1**", c) for c in line.removesuffix(" \\\\").split(" & ")] for line in body.splitlines()]


def _run_ids(cell: str, ui: str = UI) -> list[str]:
    """The run ids of a Markdown cell, each a link to its page in the MLflow UI at `ui`."""
    client = MlflowClient(tracking_uri())
    links = LINKED.findall(cell)
    for run_id, base, experiment_id, linked in links:
        assert base == ui and linked == run_id and client.get_run(run_id).info.experiment_id == experiment_id
    return [run_id for run_id, *_ in links]


def _check_report(out: Path, plan: TablePlan) -> dict[str, dict[str, str]]:
    """Check every cell of out/<table>.<preset>.md against the MLflow runs its runs section names (the
    difference from the Baseline too, where the table has one), and the HTML and LaTeX against the
    Markdown; returns {row: {column: ours cell}}."""
    client = MlflowClient(tracking_uri())
    md = (out / f"{plan.spec.name}.tiny.md").read_text()
    table, runs = _md_rows(md, "Method"), _md_rows(md, "Row")
    columns, k = list(plan.targets), len(PARTS)
    assert [r[0] for r in table] == [r.name for r in plan.spec.rows]
    ours, deltas, values_of = {}, {}, {}
    for row, cells in zip(plan.spec.rows, table):
        ours[row.name] = {col: cells[1 + k * i] for i, col in enumerate(columns)}
        deltas[row.name] = {col: cells[4 + k * i] for i, col in enumerate(columns)}
        for i, col in enumerate(columns):
            assert cells[2 + k * i] == f"{row.paper[col]:.2f}"  # the paper's value
    for row, col, target, status, hashes, ids in runs:
        cell = ours[row][col].strip("*")
        if status == "missing":
            assert cell == "missing" and ids == "–"
            continue
        found = [client.get_run(i) for i in _run_ids(ids)]
        values = [r.data.metrics[f"{target}/{plan.spec.metric}"] for r in found]
        values_of[row, col] = values
        assert {r.data.tags["config_hash"] for r in found} == set(hashes.split(", "))
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        status, _, diverged = status.partition(", ")  # "partial 1/2, 1 diverged": the cell says it too
        count = (f"n={len(values)}" if len(values) == plan.seeds else f"n={len(values)} of {plan.seeds}") + (
            f", {diverged}" if diverged else ""
        )
        assert cell == f"{statistics.fmean(values):.2f}{spread} ({count})"
        assert status == ("ok" if len(values) == plan.seeds else f"partial {len(values)}/{plan.seeds}")
    if "Baseline" in ours:  # the difference is that of the logged metrics: the bootstrap's EPE is hand3d's, as logged
        for (row, col), values in values_of.items():
            expected = statistics.fmean(values) - statistics.fmean(values_of["Baseline", col])
            assert deltas[row][col] == "reference" if row == "Baseline" else deltas[row][col].startswith(f"{expected:+.2f} [")
    for col in columns:  # bold: exactly the cells with the lowest printed mean among rows with every seed's run
        complete = {row: c[col].strip("*") for row, c in ours.items() if c[col].strip("*")[0].isdigit() and " of " not in c[col]}
        means = {row: float(text.split()[0]) for row, text in complete.items()}
        assert {row for row, c in ours.items() if c[col].startswith("**")} == {r for r, m in means.items() if m == min(means.values())}
    assert _html_rows((out / f"{plan.spec.name}.tiny.html").read_text()) == table
    assert _tex_rows((out / f"{plan.spec.name}.tiny.tex").read_text()) == [[tex_escape(c) for c in r] for r in table]
    return ours


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_report_cells_are_the_mlflow_runs(table4a, tmp_path, capsys, monkeypatch):
    flags, mlruns = table4a
    monkeypatch.setenv("REPRO_MLRUNS", str(mlruns))
    out = tmp_path / "reports"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "fig3_tsne.png").write_bytes(b"png")
    assert main(["report", *flags, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no study table5-tiny-" in printed and str(out / "table4a.tiny.tex") in printed

    plan = TablePlan.from_args(
        "table4a",
        preset_config("tiny", {"clip_checkpoint": flags[3], "epochs": 1, "n_train": 32, "n_val": 16, "n_test": 16, "batch_size": 8}),
    )
    ours = _check_report(out, plan)
    assert all(c[col].strip("*").endswith("(n=1)") for c in ours.values() for col in plan.targets)
    # Every training run of the study is listed, and nothing else.
    client = MlflowClient(tracking_uri())
    train = client.get_experiment_by_name(TRAIN_EXPERIMENT).experiment_id
    study_runs = client.search_runs([train], filter_string=f"tags.study = '{plan.study_name}'")
    md = (out / "table4a.tiny.md").read_text()
    assert {i for r in _md_rows(md, "Row") for i in _run_ids(r[5])} == {r.info.run_id for r in study_runs}
    # The header names the data, CLIP (with the runs' weights digest), preset and the runs' commits.
    digests = {r.data.tags["clip_weights_digest"] for r in study_runs if "clip_weights_digest" in r.data.tags}
    commits = {r.data.tags["git_commit"] for r in study_runs}
    assert "synthetic hand world" in md and "- **Preset**: tiny" in md and len(digests) == 1 and digests.pop() in md
    assert all(c in md for c in commits) and str(mlruns) not in md and "synthclip with checkpoint synthclip-random.pt" in md
    [parent] = _run_ids(re.search(r"MLflow run (\S+)\)", md).group(1))
    assert {r.data.tags["mlflow.parentRunId"] for r in study_runs} == {parent}
    assert f'<a href="{UI}/#/experiments/' in (out / "table4a.tiny.html").read_text()
    # One seed: every claim of Table 4(a) is listed with its difference, none gets a verdict.
    claims = _md_rows(md, "Claim")
    expected = [c for c in load_claims() if c.table == "table4a"]
    assert [(r[2], r[3], r[6], r[7]) for r in claims] == [(c.column, f"{c.paper_delta:+.2f}", "1 paired", "inconclusive") for c in expected]
    main_rows = {r[0]: r for r in _md_rows(md, "Method")}  # r = 0.6 against the Baseline: the table's Δ cells (checked above)
    assert (claims[0][4], claims[1][4]) == (main_rows["IE+TE r=0.6"][4], main_rows["IE+TE r=0.6"][8])
    # The diagnostic targets beside the paper's columns, and the mean-training-pose floor, from the runs' metrics.
    diag_md = md.split("## Diagnostic targets", 1)[1]
    header = _md_rows("| Method |" + diag_md.split("| Method |", 1)[1], "Method")
    lines = [line for line in diag_md.splitlines() if line.startswith("| Method |")]
    assert lines[0] == "| Method | STB | RHD | STB style only | STB view only | RHD style only | RHD view only |"
    by_row = {r[0]: r[1:] for r in header}
    assert list(by_row) == [r.name for r in plan.spec.rows if r.reproduced] + ["Mean training pose"]
    baseline = client.get_run(_run_ids(_md_rows(md, "Row")[0][5])[0])
    assert by_row["Baseline"][2] == f"{baseline.data.metrics['synth-stb-style/epe_mm']:.2f} (n=1)"
    assert by_row["Mean training pose"][5] == f"{baseline.data.metrics['synth-rhd-view/epe_mean_pose_mm']:.2f}"
    # Every decision of the registry, with the value these runs used (read from their configs).
    decisions = {r[0]: r[1] for r in _md_rows(md, "Decision")}
    assert list(decisions) == [d.name for d in DECISIONS]
    assert decisions["heatmap sigma (heatmap pixels)"] == "1.0" and decisions["eq. 4 form"] == "paper"
    assert decisions["evaluation root"].startswith("palm centre") and decisions["weight init"] == "he"
    assert decisions["lr warm-up (share of steps)"] == "0.02" and decisions["Adam implementation"] == "fused"
    assert "## Decisions" in md and "<h2>Decisions</h2>" in (out / "table4a.tiny.html").read_text()
    assert "\\subsection*{Decisions}" in (out / "table4a.tiny.tex").read_text()
    index = (out / "index.md").read_text()
    assert "(table4a.tiny.md)" in index and "(figures/fig3_tsne.png)" in index
    assert 'href="table4a.tiny.html"' in (out / "index.html").read_text()
    # Logged to MLflow: one run of "repro-reports" holding the files as written.
    reports = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id], filter_string="tags.preset = 'tiny'")
    assert len(reports) == 1 and reports[0].info.run_name == "report-tiny"
    logged = client.download_artifacts(reports[0].info.run_id, "table4a.tiny.md", str(tmp_path))
    assert Path(logged).read_bytes() == (out / "table4a.tiny.md").read_bytes()


def test_the_same_runs_give_the_same_bytes(table4a, tmp_path, monkeypatch):
    flags, mlruns = table4a
    monkeypatch.setenv("REPRO_MLRUNS", str(mlruns))
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["report", *flags, "--out", str(first)]) == 0
    before = _files(first)
    assert main(["report", *flags, "--out", str(first)]) == 0 and main(["report", *flags, "--out", str(second)]) == 0
    assert _files(first) == before == _files(second)
    reports = [f"table4a.tiny.{ext}" for ext in ("forest.png", "html", "md", "pck.png", "tex")]  # the figures are PNGs beside them
    assert sorted(before) == ["index.html", "index.md", *reports]


def test_missing_and_partial_cells(store, tmp_path):
    """Two seeds; lambda3=1 never trains (missing), lambda3=0.01's second seed diverges (partial, and
    the report says that its mean is over the seed that did not diverge). Its one seed, 39.5 mm, is the
    lowest mean, but bold goes to lambda3=0.1 (40.0 over both seeds): a survivor's mean is not the best."""
    plan = TablePlan.from_args("table5", preset_config("tiny"), seeds=2)
    broken = {plan.configs(plan.spec.row("lambda3=1"), s)["STB"].hash for s in (0, 1)}
    diverging = plan.configs(plan.spec.row("lambda3=0.01"), 1)["STB"].hash

    def trainer(cfg, parent_run_id=None, extra_tags=None):
        if cfg.hash in broken:
            raise RuntimeError("injected failure")
        if cfg.hash == diverging:
            return fake_trainer.FakeResult("no-run", cfg.hash, cfg.hash, "FAILED", {}, reused=False, diverged="loss became nan")
        return _leveled(cfg, parent_run_id, extra_tags)

    session = run_study(plan, trainer=trainer)
    out = tmp_path / "reports"
    assert main(["report", "--preset", "tiny", "--out", str(out)]) == 0  # the study's 2-seed grid is read from the study
    ours = _check_report(out, plan)
    assert ours["lambda3=1"] == {"STB": "missing", "RHD": "missing"}
    assert ours["lambda3=0.01"]["STB"] == "39.50 (n=1 of 2, 1 diverged)"
    assert ours["lambda3=0.1"]["STB"] == "**40.00 ± 0.71 (n=2)**"
    frame = results_frame(plan, session.study)
    assert frame.loc[("lambda3=0.01", "RHD"), "status"] == "partial 1/2, 1 diverged" and frame.loc[("lambda3=1", "STB"), "diverged"] == 0
    assert '<td class="n">missing</td>' in (out / "table5.tiny.html").read_text()
    assert "0.00 (n=" not in (out / "table5.tiny.md").read_text()


def _leveled(cfg, parent_run_id=None, extra_tags=None):
    """fake_trainer.train with the EPE set by the config: the Baseline 50 mm, IE+TE r = 0.6 40 mm at
    lambda3 = 0.1 or 0.01 and 30 mm at lambda3 = 1, every other config 45 mm; on both targets, seed 0
    half a millimetre below that and seed 1 above."""
    if cfg.mode == "baseline":
        level = 50.0
    elif cfg.mode == "iete" and cfg.ratio == 0.6:
        level = {1.0: 30.0, 0.1: 40.0, 0.01: 40.0}.get(cfg.lambda_con, 45.0)
    else:
        level = 45.0
    metrics = {"val/epe_mm": level, **{f"{t}/epe_mm": level + cfg.seed - 0.5 for t in cfg.targets}}
    return fake_trainer.train(cfg, parent_run_id, extra_tags, metrics=metrics)


def _interval(cell: str) -> tuple[float, float, float, bool]:
    """(difference, low, high, marked) of a '-1.23 [-2.50, +0.10]*' cell."""
    found = re.fullmatch(r"([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\](\*?)", cell)
    assert found, cell
    return float(found[1]), float(found[2]), float(found[3]), found[4] == "*"


def test_claims_differences_and_power_on_a_two_seed_study(store, tmp_path, capsys, monkeypatch):
    """Tables 4(a) and 5 over two seeds whose EPE the trainer sets: every verdict of the rule, Table 5's
    differences from Table 4(a)'s Baseline, the power lines by hand, the figures, and `repro table4a`'s print.
    Table 4(a)'s runs log trainer v6 and are paired by seed; Table 5's own runs log trainer v5, from
    before pairing, so its claims and most of its differences draw each cell's seeds on their own."""
    plans = {name: TablePlan.from_args(name, preset_config("tiny"), seeds=2) for name in ("table4a", "table5")}
    run_study(plans["table4a"], trainer=_leveled)
    monkeypatch.setattr(fake_trainer, "TRAINER_VERSION", claims_module.PAIRED_SINCE - 1)
    run_study(plans["table5"], trainer=_leveled)  # lambda3 = 0.1 is Table 4(a)'s IE+TE r=0.6: reused, v6
    out = tmp_path / "reports"
    assert main(["report", "--preset", "tiny", "--out", str(out)]) == 0
    _check_report(out, plans["table4a"])  # its differences against its own Baseline, from the runs' metrics
    _check_report(out, plans["table5"])

    # Claims: (paper Δ, ours Δ, P(improvement), verdict). The seeds move every config alike. Paired by
    # seed (Table 4(a)) the seeds' offsets cancel: a difference is the levels' +- the image draws,
    # widened 9.2x at two seeds (statistics.seed_inflation): 5 mm is resolved, 0 mm is not. Each
    # cell's seeds on their own (Table 5's claims), the seeds' 1 mm widened 9.2x is left too: 10 mm is
    # resolved, 5 mm is not. The draws come from the config hash: P(improvement) is pinned as found.
    expected = {
        ("IE+TE r=0.6 beats the Baseline (IE+TE r=0.6 vs Baseline)", "STB"): ("-1.14", -10.0, "1.00", "holds"),
        ("IE+TE r=0.6 beats the Baseline (IE+TE r=0.6 vs Baseline)", "RHD"): ("-1.02", -10.0, "1.00", "holds"),
        ("IE beats the Baseline (IE vs Baseline)", "STB"): ("-1.11", -5.0, "1.00", "holds"),
        ("IE+TE beats IE (IE+TE r=0.6 vs IE)", "STB"): ("-0.03", -5.0, "1.00", "holds"),
        ("IE+TE beats IE (IE+TE r=0.9 vs IE)", "RHD"): ("-1.55", 0.0, "0.52", "inconclusive"),
        ("r = 0.4 is worse than r = 0.6 (IE+TE r=0.6 vs IE+TE r=0.4)", "STB"): ("-12.28", -5.0, "1.00", "holds"),
        ("r = 0.4 is worse than r = 0.6 (IE+TE r=0.6 vs IE+TE r=0.4)", "RHD"): ("-15.67", -5.0, "1.00", "holds"),
        ("lambda3 = 0.1 beats 1 (lambda3=0.1 vs lambda3=1)", "STB"): ("-2.70", 10.0, "0.02", "reversed"),
        ("lambda3 = 0.1 beats 1 (lambda3=0.1 vs lambda3=1)", "RHD"): ("-5.80", 10.0, "0.02", "reversed"),
        ("lambda3 = 0.1 beats 0.01 (lambda3=0.1 vs lambda3=0.01)", "STB"): ("-0.08", 0.0, None, "inconclusive"),
        ("lambda3 = 0.1 beats 0.01 (lambda3=0.1 vs lambda3=0.01)", "RHD"): ("-3.58", 0.0, None, "inconclusive"),
    }
    found = {}
    for name in plans:
        md = (out / f"{name}.tiny.md").read_text()
        for claim, table, col, paper, ours, p, seeds, verdict in _md_rows(md, "Claim"):
            assert table == name and seeds == {"table4a": "2 paired", "table5": "2 vs 2"}[name]
            found[claim, col] = (paper, *_interval(ours), p, verdict)
        assert "## Claims" in md and "Verdict: holds when the interval excludes 0 on the paper's side" in md
        html, tex = (out / f"{name}.tiny.html").read_text(), (out / f"{name}.tiny.tex").read_text()
        assert "<h2>Claims</h2>" in html and "\\subsection*{Claims}" in tex
        for verdict in ("holds", "reversed", "inconclusive"):  # the same verdicts in every format
            count = sum(v[-1] == verdict for (c, _), v in found.items() if (name == "table5") == c.startswith("lambda3"))
            assert html.count(f"<td>{verdict}</td>") == count and tex.count(f"& {verdict} \\\\") == count
    assert set(found) == set(expected)
    for key, (paper, delta, p, verdict) in expected.items():
        got_paper, got, low, high, marked, got_p, got_verdict = found[key]
        assert (got_paper, got_verdict) == (paper, verdict) and got == pytest.approx(delta, abs=0.005)
        assert marked == (verdict != "inconclusive") and (low < 0 < high) == (verdict == "inconclusive")
        assert p is None or got_p == p, (key, got_p)

    # Table 5 has no Baseline row: its differences are from Table 4(a)'s Baseline runs (the same config).
    md5 = (out / "table5.tiny.md").read_text()
    deltas = {r[0]: (r[4], r[8]) for r in _md_rows(md5, "Method")}
    for row, delta in {"lambda3=1": -20.0, "lambda3=0.1": -10.0, "lambda3=0.01": -10.0, "lambda3=0.001": -5.0}.items():
        for cell in deltas[row]:  # marked when resolved: 10 mm and more at two seeds drawn on their own
            assert _interval(cell)[0] == pytest.approx(delta, abs=0.005) and _interval(cell)[3] == (abs(delta) >= 10)
    assert "here 2 of 8 differences are paired by seed" in md5  # lambda3 = 0.1 (v6) against the Baseline (v6)
    baseline_runs = _run_ids(_md_rows((out / "table4a.tiny.md").read_text(), "Row")[0][5])
    legend = next(line for line in md5.splitlines() if line.startswith("Δ vs Baseline [95% CI]:"))
    assert _run_ids(legend) == baseline_runs and f"of study {plans['table4a'].study_name}" in legend
    # Power, by hand: every config's seeds are 1 mm apart, sd 1 / sqrt(2) = 0.71; 2 seeds resolve
    # (t(.975, 2) + t(.8, 2)) 0.71 sqrt(2 / 2) = (4.303 + 1.061) 0.707 = 3.79 mm; the paper's 2.70 mm needs
    # 3 seeds ((2.776 + 0.941) 0.707 sqrt(2 / 3) = 2.15), its 5.80 mm 2.
    assert (
        "- STB: seeds of one config spread 0.71 mm (standard deviation, ddof = 1, pooled over 4 configs); 2 seeds per config resolve a difference of 3.79 mm"
        in md5
    )
    assert "lambda3 = 0.1 beats 1, -2.70 mm: 3 seeds" in md5 and "lambda3 = 0.1 beats 1, -5.80 mm: 2 seeds" in md5
    # Table 4(a), paired: every row's two per-seed differences from the Baseline are equal (the seeds
    # move all configs alike), so they spread 0 and two seeds resolve any difference.
    md4 = (out / "table4a.tiny.md").read_text()
    assert "here 10 of 10 differences are paired by seed" in md4
    assert (
        "- STB: a row's per-seed differences from the Baseline spread 0.00 mm (standard deviation, ddof = 1, pooled over 5 rows); "
        "2 seeds per config resolve a difference of 0.00 mm (two-sided paired t-test" in md4
    )
    assert "IE beats the Baseline, -1.11 mm: 2 seeds" in md4

    # Figures beside the HTML, shown in it, linked from the Markdown, logged with the report.
    client = MlflowClient(tracking_uri())
    [report] = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    logged = {a.path for a in client.list_artifacts(report.info.run_id)}
    for name in plans:
        for kind in ("pck", "forest"):
            png = f"{name}.tiny.{kind}.png"
            assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png in logged
            assert f'<img src="{png}"' in (out / f"{name}.tiny.html").read_text() and f"]({png})" in (out / f"{name}.tiny.md").read_text()

    # --ui: the links point at another MLflow UI.
    assert main(["report", "--preset", "tiny", "--out", str(tmp_path / "other"), "--ui", "http://mlflow.example:8080/"]) == 0
    runs_md = _md_rows((tmp_path / "other" / "table4a.tiny.md").read_text(), "Row")
    assert _run_ids(runs_md[0][5], ui="http://mlflow.example:8080") == baseline_runs

    # `repro table4a` (the main job's command) prints the same differences, the power lines and its claims.
    capsys.readouterr()
    monkeypatch.setenv("REPRO_TRAINER", "fake_trainer:train")  # every cell is done: nothing trains
    assert main(["table4a", "--preset", "tiny", "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "2 seed(s)" in printed and "Δ vs Baseline [95% CI]" in printed and "Power:" in printed
    lines = {line.strip() for line in printed.splitlines()}
    for (claim, col), (paper, delta, p, verdict) in expected.items():
        if not claim.startswith("lambda3"):
            [line] = [x for x in lines if x.startswith(f"{claim}, {col}: paper {paper}, ours ")]
            assert line.endswith(f"seeds 2 paired: {verdict}")
    [baseline] = [line for line in printed.splitlines() if line.startswith("Baseline ") and "STB" in line]
    assert baseline.split()[-1] == "reference"

    # `repro table5` alone, after Table 4(a) ran in an earlier command, finds the Baseline in its study.
    assert main(["table5", "--preset", "tiny", "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "no Baseline" not in printed and "the Baseline config on this table's base" in printed
    [line] = [x.strip() for x in printed.splitlines() if x.strip().startswith("lambda3=1 ") and "STB" in x]
    assert re.search(r"[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]", line), line


def test_claims_pair_seeds_only_within_one_pairing_trainer(store, monkeypatch):
    """Two cells are compared seed by seed only when their runs are the same seeds of one trainer
    version from PAIRED_SINCE on; otherwise each cell's seeds are drawn on their own, and the seeds'
    shared offsets (here 3 mm apart) widen the interval so that 5 mm is no longer resolved."""
    plan = TablePlan.from_args("table4a", preset_config("tiny"), seeds=3)
    runs = {}
    for row in ("Baseline", "IE", "IE+TE r=0.6"):
        for seed in range(3):
            cfg = plan.configs(plan.spec.row(row), seed)["STB"]
            version = 5 if row == "IE+TE r=0.6" else claims_module.PAIRED_SINCE  # a cell from before pairing
            monkeypatch.setattr(fake_trainer, "TRAINER_VERSION", version)
            level = {"Baseline": 50.0, "IE": 45.0, "IE+TE r=0.6": 45.0}[row] + 3 * seed
            runs.setdefault(row, []).append(fake_trainer.train(cfg, metrics={"synth-stb/epe_mm": level}).run_id)
    scores = claims_module.Scores()
    shuffled = [runs["Baseline"][i] for i in (2, 0, 1)]
    assert scores.seed_order(runs["IE"], shuffled) == [1, 2, 0]  # the reference's run of each row seed
    paired = scores.compare(runs["IE"], shuffled, "synth-stb")
    assert paired.by_seed and paired.delta == pytest.approx(-5.0) and paired.excludes_zero
    assert scores.seed_order(runs["IE"], runs["Baseline"][:2]) is None  # not the same seeds
    assert scores.seed_order(runs["IE+TE r=0.6"], runs["Baseline"]) is None  # trainer v5 does not pair
    apart = scores.compare(runs["IE+TE r=0.6"], runs["Baseline"], "synth-stb")
    assert not apart.by_seed and apart.delta == pytest.approx(-5.0) and apart.low < 0 < apart.high


def test_claims_file_errors_name_the_claim_and_the_field(store, tmp_path, monkeypatch, capsys):
    assert len(load_claims()) == 17  # the shipped file: every column a claim, each checked against its spec
    good = 'text = "IE beats the Baseline"\ntable = "table4a"\nrow = "IE"\nreference = "Baseline"\npaper = { STB = [35.00, 36.11] }\n'
    cases = {
        'table = "table9"': "claim 2: unknown table 'table9'; known: styles, table3, table4a",
        'row = "IE+TE r=0.7"': "claim 2: row: unknown row 'IE+TE r=0.7' of table4a (reproduced rows: Baseline, IE,",
        "paper = { LSP = [35.00, 36.11] }": "claim 2: paper: unknown column 'LSP' of table4a (columns: STB, RHD)",
        "paper = { STB = [34.00, 36.11] }": "claim 2: paper.STB: [34.0, 36.11] differs from the spec's paper values [35.0, 36.11] (studies/table4a.toml)",
        "paper = { RHD = [48.37, 48.36] }": "claim 2: paper.RHD: the paper's numbers (48.37 vs 48.36) do not say 'IE' beats 'Baseline'",
        'reference = "IE"': "claim 2: row and reference are both 'IE'",
    }
    path = tmp_path / "claims.toml"
    for change, message in cases.items():
        key = change.split(" = ")[0]
        bad = "\n".join(change if line.startswith(f"{key} = ") else line for line in good.splitlines())
        path.write_text(f"[[claims]]\n{good}\n[[claims]]\n{bad}\n")
        with pytest.raises(claims_module.ClaimsError) as err:
            load_claims(path)
        assert str(err.value).startswith(f"{path}: claim 2: ") and message in str(err.value)
    # Through the CLI: `repro table4a` checks the claims before it trains anything.
    path.write_text("[[claims]]\n" + good.replace('row = "IE"', 'row = "IE+TE r=0.7"'))
    monkeypatch.setattr(claims_module, "CLAIMS_FILE", path)
    monkeypatch.setenv("REPRO_TRAINER", "fake_trainer:train")
    assert main(["table4a", "--preset", "tiny"]) == 2
    assert capsys.readouterr().err.startswith(f"repro: error: {path}: claim 1: row: unknown row 'IE+TE r=0.7' of table4a")
    assert not (store / "optuna").exists()


def test_paper_only_rows(store, tmp_path):
    run_study(TablePlan.from_args("table3", preset_config("tiny")), trainer=fake_trainer.train)
    assert main(["report", "--preset", "tiny", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "table3.tiny.md").read_text()
    zhang = load_table("table3").row("Zhang et al.")
    assert f"| Zhang et al. | not reproduced | {zhang.paper['STB']:.2f} | – | – | not reproduced | {zhang.paper['RHD']:.2f} | – | – |" in md
    assert "| Ours | " in md and md.count("| no Baseline runs |") == 2 and "no Baseline: this table has no Baseline row" in md
    assert "| Zhang et al. |" not in md.split("## MLflow runs")[1] and zhang.note in md


def test_errors_name_the_preset_and_the_store(store, tmp_path, capsys):
    assert main(["report", "--preset", "tiny", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "preset 'tiny'" in err and str(store / "optuna") in err and "table4a-tiny" in err and not (tmp_path / "r").exists()
    assert main(["report", "--preset", "huge"]) == 2 and "unknown preset 'huge'" in capsys.readouterr().err


def test_tex_escape():
    assert tex_escape("epe_mm 50% & #1 {x} ± – a -> b") == r"epe\_mm 50\% \& \#1 \{x\} $\pm$ -- a $\rightarrow$ b"


def test_run_links_point_at_the_tracking_servers_ui(monkeypatch):
    from repro.cli.report import _ui_address

    monkeypatch.delenv("REPRO_TRACKING_URI", raising=False)
    assert _ui_address(None) == UI and _ui_address("http://mlflow.example:8080/") == "http://mlflow.example:8080"
    monkeypatch.setenv("REPRO_TRACKING_URI", "https://tracking.example/mlflow/")
    assert _ui_address(None) == "https://tracking.example/mlflow"


def test_long_hashes_in_latex_get_break_points():
    from repro.report.tables import _tex_breakable

    assert _tex_breakable("run e585270d4c7b4506 of seed_x") == r"run e585270d\allowbreak{}4c7b4506 of seed\_x"
    assert _tex_breakable("config 624d85e8") == "config 624d85e8"  # short hashes stay whole
