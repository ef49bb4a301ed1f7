"""The table studies: specs, `repro table4a` end to end, dedupe across tables, retry, resume after kill -9, tune.

Everything but the end-to-end test trains with tests/fake_trainer.py (same contract and MLflow
dedupe as train_run, no torch), so the study machinery is what these tests time.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import fake_trainer
import optuna
import pytest
import torch
from optuna.trial import TrialState

from repro import tracking
from repro.cli import main
from repro.cli import tables as tables_cli
from repro.config import ConfigError
from repro.data.errors import DataError
from repro.presets import preset_config
from repro.studies import locks, runner
from repro.studies.results import results_frame
from repro.studies.runner import CELLS_ARTIFACT, ROWS_TAG, TABLES_TAG, open_storage, run_study
from repro.studies.spec import SpecError, load_spec, load_table, spec_names
from repro.studies.table import TablePlan, run_tables
from repro.studies.tune import TunePlan, chosen, tune_frame
from repro.tracking import STUDIES_EXPERIMENT as EXPERIMENT
from repro.tracking import TRAIN_EXPERIMENT, experiment

TESTS = Path(__file__).parent
REPO = TESTS.parent


class CountingTrainer:
    """fake_trainer.train, counting the configs it really trained (not the reuses)."""

    def __init__(self, fail: dict[str, int] | None = None):
        self.trained = Counter()
        self.fail = dict(fail or {})  # config hash -> how many first calls fail

    def __call__(self, cfg, parent_run_id=None, extra_tags=None):
        if self.fail.get(cfg.hash, 0) > 0:
            self.fail[cfg.hash] -= 1
            raise RuntimeError(f"injected failure of {cfg.hash}")
        result = fake_trainer.train(cfg, parent_run_id, extra_tags)
        if not result.reused:
            self.trained[cfg.hash] += 1
        return result


def _study(plan):
    return optuna.load_study(study_name=plan.study_name, storage=open_storage(None, plan.journal))


def test_specs_give_21_cell_configs_and_14_distinct(store):
    base = preset_config("tiny")
    assert spec_names() == ["styles", "table3", "table4a", "table4b", "table5", "table6"]
    per_table, distinct = 0, set()
    for name in spec_names()[1:]:  # the paper's tables
        plan = TablePlan(load_table(name), base)
        for cell in plan.cells():
            hashes = {cfg.hash for cfg in plan.configs(plan.spec.row(cell.attrs["row"]), cell.attrs["seed"]).values()}
            per_table += len(hashes)
            distinct |= hashes
    assert (per_table, len(distinct)) == (21, 14)
    # "Ours" reads the r = 0.6 run for STB and the r = 0.9 run for RHD: the Table 4a rows' runs.
    t3, t4a = TablePlan(load_table("table3"), base), TablePlan(load_table("table4a"), base)
    ours = t3.configs(t3.spec.row("Ours"), 0)
    assert ours["STB"].hash == t4a.configs(t4a.spec.row("IE+TE r=0.6"), 0)["STB"].hash
    assert ours["RHD"].hash == t4a.configs(t4a.spec.row("IE+TE r=0.9"), 0)["RHD"].hash
    assert [c.key for c in t3.cells()] == ["Ours | seed 0"]  # Zhang et al. is paper-only: no cell
    # The seed is part of the hash; several seeds make seed-major cells.
    three = TablePlan(load_table("table4a"), base, seeds=3)
    assert len(three.cells()) == 18 and three.cells()[6].key == "Baseline | seed 1"
    assert three.configs(three.spec.row("IE"), 1)["STB"].hash != t4a.configs(t4a.spec.row("IE"), 0)["STB"].hash
    # A plan survives the trip to a worker process.
    again = TablePlan.from_json(three.to_json())
    assert again.study_name == three.study_name and three.study_name.startswith("table4a-tiny-")
    assert [c.key for c in again.cells()] == [c.key for c in three.cells()]
    one_epoch = TablePlan(load_table("table4a"), preset_config("tiny", {"epochs": 1})).study_name
    assert one_epoch.startswith("table4a-tiny-") and one_epoch != three.study_name
    # --targets maps the paper's columns, in order, to other datasets: another study.
    real = TablePlan.from_args("table4a", base, targets=["stb", "rhd"])
    assert real.targets == {"STB": "stb", "RHD": "rhd"}
    with pytest.raises(DataError, match="--data-root"):  # its name covers the real data's digests: it needs them
        real.study_name
    assert real.configs(real.spec.row("IE"), 0)["RHD"].targets == ("stb", "rhd")
    with pytest.raises(ConfigError, match="table4a has 2 columns"):
        TablePlan.from_args("table4a", base, targets=["stb"])


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[rows]]\nname = "A"\nset = { ratoi = 0.5 }\n', "rows[0] ('A').set: unknown config field 'ratoi'"),
        (
            '[[rows]]\nname = "A"\nset = { model.fusion = "product" }\n',
            "rows[0] ('A').set: config field 'model.fusion' = 'product': expected one of",
        ),
        ('[[rows]]\nname = "A"\npaper = { LSP = 3.0 }\n', "rows[0] ('A').paper: columns ['LSP'] are not in [columns]"),
        ('seeds = 0\n[[rows]]\nname = "A"\n', ".seeds: expected an integer >= 1"),
        (
            'seeds = { tiny = 1 }\n[[rows]]\nname = "A"\n',
            ".seeds: expected an integer >= 1 or a table of them by preset (default, tiny, small, paper)",
        ),
        ('seeds = { default = 3, huge = 2 }\n[[rows]]\nname = "A"\n', ".seeds: expected an integer >= 1 or a table of them by preset"),
        ('seeds = { default = 3, tiny = 0 }\n[[rows]]\nname = "A"\n', ".seeds: expected an integer >= 1 or a table of them by preset"),
        ('[[rows]]\nname = "A"\n[[rows]]\nname = "A"\n', ".rows: row names must be unique"),
        ('[[rows]]\nname = "A"\nreproduced = false\nset = { mode = "ie" }\n', "a paper-only row (reproduced = false) has no set"),
        ('[[rows]]\nname = "A"\nset = { epochs = 2.5 }\n', "rows[0] ('A').set: config field 'epochs'"),
        ("rows = [\n", "bad.toml: "),
    ],
)
def test_spec_errors_name_the_file_and_the_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert isinstance(err.value, ConfigError)  # the CLI prints it as an error, no traceback


def test_seeds_per_preset():
    """Three seeds per cell on small and paper, one on tiny (tests, smoke runs); --seeds wins."""
    for name in spec_names():
        assert [TablePlan(load_table(name), preset_config(p)).seeds for p in ("tiny", "small", "paper")] == [1, 3, 3]
    assert TablePlan(load_table("table4a"), preset_config("small"), seeds=5).seeds == 5
    assert list(TablePlan(load_table("table4a"), preset_config("small")).seed_values()) == [0, 1, 2]
    assert "claims" not in spec_names()  # studies/claims.toml is not a table


TINY_STUDY = {"epochs": 1, "n_train": 32, "n_val": 16, "n_test": 16, "batch_size": 8}


def _run_tiny_study(name: str, tmp_path, capsys, request) -> tuple[str, TablePlan]:
    """`repro <name>` on real tiny trainings (random-weights synthclip for the CLIP rows): (printed, plan)."""
    from fixtures_clip import save_random_open_clip

    checkpoint = tmp_path / "synthclip-random.pt"
    save_random_open_clip("synthclip", checkpoint)
    # One intra-op thread: on two shared cores, torch's spinning worker threads slow tiny batches tenfold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    argv = [
        name,
        "--preset",
        "tiny",
        "--clip-checkpoint",
        str(checkpoint),
        *(f for k, v in TINY_STUDY.items() for f in ("--set", f"{k}={v}")),
    ]
    assert main(argv) == 0
    return capsys.readouterr().out, TablePlan.from_args(name, preset_config("tiny", {"clip_checkpoint": str(checkpoint), **TINY_STUDY}))


@pytest.mark.slow
def test_repro_table4a_tiny_end_to_end(store, tmp_path, capsys, request):
    out, plan = _run_tiny_study("table4a", tmp_path, capsys, request)
    assert "Table 4(a)" in out and "IE+TE r=0.4" in out and "47.25" in out and "synthetic hand world" in out
    # One seed: the differences from the Baseline print, and every claim of Table 4(a), none with a verdict.
    assert "Δ vs Baseline [95% CI]" in out and "Claims:" in out and out.count("seeds 1 paired: inconclusive") == 7
    study = _study(plan)
    baseline = tracking.client().get_run(
        next(t for t in study.get_trials() if t.user_attrs["row"] == "Baseline").user_attrs["run_ids"]["STB"]
    )
    floor = baseline.data.metrics
    assert (
        f"Mean training pose (the constant floor, EPE mm): STB {floor['synth-stb/epe_mean_pose_mm']:.2f}, RHD {floor['synth-rhd/epe_mean_pose_mm']:.2f}"
        in out
    )
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.user_attrs["cell"] for t in trials) == sorted(c.key for c in plan.cells()) and len(trials) == 6
    client = tracking.client()
    parent = study.user_attrs["mlflow_parent_run_id"]
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED" and parent_run.data.tags["study"] == plan.study_name
    assert client.get_experiment(parent_run.info.experiment_id).name == EXPERIMENT
    for trial in trials:  # trial -> run ids; run -> study, trial number, parent
        run_id = trial.user_attrs["run_ids"]["STB"]
        assert trial.user_attrs["run_ids"]["RHD"] == run_id and trial.user_attrs["runs"][0]["run_id"] == run_id
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags["study"] == plan.study_name and run.data.tags["study_trial"] == str(trial.number)
        assert run.data.tags["config_hash"] == trial.user_attrs["config_hashes"]["STB"]
        assert trial.value == pytest.approx((run.data.metrics["synth-stb/epe_mm"] + run.data.metrics["synth-rhd/epe_mm"]) / 2)

    frame = results_frame(plan, study)
    assert len(frame) == 12 and (frame["n"] == 1).all() and (frame["status"] == "ok").all() and frame["mean"].notna().all()
    assert frame.loc[("IE+TE r=0.6", "RHD"), "paper"] == 47.34
    assert frame.loc[("IE", "STB"), "diff"] == pytest.approx(frame.loc[("IE", "STB"), "mean"] - 35.00)
    artifacts = [a.path for a in client.list_artifacts(parent, "results")]
    assert f"results/{plan.study_name}.csv" in artifacts


@pytest.mark.slow
def test_repro_styles_tiny_end_to_end(store, tmp_path, capsys, request):
    """The styles study through its command: all five rows, re-rendered positives included."""
    out, plan = _run_tiny_study("styles", tmp_path, capsys, request)
    assert "Styles" in out and "Re-rendered style (contrastive)" in out and "Re-rendered style (supervised)" in out
    trials = _study(plan).get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 5
    client = tracking.client()
    restyled = next(t for t in trials if t.user_attrs["row"] == "Re-rendered style (contrastive)")
    run = client.get_run(restyled.user_attrs["run_ids"]["STB"])
    assert run.data.params["augment"] == "restyle-contrastive" and "data_digest/restyled" in run.data.tags
    assert run.data.metrics["train/con"] != 0.0  # its positive is the re-rendered view
    supervised = client.get_run(
        next(t for t in trials if t.user_attrs["row"] == "Re-rendered style (supervised)").user_attrs["run_ids"]["STB"]
    )
    assert supervised.data.metrics["train/con"] == 0.0 and "data_digest/restyled" in supervised.data.tags


def test_dedupe_across_tables_and_repro_all_trains_16(store):
    trainer = CountingTrainer()
    base = preset_config("tiny")
    [(plan_a, session_a)] = run_tables(["table4a"], base, trainer=trainer)
    assert sum(trainer.trained.values()) == 6
    [(plan_b, session_b)] = run_tables(["table4b"], base, trainer=trainer)
    assert sum(trainer.trained.values()) == 9  # Baseline and IE+TE concat (= r 0.6) came from table4a

    study_b = _study(plan_b)
    baseline = next(t for t in study_b.get_trials() if t.user_attrs["cell"] == "Baseline | seed 0")
    assert baseline.state == TrialState.COMPLETE and baseline.user_attrs["reused"] == {"STB": True, "RHD": True}
    run = tracking.client().get_run(baseline.user_attrs["run_ids"]["STB"])
    assert run.data.tags["mlflow.parentRunId"] == session_a.parent_run_id  # keeps its own parent ...
    assert run.data.tags[f"reused_by/{plan_b.study_name}/{baseline.number}"] == "Baseline | seed 0"  # ... and records the reuse

    results = run_tables(spec_names(), base, trainer=trainer)  # `repro all`
    # 14 distinct configs of Tables 3-6 and the styles study's two re-rendered rows, each trained once
    assert len(trainer.trained) == 16 and set(trainer.trained.values()) == {1}
    for plan, session in results:
        assert (results_frame(plan, session.study).query("status != 'paper only'")["n"] == 1).all()
    frame = results_frame(*next((p, s.study) for p, s in results if p.spec.name == "table3"))
    zhang = frame.loc["Zhang et al."]
    assert list(zhang["status"]) == ["paper only"] * 2 and zhang["mean"].isna().all() and list(zhang["paper"]) == [36.1, 48.3]
    # One parent run per study, found again (not duplicated) when a study runs a second time.
    studies_exp = experiment(EXPERIMENT)
    parents = tracking.client().search_runs([studies_exp])
    assert sorted(r.data.tags["study"].rsplit("-", 1)[0] for r in parents) == sorted(f"{n}-tiny" for n in spec_names())


def test_tables_run_together_train_each_config_once_and_report_after_the_tables_they_read(store):
    trainer = CountingTrainer()
    reported = []

    def on_done(plan, session, settled):
        assert not runner.missing_cells(session)
        reported.append((plan.spec.name, sorted(s.plan.spec.name for s in settled)))

    results = run_tables(["table3", "table4a", "table4b"], preset_config("tiny"), trainer=trainer, on_done=on_done)
    # Ours (r 0.6 and 0.9), Table 4(a)'s other four rows, Table 4(b)'s three of its own: each trained once.
    assert len(trainer.trained) == 9 and set(trainer.trained.values()) == {1}
    for plan, session in results:
        assert not runner.missing_cells(session)
        assert tracking.client().get_run(session.parent_run_id).info.status == "FINISHED"
    # Table 3 settled first (its cell is claimed first) but reads Table 4(a)'s and 4(b)'s Baseline:
    # it reports once they have settled, with their studies to read.
    assert reported == [
        ("table4a", ["table3", "table4a"]),
        ("table3", ["table3", "table4a", "table4b"]),
        ("table4b", ["table3", "table4a", "table4b"]),
    ]


def test_runs_are_named_by_their_cell_and_list_the_tables_and_rows_they_serve(store, tmp_path):
    base = preset_config("tiny")
    run_tables(["table4a"], base, trainer=fake_trainer.train)
    [(plan_b, session_b)] = run_tables(["table4b"], base, trainer=fake_trainer.train)
    mlflow_client = tracking.client()
    runs = {r.info.run_name: r for r in mlflow_client.search_runs([experiment(TRAIN_EXPERIMENT)])}
    assert sorted(runs) == sorted(
        [
            *("Baseline seed 0", "IE concat seed 0"),
            *(f"IE+TE r={r} concat seed 0" for r in (0.9, 0.8, 0.6, 0.4)),  # table4a's; the r 0.6 run is table4b's IE+TE concat too
            *("TE concat seed 0", "TE sum seed 0", "IE+TE sum seed 0"),
        ]
    )
    tags = {name: run.data.tags for name, run in runs.items()}
    assert tags["Baseline seed 0"][TABLES_TAG] == "table4a,table4b"  # reused by table4b, whose study added itself
    assert tags["Baseline seed 0"][ROWS_TAG] == "table4a:Baseline,table4b:Baseline"
    assert tags["IE+TE r=0.6 concat seed 0"][ROWS_TAG] == "table4a:IE+TE r=0.6,table4b:IE+TE concat"
    assert tags["TE sum seed 0"][TABLES_TAG] == "table4b" and tags["IE+TE r=0.9 concat seed 0"][ROWS_TAG] == "table4a:IE+TE r=0.9"

    # From the study's parent run to its cells' runs, and from each run back to the study.
    cells = json.loads(Path(mlflow_client.download_artifacts(session_b.parent_run_id, CELLS_ARTIFACT, str(tmp_path))).read_text())
    assert cells["study"] == plan_b.study_name
    assert [(c["row"], c["seed"], c["state"]) for c in cells["cells"]] == [(r.name, 0, "COMPLETE") for r in plan_b.spec.rows]
    for cell in cells["cells"]:
        [run] = [mlflow_client.get_run(r["run_id"]) for r in cell["runs"]]
        assert f"table4b:{cell['row']}" in run.data.tags[ROWS_TAG].split(",")
        own = run.data.tags["mlflow.parentRunId"] == session_b.parent_run_id
        assert own != any(k.startswith(f"reused_by/{plan_b.study_name}/") for k in run.data.tags)  # a reused run keeps its parent
    for name in (TRAIN_EXPERIMENT, EXPERIMENT):
        assert mlflow_client.get_experiment_by_name(name).tags["mlflow.experimentKind"] == "custom_model_development"

    # A per-column row names the knobs of each column's run; a tune point its fold.
    t3 = TablePlan(load_table("table3"), base)
    [ours] = t3.cells()
    assert {t3.run_name(ours, cfg) for cfg in t3.configs(t3.spec.row("Ours"), 0).values()} == {
        "Ours ratio=0.6 concat seed 0",
        "Ours ratio=0.9 concat seed 0",
    }
    tune = TunePlan(base, folds=3, params=("ratio",))
    point = tune.cells()[0]
    assert tune.run_name(point, tune.fold_configs(point.attrs)[1]) == "tune ratio=0.4 fold 2/3"


def test_claim_order_is_by_wave_then_longest_kind_first():
    cell = runner.Cell
    pending = [cell("a0", wave=0, kind="a"), cell("b1", wave=1, kind="b"), cell("a1", wave=1, kind="a"), cell("c1", wave=1, kind="c")]
    pending.append(cell("solo", wave=1))  # its own kind: timed by its key
    durations = {"a": [10.0, 30.0], "b": [25.0], "solo": [1.0]}  # a: mean 20 s; c: not timed yet
    assert [c.key for c in runner.claim_order(pending, durations)] == ["a0", "c1", "b1", "a1", "solo"]
    assert [c.key for c in runner.claim_order(pending, {})] == ["a0", "b1", "a1", "c1", "solo"]  # the plan's order


def test_a_tables_later_seeds_are_claimed_longest_row_first(store):
    """Seed 0 in the spec's order, then each later seed by what its rows took at seed 0, the longest first, so that
    the workers end on the short rows and finish together."""
    plan = TablePlan.from_args("table4a", preset_config("tiny"), seeds=2)
    naps = {"Baseline": 0.0, "IE": 0.5, "IE+TE r=0.9": 0.1, "IE+TE r=0.8": 1.0, "IE+TE r=0.6": 0.2, "IE+TE r=0.4": 0.3}
    assert set(naps) == {r.name for r in plan.spec.rows if r.reproduced}
    rows = {cfg.hash: row for row in naps for seed in (0, 1) for cfg in plan.configs(plan.spec.row(row), seed).values()}

    def napping(cfg, parent_run_id=None, extra_tags=None):
        time.sleep(naps.get(rows.get(cfg.hash), 0.0))
        return fake_trainer.train(cfg, parent_run_id, extra_tags)

    run_study(plan, trainer=napping)
    trials = sorted(_study(plan).get_trials(), key=lambda t: t.number)
    claimed = [(t.user_attrs["seed"], t.user_attrs["row"]) for t in trials]
    assert claimed[:6] == [(0, row) for row in naps]
    # By what the rows took at seed 0, which the naps only suggest: on a busy machine a fake cell's own work
    # (MLflow, the journal) can outweigh a nap, and the rule must hold whatever the times were.
    took = {t.user_attrs["row"]: (t.datetime_complete - t.datetime_start).total_seconds() for t in trials[:6]}
    assert claimed[6:] == [(1, row) for row in sorted(naps, key=lambda r: -took[r])]


def test_a_failed_cell_is_retried(store, capsys):
    base = preset_config("tiny")
    plan = TablePlan.from_args("table5", base)
    flaky = plan.configs(plan.spec.row("lambda3=0.01"), 0)["STB"].hash
    broken = plan.configs(plan.spec.row("lambda3=1"), 0)["STB"].hash

    # One failure of `flaky` is retried at once; `broken` fails both of its attempts.
    trainer = CountingTrainer(fail={flaky: 1, broken: 10})
    session = run_study(plan, trainer=trainer)
    trials = _study(plan).get_trials()
    by_cell = Counter((t.user_attrs["cell"], t.state) for t in trials)
    assert by_cell[("lambda3=0.01 | seed 0", TrialState.FAIL)] == 1 and by_cell[("lambda3=0.01 | seed 0", TrialState.COMPLETE)] == 1
    assert by_cell[("lambda3=1 | seed 0", TrialState.FAIL)] == 2 and by_cell[("lambda3=1 | seed 0", TrialState.COMPLETE)] == 0
    failed = next(t for t in trials if t.state == TrialState.FAIL)
    assert failed.user_attrs["failure_kind"] == "error" and "injected failure" in failed.user_attrs["failure"]
    frame = results_frame(plan, session.study)
    assert frame.loc[("lambda3=1", "STB"), "status"] == "missing" and frame["mean"].isna().sum() == 2  # NaN, never 0
    assert tracking.client().get_run(session.parent_run_id).info.status == "FAILED"
    assert runner.unfinished_cells(session) == {"lambda3=1 | seed 0": "error"}
    capsys.readouterr()
    assert tables_cli._unfinished([session]) == 1  # the command's exit status, explained at its end
    assert capsys.readouterr().err.splitlines() == [
        "repro: error: 1 cell(s) did not finish; the tables above are partial, and the same command trains them again:",
        f"  {session.study.study_name}: lambda3=1 | seed 0 (error)",
    ]

    # A training that diverges fails its cell without a retry in that invocation (it would draw the
    # same numbers again); started again, the study retries what failed and trains nothing that finished.
    trainer = CountingTrainer()
    diverged = {"n": 0}

    def diverging_once(cfg, parent_run_id=None, extra_tags=None):
        if cfg.hash == broken and diverged["n"] == 0:
            diverged["n"] += 1
            return fake_trainer.FakeResult("no-run", cfg.hash, cfg.hash, "FAILED", {}, reused=False, diverged="loss diverged at batch 50")
        return trainer(cfg, parent_run_id, extra_tags)

    session = run_study(plan, trainer=diverging_once)
    assert diverged["n"] == 1 and dict(trainer.trained) == {}
    assert results_frame(plan, session.study).loc[("lambda3=1", "STB"), "status"] == "missing, 1 diverged"
    last_fail = [t for t in _study(plan).get_trials() if t.state == TrialState.FAIL][-1]
    assert last_fail.user_attrs["failure_kind"] == "diverged" and last_fail.user_attrs["failure"].endswith(
        "ended FAILED (MLflow run no-run): loss diverged at batch 50"
    )
    assert "(diverged: not retried in this invocation)" in capsys.readouterr().err
    assert runner.unfinished_cells(session) == {"lambda3=1 | seed 0": "diverged"}
    # A diverged training is a result (its row reports the other seeds): exit 0, with a warning.
    assert tables_cli._unfinished([session]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "repro: warning: 1 training(s) diverged; the tables report their rows' other seeds, and a diverged training is not retried in this invocation (on the CPU a rerun diverges the same way):",
        f"  {session.study.study_name}: lambda3=1 | seed 0",
    ]
    session = run_study(plan, trainer=diverging_once)
    assert tables_cli._unfinished([session]) == 0 and runner.unfinished_cells(session) == {}
    assert dict(trainer.trained) == {broken: 1}
    assert results_frame(plan, session.study)["status"].eq("ok").all()
    assert tracking.client().get_run(session.parent_run_id).info.status == "FINISHED"


def _fake_env(mlruns: Path, cache: Path, log: Path, sleep: float) -> dict:
    return {
        **os.environ,
        "REPRO_MLRUNS": str(mlruns),
        "REPRO_CACHE": str(cache),
        "REPRO_TRAINER": "fake_trainer:train",
        "REPRO_FAKE_LOG": str(log),
        "REPRO_FAKE_SLEEP": str(sleep),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def _events(log: Path) -> list[tuple[str, str]]:
    return [tuple(line.split()[:2]) for line in log.read_text().splitlines()] if log.exists() else []


def _kill_then_resume(cmd: list[str], env: dict, tmp_path: Path, log: Path, finished: int) -> tuple[str, int, str]:
    """Run `cmd`, SIGKILL it once `finished` trainings have ended and another has started, then run it
    again as two worker processes on the same journal, which must succeed and retry the killed cell.
    Returns the config hash of the training that was killed, the number of log lines before the resume
    and what the resume printed."""
    with open(tmp_path / "first.err", "w") as err:
        first = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 120
    while True:
        events = _events(log)
        if sum(e == "end" for e, _ in events) >= finished and events[-1][0] == "start":
            break
        assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.err").read_text()[-3000:]
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = len(_events(log))
    done = subprocess.run(cmd + ["--workers", "2"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "its worker is gone; retrying the cell" in done.stderr
    return events[-1][1], before, done.stdout


POOLED = ["table4a", "table4b"]  # 9 distinct trainings: 4(b)'s Baseline and IE+TE concat are 4(a)'s


def _pooled_plans() -> list[TablePlan]:
    return [TablePlan.from_args(name, preset_config("tiny")) for name in POOLED]


@pytest.mark.slow
def test_a_killed_pool_resumes_as_two_workers_with_no_barrier_between_tables(store, tmp_path, shared_cache):
    """SIGKILL `repro table4a table4b` while Table 4(a)'s fourth training runs; started again as two
    workers, the pool retries the killed cell (continuing its MLflow run), trains every other missing
    training once, both workers train, and one starts on Table 4(b) while Table 4(a)'s last cell (held
    until then) is still in flight. One table alone (`repro table4a`) runs the same pool with one plan."""
    log = tmp_path / "trained.log"
    a_plan = _pooled_plans()[0]
    last = a_plan.configs(a_plan.spec.row("IE+TE r=0.4"), 0)["STB"].hash
    # Table 4(a)'s last cell lasts until the other worker has started two trainings beside it: a fixed 8 s
    # was not always enough for the later of the two resumed workers to start on a loaded machine.
    env = {**_fake_env(store, shared_cache, log, sleep=0.5), "REPRO_FAKE_AWAIT": f"{last}=2"}
    cmd = [sys.executable, "-m", "repro", *POOLED, "--preset", "tiny"]
    killed, before, printed = _kill_then_resume(cmd, env, tmp_path, log, finished=3)  # while the fourth training runs
    assert killed != last and "Table 4(a)" in printed and "Table 4(b)" in printed
    events = _events(log)
    starts, ends = Counter(h for e, h in events if e == "start"), Counter(h for e, h in events if e == "end")
    assert len(ends) == 9 and set(ends.values()) == {1}  # the shared trainings ran once
    assert starts[killed] == 2 and all(n == 1 for h, n in starts.items() if h != killed)  # only the killed one again
    resumed = [line.split() for line in log.read_text().splitlines()][before:]
    assert len({pid for _, _, pid in resumed}) == 2  # both workers trained

    a, b = (_study(plan).get_trials() for plan in _pooled_plans())
    for plan, trials in zip(_pooled_plans(), (a, b)):
        assert sorted(t.user_attrs["cell"] for t in trials if t.state == TrialState.COMPLETE) == sorted(c.key for c in plan.cells())
    [lost] = [t for t in a if t.state == TrialState.FAIL]
    assert lost.user_attrs["failure_kind"] == "lost" and a_plan.configs(a_plan.spec.row(lost.user_attrs["row"]), 0)["STB"].hash == killed
    # No barrier: the other worker went on to Table 4(b) while Table 4(a)'s last cell trained.
    [slow] = [t for t in a if t.state == TrialState.COMPLETE and t.user_attrs["config_hashes"]["STB"] == last]
    assert sum(t.datetime_start < slow.datetime_complete for t in b) >= 2

    train_exp = experiment(TRAIN_EXPERIMENT)  # before tracking.client(): it points MLflow at this test's store
    runs = tracking.client().search_runs([train_exp], f"tags.config_hash = '{killed}'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the interrupted run was continued, not duplicated
    runs = tracking.client().search_runs([experiment(EXPERIMENT)])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}  # both parents closed


def test_liveness_of_a_trials_worker():
    me = locks.worker_identity()
    now = time.time()
    assert locks.is_alive(me, None, now)
    assert not locks.is_alive({**me, "start": "1"}, None, now)  # same pid, another process (pid reused)
    assert not locks.is_alive(None, now, now)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not locks.is_alive({"host": me["host"], "pid": gone.pid, "start": None}, now, now)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    while locks._proc_stat(zombie.pid)[0] != "Z":  # exited, not yet reaped
        time.sleep(0.01)
    assert not locks.is_alive(locks.worker_identity() | {"pid": zombie.pid, "start": None}, now, now)
    zombie.wait()
    elsewhere = {"host": "another-machine", "pid": 1, "start": "1"}
    assert locks.is_alive(elsewhere, now - 10, now)
    assert not locks.is_alive(elsewhere, now - locks.STALE_AFTER_S - 1, now)


def test_repro_tune_chooses_on_source_folds_only(store, monkeypatch, capsys):
    monkeypatch.setenv("REPRO_TRAINER", "fake_trainer:train")
    assert main(["tune", "--preset", "tiny", "--folds", "3", "--params", "ratio"]) == 0
    out = capsys.readouterr().out
    plan = TunePlan(preset_config("tiny"), folds=3, params=("ratio",))
    frame = tune_frame(plan, _study(plan))
    assert list(frame["ratio"]) == [0.4, 0.6, 0.8, 0.9] and (frame["folds"] == 3).all()
    best = chosen(frame)
    assert f"chosen: ratio={best['ratio']:g}" in out
    train_exp = experiment(TRAIN_EXPERIMENT)
    runs = tracking.client().search_runs([train_exp])
    assert len(runs) == 12  # 4 grid points x 3 folds
    assert all(set(run.data.metrics) == {"val/epe_mm"} for run in runs)  # the fake reports each of cfg.targets: none
    for cfg in plan.fold_configs({"ratio": 0.6}):
        assert cfg.targets == () and cfg.cv_folds == 3
    with pytest.raises(ConfigError, match="--params"):
        TunePlan(preset_config("tiny"), params=("lr",))
