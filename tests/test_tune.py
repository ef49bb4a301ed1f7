"""`repro tune` as the paper does it: 10 folds, r and lambda1..3 tunable, folds of whole pose groups.

The end-to-end tune test (fake trainer) is in test_studies.py; these check the plan, the CLI's
arguments and repro.train.data.cv_split's grouping on hand-made groups and on a tiny FreiHAND.
A plan's study name hashes its runs' inputs (rendered data, CLIP weights), so every test that
builds one uses the `store` fixture: a module-wide cache, never the user's.
"""

from collections import Counter

import fixtures_real as fx
import pytest
import torch

from repro import tracking
from repro.cli import build_parser, main
from repro.config import ConfigError
from repro.data.domains import DOMAINS
from repro.data.errors import DataError
from repro.data.real.freihand import FreiHAND
from repro.data.real.rhd import RHD
from repro.data.real.stb import STB
from repro.data.synthetic import SyntheticDataset
from repro.presets import preset_config
from repro.studies.runner import TRAIN_EXPERIMENT
from repro.studies.tune import CANDIDATES, DEFAULT_PARAMS, TunePlan
from repro.tracking import experiment
from repro.train.data import SplitTensors, cv_split, fold_of_groups, pose_groups

ALL_FOUR = ("ratio", "lambda_heat", "lambda_pose", "lambda_con")


# --- the plan and the CLI -------------------------------------------------------------------------------


def test_defaults_are_the_papers_ten_folds_over_all_four_parameters(store):
    plan = TunePlan(preset_config("tiny"))
    assert plan.folds == 10 and plan.params == ALL_FOUR == DEFAULT_PARAMS
    assert len(plan.fold_configs({"ratio": 0.6})) == 10
    args = build_parser().parse_args(["tune"])
    assert args.folds == 10
    assert tuple(p.strip() for p in args.params.split(",")) == DEFAULT_PARAMS
    assert "-k10-" in plan.study_name


def test_all_four_parameters_and_the_papers_names_are_accepted(store):
    base = preset_config("tiny")
    plan = TunePlan(base, folds=2, params=("lambda_con", "lambda_pose", "ratio", "lambda_heat"))
    assert plan.params == ALL_FOUR  # canonical order: one study whatever order --params lists them in
    assert len(plan.cells()) == 4 * 3 * 3 * 4
    assert TunePlan(base, folds=2, params=("r", "lambda1", "lambda2", "lambda3")).params == ALL_FOUR
    # lambda1 / lambda2: the base value times (0.1, 1, 10), so the grid holds what the base trains with.
    assert base.lambda_heat == 200.0 and plan.candidates("lambda_heat") == (20.0, 200.0, 2000.0)
    assert plan.candidates("lambda_pose") == (0.1, 1.0, 10.0)
    paper = TunePlan(preset_config("paper"), params=("lambda_heat",))
    assert paper.candidates("lambda_heat") == (0.1, 1.0, 10.0)  # around the paper's lambda1 = 1
    assert plan.candidates("ratio") == CANDIDATES["ratio"] and plan.candidates("lambda_con") == CANDIDATES["lambda_con"]
    for point in (cell.attrs for cell in plan.cells()[:5]):
        for cfg in plan.fold_configs(point):
            assert all(getattr(cfg, k) == v for k, v in point.items()) and cfg.targets == ()


@pytest.mark.parametrize(
    "params, size",
    [
        (("ratio", "lambda_con"), 16),
        (("ratio", "lambda_heat"), 12),
        (("lambda_heat", "lambda_pose"), 9),
        (("lambda_pose", "lambda_con"), 12),
    ],
)
def test_grid_size_for_two_parameters(store, params, size):
    cells = TunePlan(preset_config("tiny"), folds=3, params=params).cells()
    assert len(cells) == size and len({c.key for c in cells}) == size
    sample = TunePlan(preset_config("tiny"), folds=3, params=params, trials=5).cells()
    assert len(sample) == 5 and set(c.key for c in sample) <= {c.key for c in cells}
    assert sample == TunePlan(preset_config("tiny"), folds=3, params=params, trials=5).cells()  # a fixed draw


@pytest.mark.parametrize("params", [("lr",), ("ratio", "lambda4"), (), ("ratio", "r")])
def test_unknown_missing_or_repeated_parameters_are_rejected(store, params):
    with pytest.raises(ConfigError, match="--params") as err:
        TunePlan(preset_config("tiny"), params=params)
    if params and params[-1] != "r":
        for allowed in ALL_FOUR:
            assert allowed in str(err.value)
        assert repr(params[-1]) in str(err.value)


def test_cli_rejects_an_unknown_parameter_naming_the_allowed_ones(store, capsys):
    assert main(["tune", "--preset", "tiny", "--params", "ratio,lr"]) == 2
    err = capsys.readouterr().err
    assert "'lr'" in err and all(p in err for p in ALL_FOUR)


def test_cli_tunes_lambda1_and_lambda2(store, monkeypatch, capsys):
    monkeypatch.setenv("REPRO_TRAINER", "fake_trainer:train")
    assert main(["tune", "--preset", "tiny", "--folds", "2", "--params", "lambda1,lambda2"]) == 0
    out = capsys.readouterr().out
    assert "chosen: lambda_heat=" in out and ", lambda_pose=" in out and "over 2 folds" in out
    runs = tracking.client().search_runs([experiment(TRAIN_EXPERIMENT)])
    assert len(runs) == 9 * 2


# --- grouped folds ----------------------------------------------------------------------------------------


