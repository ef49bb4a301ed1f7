"""Bad input on the command line ends in `repro: error: ...` and exit status 2, naming the field or id
and what was expected; and a synthetic dataset never renders into --data-root."""

from types import SimpleNamespace

import fixtures_real as fx
import pytest

from repro import tracking
from repro.cli import main
from repro.data.errors import DataError
from repro.data.registry import dataset_entry, dataset_root, is_synthetic


@pytest.fixture
def stores(tmp_path, monkeypatch):
    """Empty MLflow store, study journals and cache under tmp_path (never the repository's mlruns/)."""
    monkeypatch.setenv("REPRO_MLRUNS", str(tmp_path / "mlruns"))
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("REPRO_TRACKING_URI", raising=False)
    return tmp_path


def error_of(argv: list[str], capsys) -> str:
    """The stderr of `repro ARGV`, which must be one clean error with exit status 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("repro: error: ") and "Traceback" not in err, err
    return err


# --- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.fusion=bogus", "config field 'model.fusion' = 'bogus': expected one of ('concat', 'sum')"),
        ("model.bogus=1", "unknown config field 'model.bogus'; fields: model.input_size,"),
        ("model.width=abc", "config field 'model.width' = 'abc': expected a number"),
        ("model.input_size=12", "config field 'model.input_size' = 12: expected a positive multiple of 8"),
        ("model.init=xavier", "config field 'model.init' = 'xavier': expected one of ('torch', 'he')"),
        ("model.branch2=maybe", "config field 'model.branch2' = 'maybe': expected true or false"),
        ("model=1", "config field 'model' = '1': expected model.FIELD=VALUE"),
        ("epochs=x", "config field 'epochs' = 'x': expected an integer"),
        ("epochs.x=1", "config field 'epochs' has no sub-fields"),
        ("n_train=many", "config field 'n_train' = 'many': expected an integer or none"),
        ("batch_size=1", "config field 'batch_size' = 1: expected at least 2"),
        ("bogus=1", "unknown config field 'bogus'; fields: source,"),
        ("epochs", "--set expects KEY=VALUE, got 'epochs'"),
    ],
)
def test_bad_overrides_are_named(stores, capsys, override, expected):
    assert expected in error_of(["config", "show", "--preset", "tiny", "--set", override], capsys)


@pytest.mark.parametrize("command", [["config", "show"], ["train"], ["table4a"], ["report"]])
def test_unknown_preset(stores, capsys, command):
    err = error_of([*command, "--preset", "bogus"], capsys)
    assert "unknown preset 'bogus'; known: tiny, small, paper" in err
    assert not (stores / "mlruns" / "optuna").exists()  # refused before any study is set up


def test_model_config_raises_config_error():
    from repro.config import ConfigError
    from repro.errors import ConfigError as Same
    from repro.model.config import ModelConfig

    assert ConfigError is Same and issubclass(ConfigError, ValueError)
    with pytest.raises(ConfigError, match=r"config field 'model.fusion' = 'bogus': expected one of \('concat', 'sum'\)"):
        ModelConfig(fusion="bogus")


# --- eval ------------------------------------------------------------------------------------------


def test_eval_unknown_or_malformed_run_id(stores, capsys):
    from repro.tracking import TRAIN_EXPERIMENT as EXPERIMENT
    from repro.tracking import experiment

    err = error_of(["eval", "0123456789abcdef0123456789abcdef"], capsys)
    assert "no run '0123456789abcdef0123456789abcdef': the tracking store" in err and "does not exist" in err
    assert not (stores / "mlruns").exists()  # not created just to say so
    experiment(EXPERIMENT)
    capsys.readouterr()  # MLflow's log lines of creating the store
    err = error_of(["eval", "0123456789abcdef0123456789abcdef"], capsys)
    assert "no run '0123456789abcdef0123456789abcdef'" in err and "expected the id of a finished run" in err
    err = error_of(["eval", "not a run id!"], capsys)
    assert "no run 'not a run id!'" in err


def test_eval_run_without_checkpoint_or_unfinished(stores, capsys):
    import mlflow

    from repro.tracking import TRAIN_EXPERIMENT as EXPERIMENT
    from repro.tracking import experiment, use_store

    exp = experiment(EXPERIMENT)
    use_store()  # the test logs through MLflow's fluent API
    capsys.readouterr()
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_text("{}", "config.json")
    err = error_of(["eval", run.info.run_id], capsys)
    assert f"run {run.info.run_id!r} (experiment 'repro-train') has no checkpoint/last.pt artifact" in err

    running = tracking.client().create_run(exp).info.run_id
    err = error_of(["eval", running], capsys)
    assert f"run {running!r} is RUNNING, expected a FINISHED training run" in err
    failed = tracking.client().create_run(exp).info.run_id
    tracking.client().set_terminated(failed, status="FAILED")
    assert f"run {failed!r} is FAILED" in error_of(["eval", failed], capsys)


# --- studies ---------------------------------------------------------------------------------------


def test_dashboard_unknown_table_lists_the_journals(stores, capsys):
    journals = stores / "mlruns" / "optuna"
    journals.mkdir(parents=True)
    (journals / "table4a.journal").write_text("")
    err = error_of(["dashboard", "--table", "table9"], capsys)
    assert "no study journal" in err and "table9.journal" in err and "(found: table4a)" in err


def test_report_error_lists_the_studies_that_exist(stores):
    """`repro report` finding no study of its preset appends the studies there (repro.cli.report)."""
    import optuna

    from repro.cli.report import _existing_studies
    from repro.studies.runner import open_storage

    assert _existing_studies(None) == []
    optuna.create_study(study_name="table4a-small-0123abcd", storage=open_storage(None, "table4a"))
    optuna.create_study(study_name="tune-tiny-4567ef01", storage=open_storage(None, "tune"))
    assert _existing_studies(None) == ["table4a-small-0123abcd", "tune-tiny-4567ef01"]


# --- FreiHAND annotations --------------------------------------------------------------------------


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any image is decoded: every module that holds read_image gets the refusal, and
    gets its own back afterwards (a loader first imported while patched must not keep the patch)."""
    import repro.data.real.common as common
    import repro.data.real.freihand  # noqa: F401  imported before patching, so it binds nothing patched
    import repro.data.real.rhd as rhd

    def refuse(path, *args, **kwargs):
        raise AssertionError(f"decoded {path} before refusing the dataset")

    for module in (common, rhd):
        monkeypatch.setattr(module, "read_image", refuse)


