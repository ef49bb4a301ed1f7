"""`repro report`: the paper-style tables' cells against the MLflow runs, the three formats agreeing,
byte-identical reruns, missing and partial cells, and the errors.

One real tiny `repro table4a` (shrunk as in test_studies) serves the module; the missing-cell test
trains with tests/fake_trainer.py.
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
from repro.report.tables import tex_escape
from repro.studies.runner import TRAIN_EXPERIMENT, run_study
from repro.studies.spec import load_table
from repro.studies.table import TablePlan
from repro.tracking import REPORTS_EXPERIMENT as EXPERIMENT
from repro.tracking import tracking_uri

TINY = ["--set", "epochs=1", "--set", "n_train=32", "--set", "n_val=16", "--set", "n_test=16", "--set", "batch_size=8"]


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


def _check_report(out: Path, plan: TablePlan) -> dict[str, dict[str, str]]:
    """Check every cell of out/<table>.<preset>.md against the MLflow runs its runs section names,
    and the HTML and LaTeX against the Markdown; returns {row: {column: ours cell}}."""
    client = MlflowClient(tracking_uri())
    md = (out / f"{plan.spec.name}.tiny.md").read_text()
    table, runs = _md_rows(md, "Method"), _md_rows(md, "Row")
    columns = list(plan.targets)
    assert [r[0] for r in table] == [r.name for r in plan.spec.rows]
    ours = {}
    for row, cells in zip(plan.spec.rows, table):
        ours[row.name] = {col: cells[1 + 3 * i] for i, col in enumerate(columns)}
        for i, col in enumerate(columns):
            assert cells[2 + 3 * i] == f"{row.paper[col]:.2f}"  # the paper's value
    for row, col, target, status, hashes, ids in runs:
        cell = ours[row][col].strip("*")
        if status == "missing":
            assert cell == "missing" and ids == "–"
            continue
        found = [client.get_run(i) for i in ids.split(", ")]
        values = [r.data.metrics[f"{target}/{plan.spec.metric}"] for r in found]
        assert {r.data.tags["config_hash"] for r in found} == set(hashes.split(", "))
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        count = f"n={len(values)}" if len(values) == plan.seeds else f"n={len(values)} of {plan.seeds}"
        assert cell == f"{statistics.fmean(values):.2f}{spread} ({count})"
        assert status == ("ok" if len(values) == plan.seeds else f"partial {len(values)}/{plan.seeds}")
    for col in columns:  # bold: exactly the cells with the lowest printed mean
        means = {row: float(c[col].strip("*").split()[0]) for row, c in ours.items() if c[col].strip("*")[0].isdigit()}
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
    assert {i for r in _md_rows(md, "Row") for i in r[5].split(", ")} == {r.info.run_id for r in study_runs}
    # The header names the data, CLIP (with the runs' weights digest), preset and the runs' commits.
    digests = {r.data.tags["clip_weights_digest"] for r in study_runs if "clip_weights_digest" in r.data.tags}
    commits = {r.data.tags["git_commit"] for r in study_runs}
    assert "synthetic hand world" in md and "- **Preset**: tiny" in md and len(digests) == 1 and digests.pop() in md
    assert all(c in md for c in commits) and str(mlruns) not in md and "synthclip with checkpoint synthclip-random.pt" in md
    assert {r.data.tags["mlflow.parentRunId"] for r in study_runs} == {re.search(r"MLflow run (\w+)\)", md).group(1)}
    # The diagnostic targets beside the paper's columns, and the mean-training-pose floor, from the runs' metrics.
    diag_md = md.split("## Diagnostic targets", 1)[1]
    header = _md_rows("| Method |" + diag_md.split("| Method |", 1)[1], "Method")
    lines = [line for line in diag_md.splitlines() if line.startswith("| Method |")]
    assert lines[0] == "| Method | STB | RHD | STB style only | STB view only | RHD style only | RHD view only |"
    by_row = {r[0]: r[1:] for r in header}
    assert list(by_row) == [r.name for r in plan.spec.rows if r.reproduced] + ["Mean training pose"]
    baseline = client.get_run(_md_rows(md, "Row")[0][5])
    assert by_row["Baseline"][2] == f"{baseline.data.metrics['synth-stb-style/epe_mm']:.2f} (n=1)"
    assert by_row["Mean training pose"][5] == f"{baseline.data.metrics['synth-rhd-view/epe_mean_pose_mm']:.2f}"
    # Every decision of the registry, with the value these runs used (read from their configs).
    decisions = {r[0]: r[1] for r in _md_rows(md, "Decision")}
    assert list(decisions) == [d.name for d in DECISIONS]
    assert decisions["heatmap sigma (heatmap pixels)"] == "1.0" and decisions["eq. 4 form"] == "paper"
    assert decisions["evaluation root"].startswith("palm centre") and decisions["weight init"] == "he"
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
    assert sorted(before) == ["index.html", "index.md", "table4a.tiny.html", "table4a.tiny.md", "table4a.tiny.tex"]


def test_missing_and_partial_cells(store, tmp_path):
    """Two seeds; lambda3=1 never trains (missing), lambda3=0.01's second seed fails (partial)."""
    plan = TablePlan.from_args("table5", preset_config("tiny"), seeds=2)
    broken = {plan.configs(plan.spec.row("lambda3=1"), s)["STB"].hash for s in (0, 1)}
    broken.add(plan.configs(plan.spec.row("lambda3=0.01"), 1)["STB"].hash)

    def trainer(cfg, parent_run_id=None, extra_tags=None):
        if cfg.hash in broken:
            raise RuntimeError("injected failure")
        return fake_trainer.train(cfg, parent_run_id, extra_tags)

    run_study(plan, trainer=trainer)
    out = tmp_path / "reports"
    assert main(["report", "--preset", "tiny", "--out", str(out)]) == 0  # the study's 2-seed grid is read from the study
    ours = _check_report(out, plan)
    assert ours["lambda3=1"] == {"STB": "missing", "RHD": "missing"}
    assert ours["lambda3=0.01"]["STB"].strip("*").endswith("(n=1 of 2)") and " ± " in ours["lambda3=0.1"]["STB"]
    assert '<td class="n">missing</td>' in (out / "table5.tiny.html").read_text()
    assert "0.00 (n=" not in (out / "table5.tiny.md").read_text()


def test_paper_only_rows(store, tmp_path):
    run_study(TablePlan.from_args("table3", preset_config("tiny")), trainer=fake_trainer.train)
    assert main(["report", "--preset", "tiny", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "table3.tiny.md").read_text()
    zhang = load_table("table3").row("Zhang et al.")
    assert f"| Zhang et al. | not reproduced | {zhang.paper['STB']:.2f} | – | not reproduced | {zhang.paper['RHD']:.2f} | – |" in md
    assert "| Zhang et al. |" not in md.split("## MLflow runs")[1] and zhang.note in md


def test_errors_name_the_preset_and_the_store(store, tmp_path, capsys):
    assert main(["report", "--preset", "tiny", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "preset 'tiny'" in err and str(store / "optuna") in err and "table4a-tiny" in err and not (tmp_path / "r").exists()
    assert main(["report", "--preset", "huge"]) == 2 and "unknown preset 'huge'" in capsys.readouterr().err


def test_tex_escape():
    assert tex_escape("epe_mm 50% & #1 {x} ± – a -> b") == r"epe\_mm 50\% \& \#1 \{x\} $\pm$ -- a $\rightarrow$ b"