class Groups:
    """A stand-in dataset with the pose_groups() method cv_split reads."""

    def __init__(self, groups):
        self.groups = torch.tensor(groups)

    def pose_groups(self):
        return self.groups


def tensors(n: int, dataset) -> SplitTensors:
    return SplitTensors(
        "toy",
        "train",
        torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone(),
        torch.zeros(n, 21, 3),
        torch.zeros(n, 21, 2),
        torch.ones(n, 21, dtype=torch.bool),
        "d",
        dataset,
    )


def check_grouped(train: SplitTensors, groups: torch.Tensor, folds: int) -> list[torch.Tensor]:
    masks = []
    for k in range(folds):
        rest, val, held_out = cv_split(train, folds, k)
        assert held_out.dtype == torch.bool and held_out.shape == (len(train),)
        assert torch.equal(val.images[:], train.images[held_out]) and torch.equal(rest.images[:], train.images[~held_out])
        assert len(rest) + len(val) == len(train)
        masks.append(held_out)
    stacked = torch.stack(masks)
    assert (stacked.sum(0) == 1).all()  # the folds are disjoint and cover every sample
    for g in groups.unique():
        assert len({int(m) for m in stacked[:, groups == g].float().argmax(0)}) == 1  # a group lies in one fold
    return masks


def test_cv_split_keeps_each_pose_group_in_one_fold():
    groups = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    train = tensors(8, Groups(groups.tolist()))
    masks = check_grouped(train, groups, 2)
    # 4 groups of 2 samples dealt to 2 folds: 2 groups each, so 4 samples per fold.
    assert [int(m.sum()) for m in masks] == [4, 4]
    for m in masks:
        assert Counter(groups[m].tolist()) == Counter({g: 2 for g in groups[m].unique().tolist()})
    # 4 folds: one group (2 samples) each; the held-out samples of fold k are the two renders of one pose.
    masks = check_grouped(train, groups, 4)
    assert [int(m.sum()) for m in masks] == [2, 2, 2, 2]
    assert sorted(int(groups[m][0]) for m in masks) == [0, 1, 2, 3]
    # 3 folds of 4 groups: 2 + 1 + 1 groups, so 4 + 2 + 2 samples (dealing samples mod 3 would split all four).
    assert sorted(int(m.sum()) for m in check_grouped(train, groups, 3)) == [2, 2, 4]


def test_fold_of_groups_is_pure_and_balanced():
    groups = torch.tensor([5, 5, 5, 9, 2, 2, 7, 11, 13, 13])  # 6 groups of sizes 3, 1, 2, 1, 1, 2
    folds = fold_of_groups(groups, 3)
    assert torch.equal(folds, fold_of_groups(groups.clone(), 3))  # deterministic
    per_group = {int(g): set(folds[groups == g].tolist()) for g in groups.unique()}
    assert all(len(f) == 1 for f in per_group.values())
    groups_per_fold = Counter(next(iter(f)) for f in per_group.values())
    assert sorted(groups_per_fold.values()) == [2, 2, 2]  # 6 groups, 3 folds: 2 groups each
    # the same groups in another sample order: every group keeps its fold.
    perm = torch.tensor([9, 0, 4, 7, 1, 3, 8, 2, 6, 5])
    assert torch.equal(fold_of_groups(groups[perm], 3), folds[perm])
    with pytest.raises(DataError, match="at least 4 pose groups"):
        fold_of_groups(torch.tensor([0, 0, 1, 2]), 4)


def test_cv_split_rejects_groups_of_another_length():
    train = tensors(8, Groups([0, 1, 2, 3]))
    with pytest.raises(DataError, match="4 pose groups for 8 samples|\\(4,\\) pose groups"):
        cv_split(train, 2, 0)
    assert pose_groups(tensors(5, object())).tolist() == [0, 1, 2, 3, 4]  # no method: each sample its own


@pytest.fixture(scope="module")
def freihand_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("freihand")
    fx.write_freihand(root)  # training: 2 poses x 4 background versions
    return root


def test_freihand_groups_are_the_annotation_and_folds_keep_its_renders_together(freihand_root):
    data = FreiHAND(freihand_root, "training")
    assert data.pose_groups().tolist() == [0, 1, 0, 1, 0, 1, 0, 1]  # image i shows annotation i % 2
    assert data.pose_groups().dtype == torch.long
    assert FreiHAND(freihand_root, "training", n=3).pose_groups().tolist() == [1, 0, 0]  # images 1, 4, 6 (evenly spaced)
    assert FreiHAND(freihand_root, "evaluation").pose_groups().tolist() == [0, 1]
    train = tensors(8, data)
    masks = check_grouped(train, data.pose_groups(), 2)
    assert sorted(int(m.sum()) for m in masks) == [4, 4]  # each fold: one pose's 4 renders


def test_rhd_stb_and_synthetic_samples_are_their_own_groups(tmp_path):
    root = tmp_path / "RHD_published_v2"
    fx.write_rhd(root)
    assert RHD(root, "evaluation").pose_groups().tolist() == [0, 1, 2]
    fx.write_stb(tmp_path / "stb")
    assert STB(tmp_path / "stb", "test").pose_groups().tolist() == [0, 1, 2]

    class EightSamples(SyntheticDataset):  # without rendering: pose_groups needs only the length and the spec
        def __init__(self, domain):
            self.domain = DOMAINS[domain]

        def __len__(self):
            return 8

    assert EightSamples("synth-stb").pose_groups().tolist() == list(range(8))  # a pose per sample
    assert EightSamples("synth-frei").pose_groups().tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # 4 versions per pose
