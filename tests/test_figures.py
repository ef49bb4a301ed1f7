"""Figures 3 and 4 and the run curves: their numbers on constructed features, and the commands' files and MLflow runs."""

import json
import math

import mlflow
import pandas as pd
import pytest
import torch
from fixtures_clip import save_random_open_clip

from repro import tracking
from repro.cli import main
from repro.clip import synthclip
from repro.clip.features import mix_features
from repro.clip.prompts import all_prompts
from repro.data.errors import DataError
from repro.report import fig4_retrieval as fig4
from repro.report.curves import select_runs
from repro.report.fig3_tsne import coverage, median_bandwidth, mmd2, nn_aug_share
from repro.tracking import FIGURES_EXPERIMENT as FIGURES
from repro.tracking import experiment, use_store

# -- Fig. 3 numbers ------------------------------------------------------------------------------


def test_nearest_neighbour_share_is_one_zero_or_half_by_construction():
    target = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    far = target + 1.0
    assert nn_aug_share(target, aug=target.clone(), source=far) == 1.0  # aug coincides with the target
    assert nn_aug_share(target, aug=far, source=target.clone()) == 0.0
    assert nn_aug_share(target, aug=far, source=far.clone()) == 0.5  # every point a tie


def test_mmd2_is_zero_for_identical_sets_grows_with_shift_and_matches_a_hand_computation():
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(1))
    assert mmd2(x, x.clone(), 1.0) == pytest.approx(0.0, abs=1e-12)
    near, far = mmd2(x, x + 0.2, 1.0), mmd2(x, x + 2.0, 1.0)
    assert 0 < near < far
    assert mmd2(x, x + 2.0, 1.0) == pytest.approx(mmd2(x + 2.0, x, 1.0))
    # One point each at distance 1, bandwidth 1: k(x,x) + k(y,y) - 2 k(x,y) = 2 - 2 exp(-1/2).
    assert mmd2(torch.zeros(1, 1), torch.ones(1, 1), 1.0) == pytest.approx(2 - 2 * math.exp(-0.5))
    # Median heuristic: pairwise distances of 0, 1, 3 on a line are 1, 3, 2 -> 2.
    assert median_bandwidth(torch.tensor([[0.0], [1.0]]), torch.tensor([[3.0]])) == pytest.approx(2.0)


def test_coverage_prefers_the_set_that_matches_the_target():
    g = torch.Generator().manual_seed(2)
    target = torch.randn(25, 5, generator=g)
    source = torch.randn(25, 5, generator=g) + 3.0
    aug = target + 0.05 * torch.randn(25, 5, generator=g)
    c = coverage({"t": target}, aug, source)["t"]
    assert c["nn_aug_share"] == 1.0 and c["mmd2_aug"] < c["mmd2_source"] and c["n_target"] == 25
    assert torch.equal(mix_features(aug, source, 1.0), aug) and torch.equal(mix_features(aug, source, 0.0), source)


# -- Fig. 4 numbers ------------------------------------------------------------------------------

COLOURS = ("peach", "light beige", "white")


def _style(colour, backdrop="green", lighting="bright", scene="background"):
    return {"hand_colour": colour, "backdrop": backdrop, "lighting": lighting, "scene": scene}


def test_retrieve_ranks_by_cosine_and_never_returns_the_query():
    gallery = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.7]])
    indices, sims = fig4.retrieve(gallery[[0]], gallery, torch.tensor([0]), k=3)
    assert indices.tolist() == [[1, 3, 2]]
    assert sims[0, 0] == pytest.approx(0.9 / math.hypot(0.9, 0.1))


def test_precision_at_k_on_a_constructed_ranking():
    relevant = torch.tensor([[True, True, False, False, True, False], [False] * 6])
    indices = torch.tensor([[0, 2, 4], [1, 3, 5]])
    assert fig4.precision_at_k(indices, relevant).tolist() == pytest.approx([2 / 3, 0.0])


def test_carries_reads_hand_colour_backdrop_and_lighting():
    style = _style("white", backdrop="flower", lighting="dark")
    assert fig4.carries(style, "hand_colour", "white") and not fig4.carries(style, "hand_colour", "peach")
    assert fig4.carries(style, "slot", "flower") and fig4.carries(style, "slot", "dark")
    assert not fig4.carries(style, "slot", "bright") and not fig4.carries(style, "slot", "lake")