def test_freihand_without_evaluation_annotations(tmp_path, capsys, no_decoding):
    fx.write_freihand(tmp_path)
    (tmp_path / "evaluation_xyz.json").unlink()  # FreiHAND_pub_v2.zip alone: evaluation images and K, no joints
    err = error_of(["data", "info", "--dataset", "freihand", "--root", str(tmp_path), "--split", "evaluation"], capsys)
    assert f"FreiHAND evaluation annotations missing: {tmp_path / 'evaluation_xyz.json'};" in err
    assert "FreiHAND_pub_v2_eval.zip" in err and "evaluation_K.json" not in err.split(";")[0]
    (tmp_path / "evaluation_K.json").unlink()
    err = error_of(["data", "info", "--dataset", "freihand", "--root", str(tmp_path)], capsys)  # evaluation: the default
    assert f"{tmp_path / 'evaluation_xyz.json'}, {tmp_path / 'evaluation_K.json'}; add them from" in err


def test_freihand_without_training_annotations(tmp_path, capsys, no_decoding):
    fx.write_freihand(tmp_path)
    (tmp_path / "training_xyz.json").unlink()
    (tmp_path / "training_K.json").unlink()
    err = error_of(["data", "info", "--dataset", "freihand", "--root", str(tmp_path), "--split", "training"], capsys)
    assert f"FreiHAND training annotations missing: {tmp_path / 'training_xyz.json'}, {tmp_path / 'training_K.json'}" in err
    assert "FreiHAND_pub_v2.zip" in err


# --- dataset roots ---------------------------------------------------------------------------------


def test_registry_says_which_datasets_are_synthetic(tmp_path):
    assert dataset_entry("synth-frei").synthetic and is_synthetic("synth-rhd") and is_synthetic("synth-clip")
    assert not any(is_synthetic(name) for name in ("freihand", "rhd", "stb"))
    assert dataset_root("synth-frei", tmp_path) is None  # its cache root is cache_dir(), never under --data-root
    assert dataset_root("freihand", tmp_path) == tmp_path / "freihand"
    with pytest.raises(DataError, match=r"dataset 'stb' is read from disk: pass --data-root PATH"):
        dataset_root("stb", None)
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        dataset_root("nope", tmp_path)


def test_synthetic_splits_never_render_into_the_data_root(tmp_path, monkeypatch):
    """The fig3 path (load_split of the source's train split and the targets' test splits) with --data-root."""
    from repro.train.data import load_split

    cache, data_root = tmp_path / "cache", tmp_path / "data"
    data_root.mkdir()
    monkeypatch.setenv("REPRO_CACHE", str(cache))
    for name, role in [("synth-frei", "train"), ("synth-stb", "test")]:
        split = load_split(name, role, 8, 32, str(data_root))
        assert len(split) == 8 and split.images.shape[-1] == 32
    assert list(data_root.iterdir()) == []
    assert (cache / "data" / "synth-frei").is_dir() and (cache / "data" / "synth-stb").is_dir()


def test_real_split_without_data_root_names_the_flag(tmp_path):
    from repro.train.data import load_split

    with pytest.raises(DataError, match=r"dataset 'freihand' is read from disk: pass --data-root PATH \(a folder holding freihand/\)"):
        load_split("freihand", "val", 8, 32, None)


def test_data_root_for_a_synthetic_dataset_is_refused(tmp_path, capsys):
    err = error_of(["data", "info", "--dataset", "synth-frei", "--root", str(tmp_path)], capsys)
    assert "dataset 'synth-frei' is synthetic" in err and "--root is for the real datasets only" in err
    assert list(tmp_path.iterdir()) == []


def test_world_note_asks_the_registry():
    from repro.studies.results import world_note

    def plan(source, *targets):
        return SimpleNamespace(base=SimpleNamespace(source=source), targets=dict(zip(("STB", "RHD"), targets)))

    assert "the synthetic hand world" in world_note(plan("synth-frei", "synth-stb", "synth-rhd"))
    assert "the synthetic hand world" in world_note(plan("freihand", "synth-stb", "rhd"))
    assert world_note(plan("freihand", "stb", "rhd")).endswith("(the real datasets).")
