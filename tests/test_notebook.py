"""notebooks/compare_runs.ipynb runs headless against two real tiny training runs and shows both."""

from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

from repro.presets import preset_config
from repro.train.run import train_run

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "compare_runs.ipynb"


def _output_text(nb) -> str:
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.extend(str(output.get("data", {}).get(kind, "")) for kind in ("text/plain", "text/html"))
    return "\n".join(texts)


def test_compare_runs_notebook_executes_and_shows_both_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPRO_MLRUNS", str(tmp_path / "mlruns"))
    monkeypatch.delenv("REPRO_TRACKING_URI", raising=False)
    monkeypatch.setenv("REPRO_PRESET", "tiny")
    # One torch thread: on two cores shared with other jobs, two spinning intra-op threads make a tiny
    # training several times slower (measured 5 s vs 20 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = [train_run(preset_config("tiny", {"mode": "baseline", "epochs": 1, "lr": lr})) for lr in (1e-4, 1e-3)]
    finally:
        torch.set_num_threads(threads)
    assert [r.status for r in runs] == ["FINISHED", "FINISHED"]

    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this process's environment (the variables above); any cell error raises here.
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = _output_text(nb)
    for run in runs:
        assert run.run_id in shown
    [comparison] = [c for c in nb.cells if c.cell_type == "code" and c.source.rstrip().endswith("\ncomparison")]
    assert "lr" in comparison.outputs[0]["data"]["text/plain"]  # the config field the two runs differ in
    assert sum("image/png" in o.get("data", {}) for cell in nb.cells for o in cell.get("outputs", [])) == 3