def test_pairs_move_the_query_to_a_style_the_gallery_shows():
    rich = [
        _style(COLOURS[i % 3], backdrop=("green", "flower", "lake")[(i // 3) % 3], lighting=("bright", "normal")[i % 2]) for i in range(12)
    ]
    pairs = fig4.draw_pairs(rich, 60, seed=3)
    assert pairs == fig4.draw_pairs(rich, 60, seed=3)  # seeded
    prompts = set(all_prompts())
    for p in pairs:
        assert not fig4.carries(rich[p.query], p.attribute, p.word)  # the text has to move the query
        assert any(fig4.carries(s, p.attribute, p.word) for s in rich)
        assert p.prompt in prompts and p.word in p.prompt
    assert {p.attribute for p in pairs} == {"hand_colour", "slot"}
    # synth-frei-like: one backdrop, one lighting: only the hand colour can move.
    source_like = [_style(COLOURS[i % 3]) for i in range(9)]
    assert {p.attribute for p in fig4.draw_pairs(source_like, 20, seed=0)} == {"hand_colour"}
    with pytest.raises(DataError, match="same style"):
        fig4.draw_pairs([_style("white")] * 5, 3, seed=0)


def test_precision_report_text_moves_the_query_and_the_image_alone_does_not():
    """A perfect encoder: the image feature is its hand colour, one-hot, plus a small pose part; the text
    feature is the prompt's colour, one-hot. The text-only query finds the colour, the image-only one the query's."""
    styles = [_style(COLOURS[i % 3]) for i in range(12)]
    pose = 0.1 * torch.randn(12, 2, generator=torch.Generator().manual_seed(4))
    onehot = lambda colours: torch.eye(3)[[COLOURS.index(c) for c in colours]]  # noqa: E731
    f_gallery = torch.cat([onehot([s["hand_colour"] for s in styles]), pose], dim=1)
    pairs = fig4.draw_pairs(styles, 30, seed=5)
    f_prompts = torch.cat([onehot([p.word for p in pairs]), torch.zeros(len(pairs), 2)], dim=1)
    report = fig4.precision_report(f_gallery, f_prompts, pairs, fig4.relevance(styles, pairs), ratio=0.0, k=3)
    assert report["precision_at_k"] == 1.0 and report["precision_at_k_image_only"] == 0.0
    assert report["chance"] == pytest.approx(4 / 11)  # 4 of the 11 other images carry any one colour
    assert report["by_attribute"]["hand_colour"]["pairs"] == 30 and "slot" not in report["by_attribute"]


# -- the commands --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "synthclip-random.pt"
    save_random_open_clip(synthclip.MODEL_NAME, path)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One render cache and one MLflow store for the module's commands (a fresh store costs seconds
    of schema creation); the tests tell their runs apart by id. One torch thread: on two cores shared
    with other jobs, two spinning intra-op threads make these tiny encodes several times slower."""
    root = tmp_path_factory.mktemp("figures")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPRO_CACHE", str(root / "cache"))
        mp.setenv("REPRO_MLRUNS", str(root / "mlruns"))
        mp.delenv("REPRO_TRACKING_URI", raising=False)
        yield root / "mlruns"
    torch.set_num_threads(threads)


def _figure_run(run_id):
    run = tracking.client().get_run(run_id)
    assert tracking.client().get_experiment(run.info.experiment_id).name == FIGURES
    return run, {a.path for a in tracking.client().list_artifacts(run_id)}


def test_fig3_writes_png_csv_json_and_logs_a_run(store, checkpoint, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["fig3", "--clip-checkpoint", str(checkpoint), "--n", "24", "--size", "64", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    points = pd.read_csv(out / "fig3_tsne.csv")
    assert points["set"].value_counts().to_dict() == {"aug": 24, "synth-frei": 24, "synth-stb": 24, "synth-rhd": 24}
    assert points.loc[points["set"] == "aug", "prompt"].isin(all_prompts()).all()
    written = json.loads((out / "fig3_coverage.json").read_text())
    for target in ("synth-stb", "synth-rhd"):
        c = written["coverage"][target]
        assert 0 <= c["nn_aug_share"] <= 1 and c["mmd2_aug"] >= 0 and c["mmd2_source"] >= 0
    run, artifacts = _figure_run(printed["mlflow_run_id"])
    assert {"fig3_tsne.png", "fig3_tsne.csv", "fig3_coverage.json"} <= artifacts and (out / "fig3_tsne.png").stat().st_size > 0
    assert run.data.params["n"] == "24" and run.data.params["ratio"] == "0.5"
    assert run.data.tags["clip_weights_digest"] == written["clip_weights_digest"] and set(written["data_digests"]) == {
        "synth-frei",
        "synth-stb",
        "synth-rhd",
    }
    assert run.data.metrics["coverage/synth-stb/nn_aug_share"] == pytest.approx(written["coverage"]["synth-stb"]["nn_aug_share"])


def test_fig4_writes_png_json_and_logs_a_run(store, checkpoint, tmp_path, capsys):
    out = tmp_path / "figs"
    args = ["fig4", "--clip-checkpoint", str(checkpoint), "--n", "24", "--size", "64", "--k", "4", "--queries", "2", "--pairs", "20"]
    assert main([*args, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((out / "fig4_precision.json").read_text())
    assert written["pairs"] == 20 and written["k"] == 4 and written["gallery"] == "synth-frei/train"
    for key in ("precision_at_k", "precision_at_k_image_only", "chance"):
        assert 0 <= written[key] <= 1
    run, artifacts = _figure_run(printed["mlflow_run_id"])
    assert {"fig4_retrieval.png", "fig4_precision.json"} <= artifacts
    assert run.data.metrics["precision_at_k"] == pytest.approx(written["precision_at_k"]) and run.data.params["k"] == "4"
    assert main([*args[:-6], "--k", "24", "--out", str(out)]) == 2  # k must leave the query out of a 24-image gallery


def _fake_training_run(exp, preset, tags=None, epe=40.0):
    """What repro.train.run logs that the curves read: per-epoch losses, target metrics, pck_curves.json."""
    use_store()
    with mlflow.start_run(experiment_id=exp, run_name=f"{preset}-fake") as run:
        mlflow.set_tags({"preset": preset, **(tags or {})})
        for epoch in (1, 2, 3):
            mlflow.log_metrics(
                {"train/loss": 1 / epoch, "train/heat": 0.5 / epoch, "train/pose": 0.4 / epoch, "train/con": 0.1}, step=epoch
            )
        mlflow.log_metrics({"val/epe_mm": epe, "synth-stb/epe_mm": epe + 5, "synth-rhd/epe_mm": epe + 9})
        thresholds = torch.linspace(0, 50, 11)
        mlflow.log_table(
            pd.DataFrame(
                {"threshold_mm": thresholds, "pck/val": thresholds / 50, "pck/synth-stb": thresholds / 60, "pck/synth-rhd": thresholds / 70}
            ),
            artifact_file="pck_curves.json",
        )
    return run.info.run_id


def test_curves_plot_the_chosen_runs_and_log_a_run(store, tmp_path, capsys):
    exp = experiment("repro-train")
    tiny = [_fake_training_run(exp, "tiny", {"study": "s1"}), _fake_training_run(exp, "tiny", {"reused_by/s1/3": "x"}, epe=30.0)]
    other = _fake_training_run(exp, "small", {"study": "s2"})
    out = tmp_path / "figs"
    assert main(["curves", "--preset", "tiny", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run_ids"] == tiny
    assert (out / "pck_curves.png").stat().st_size > 0 and (out / "training_curves.png").stat().st_size > 0
    assert pd.read_csv(out / "curves_runs.csv")["run_id"].tolist() == tiny
    run, artifacts = _figure_run(printed["mlflow_run_id"])
    assert {"pck_curves.png", "training_curves.png", "curves_runs.csv"} <= artifacts and run.data.metrics["runs"] == 2
    assert select_runs(study="s1")["run_id"].tolist() == tiny  # its own run and the one it reused
    assert select_runs(run_ids=[other])["run_id"].tolist() == [other]
    assert main(["curves", "--run-ids", "0" * 32, "--out", str(out)]) == 2  # an unknown run is a user error
