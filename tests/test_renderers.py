"""The reports and the MLflow UI in real renderers: the LaTeX through pdflatex (booktabs) and
pdftotext, the HTML and the UI in headless Chromium.

One tiny Table 4(a) study serves the module, trained by tests/fake_trainer.py with the cost metrics
and device tags that train_run logs added, so no model is trained. Without the tools the tests are
skipped, unless $REPRO_REQUIRE_TEX / $REPRO_REQUIRE_CHROMIUM is set (.ci/run sets both and installs
Debian's texlive-latex-recommended, poppler-utils and chromium): then they fail.
"""

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import fake_trainer
import numpy as np
import pytest
import torch
from fixtures_clip import save_random_open_clip
from PIL import Image
from test_servers import _free_port, _wait_until_up, serve  # noqa: F401 (a fixture)

from repro import tracking
from repro.cli import main
from repro.presets import preset_config
from repro.studies.table import run_tables
from repro.tracking import TRAIN_EXPERIMENT, experiment, use_store
from repro.train.cost import Meter, device_tags

RENDER_S = 120  # seconds one pdflatex or Chromium run may take on a loaded machine


def _measured_fake(cfg, parent_run_id=None, extra_tags=None):
    """fake_trainer.train, adding what train_run logs for the cost lines (repro.train.cost, the seed) to the runs it trains."""
    meter = Meter()
    result = fake_trainer.train(cfg, parent_run_id, extra_tags)
    if not result.reused:
        store = tracking.client()
        for key, value in meter.metrics({}).items():
            store.log_metric(result.run_id, key, value)
        for key, value in {"repro.seed": str(cfg.seed), **device_tags(torch.device("cpu"))}.items():
            store.set_tag(result.run_id, key, value)
    return result


@pytest.fixture(scope="module")
def study(tmp_path_factory, shared_cache):
    """`repro report` of a tiny Table 4(a) study: (its report folder, the study's run names)."""
    root = tmp_path_factory.mktemp("renderers")
    checkpoint = root / "synthclip-random.pt"
    save_random_open_clip("synthclip", checkpoint)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPRO_CACHE", str(shared_cache))
        mp.setenv("REPRO_MLRUNS", str(root / "mlruns"))
        mp.delenv("REPRO_TRACKING_URI", raising=False)
        [(plan, _)] = run_tables(["table4a"], preset_config("tiny", {"clip_checkpoint": str(checkpoint)}), trainer=_measured_fake)
        out = root / "reports"
        # The report's PCK figures read through MlflowClient.load_table, which searches MLflow's global
        # store (mlflow.search_runs), not the client's: point it at this one, as a real training does.
        use_store()
        assert main(["report", "--preset", "tiny", "--clip-checkpoint", str(checkpoint), "--out", str(out)]) == 0
        runs = tracking.client().search_runs([experiment(TRAIN_EXPERIMENT)], f"tags.study = '{plan.study_name}'")
        yield out, sorted(r.info.run_name for r in runs)


def _table_rows(out: Path) -> list[list[str]]:
    """The main table of table4a.tiny.md, bold marks removed: [row name, cells...] per row."""
    lines = (out / "table4a.tiny.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Method |")) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().strip("*") for c in line.strip("|").split(" | ")])
    return rows


def _tool(name: str, env: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        reason = f"{name} not found; .ci/run installs Debian's {package}"
        if os.environ.get(env):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=RENDER_S)
    assert done.returncode == 0, f"{cmd[0]} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _chromium(tmp_path: Path, *args: str) -> str:
    """Headless Chromium on a fresh profile; its stdout. No sandbox: Chromium's refuses to run as root (CI)."""
    chromium = _tool("chromium", "REPRO_REQUIRE_CHROMIUM", "chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"]
    return _run([chromium, *flags, *args], tmp_path).stdout


class _Text(HTMLParser):
    """A page's visible text (one string, whitespace collapsed) and its links."""

    def __init__(self, page: str):
        super().__init__()
        self.parts, self.links, self._hidden = [], [], 0
        self.feed(page)
        self.text = " ".join(" ".join(self.parts).split())

    def handle_starttag(self, tag, attrs):
        self._hidden += tag in ("script", "style", "title")
        if tag == "a":
            self.links.append(dict(attrs)["href"])

    def handle_endtag(self, tag):
        self._hidden -= tag in ("script", "style", "title")

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


@pytest.mark.slow
def test_the_latex_table_compiles_and_its_pdf_holds_the_numbers(study, tmp_path):
    pdflatex = _tool("pdflatex", "REPRO_REQUIRE_TEX", "texlive-latex-recommended")
    pdftotext = _tool("pdftotext", "REPRO_REQUIRE_TEX", "poppler-utils")
    out, _ = study
    shutil.copy(out / "table4a.tiny.tex", tmp_path)  # a whole document (booktabs, geometry)
    _run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "table4a.tiny.tex"], tmp_path)
    text = _run([pdftotext, "-layout", "table4a.tiny.pdf", "-"], tmp_path).stdout
    rows = _table_rows(out)
    assert len(rows) == 6
    for row in rows:  # each row on one line of the PDF, its cells in order
        found = re.search(r"\s+".join(re.escape(c).replace(r"\ ", r"\s+") for c in row), text)
        assert found, f"row {row[0]!r}: {row[1:]} are not on one line of the PDF (cut off at the page's edge?)"
    assert "Compute" in text and "Peak memory" in text


@pytest.mark.slow
def test_the_html_reports_render_in_chromium(study, tmp_path):
    out, _ = study
    for page in ("index.html", "table4a.tiny.html"):
        shot = tmp_path / f"{page}.png"
        _chromium(tmp_path, "--hide-scrollbars", "--window-size=1280,900", f"--screenshot={shot}", (out / page).as_uri())
        pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
        assert pixels.var() > 0 and pixels.min() < 128, f"{page}: the screenshot is blank"  # dark text on white
        dom = _Text(_chromium(tmp_path, "--dump-dom", (out / page).as_uri()))
        assert dom.links, page
        for link in dom.links:  # a file beside the page, or a run's page in the MLflow UI
            run = re.fullmatch(r"http://[^/]+/#/experiments/\d+/runs/(\w+)", link)
            assert (run.group(1) in dom.text) if run else (out / link).is_file(), f"{page}: {link}"
        if page == "index.html":
            assert {"table4a.tiny.html", "table4a.tiny.md", "table4a.tiny.tex"} <= set(dom.links)
            assert "Table 4(a): ratio r of image to text features (EPE mm)" in dom.text
        else:
            for row in _table_rows(out):
                assert " ".join(row) in dom.text, row


@pytest.mark.slow
def test_repro_ui_shows_the_studys_runs_in_chromium(study, serve, tmp_path, monkeypatch):  # noqa: F811 (the fixture)
    out, names = study
    _tool("chromium", "REPRO_REQUIRE_CHROMIUM", "chromium")
    monkeypatch.setenv("REPRO_MLRUNS", str(out.parent / "mlruns"))
    port = _free_port()
    proc = serve("ui", "--port", str(port))
    _wait_until_up(proc, f"http://127.0.0.1:{port}/health", tmp_path)
    url = re.search(r"MLflow UI on (\S+)", (tmp_path / "server-0.log").read_text()).group(1)  # the page `repro ui` names
    # A JavaScript app: Chromium runs it for 15 s of virtual time (its fetches included) before dumping the DOM.
    page = _Text(_chromium(tmp_path, "--virtual-time-budget=15000", "--window-size=1600,1000", "--dump-dom", url))
    assert "Runs" in page.text and len(names) == 6
    assert [n for n in names if n not in page.text] == []
