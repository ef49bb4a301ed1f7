"""The domains modelled on the real datasets: the source's 4 versions per pose, the targets' diagnostics
(style / view) and the source's restyled twin."""

import pytest
import torch

from repro.data.domains import DOMAINS, STYLE_FIELDS, VIEW_FIELDS, diagnostics_of, get_domain, split_seed
from repro.data.synthetic import SyntheticDataset, draw_sample, render_range
from repro.data.world.scene import NEUTRAL_RECOLOURING

SOURCE, TARGETS = DOMAINS["synth-frei"], ("synth-stb", "synth-rhd")
DIAGNOSTICS = ("synth-stb-style", "synth-stb-view", "synth-rhd-style", "synth-rhd-view")
SIZE = 48


@pytest.fixture(scope="module")
def frei_train():
    return render_range(SOURCE, "train", 0, 16, SIZE)


def test_the_four_versions_of_a_pose_share_everything_but_the_backdrop(frei_train):
    out = frei_train
    assert SOURCE.versions == 4
    for pose in range(4):
        first = 4 * pose
        for v in range(1, 4):
            i = first + v
            for key in ("xyz", "uv", "K", "visible", "mask"):
                assert torch.equal(out[key][i], out[key][first]), (pose, v, key)
            hand = out["mask"][first]
            # the backdrop is another, and the composite recoloured within the spec's ranges (FreiHAND's harmonised versions)
            assert (out["image"][i][:, ~hand].float() - out["image"][first][:, ~hand].float()).abs().mean() > 5
            scene = draw_sample(SOURCE, "train", i)
            assert scene["texture"] == SOURCE.replaced_texture
            assert SOURCE.replaced_exposure[0] <= scene["exposure"] <= SOURCE.replaced_exposure[1]
            assert SOURCE.replaced_tint[0] <= scene["hand_tint"] <= SOURCE.replaced_tint[1]
            assert all(abs(w - 1) <= SOURCE.replaced_white_balance for w in scene["white_balance"])
            assert out["style"][i]["backdrop"] in SOURCE.replaced_backdrops and out["style"][i]["scene"] in SOURCE.replaced_scenes
            for key in ("hand_colour", "lighting"):
                assert out["style"][i][key] == out["style"][first][key]
        assert out["style"][first]["backdrop"] == "green"
        assert {k: draw_sample(SOURCE, "train", first)[k] for k in NEUTRAL_RECOLOURING} == NEUTRAL_RECOLOURING
        # version 0 is the green screen: its backdrop pixels are green-dominant (bright light lifts them all)
        rgb = out["image"][first][:, ~out["mask"][first]].float().mean(1)
        assert rgb[1] > rgb[0] + 100 and rgb[1] > rgb[2] + 100, rgb
    poses = [out["xyz"][4 * p] for p in range(4)]
    assert not torch.equal(poses[0], poses[1])  # a new pose every four samples


def test_versions_do_not_depend_on_where_a_range_starts(frei_train):
    alone = render_range(SOURCE, "train", 6, 7, SIZE)
    assert torch.equal(alone["image"][0], frei_train["image"][6]) and torch.equal(alone["xyz"][0], frei_train["xyz"][6])


def test_source_only_backdrops_never_appear_in_a_target_or_diagnostic():
    source_only = {"green", *SOURCE.replaced_backdrops}
    targets = {DOMAINS[t] for t in TARGETS} | {DOMAINS[d] for d in DIAGNOSTICS if DOMAINS[d].keeps == "style"}
    for spec in targets:
        assert not source_only & set(spec.backdrops + spec.replaced_backdrops), spec.name
    # the view diagnostics carry the source's style on purpose: its backdrops, and nothing else
    for name in DIAGNOSTICS:
        if DOMAINS[name].keeps == "view":
            assert set(DOMAINS[name].backdrops + DOMAINS[name].replaced_backdrops) == source_only
    for name in TARGETS:
        out = render_range(DOMAINS[name], "test", 0, 12, 32)
        assert not source_only & {s["backdrop"] for s in out["style"]}


def test_diagnostics_take_their_fields_from_the_target_and_the_source():
    for target in TARGETS:
        style_diag, view_diag = (DOMAINS[n] for n in diagnostics_of(target))
        tgt = DOMAINS[target]
        assert (style_diag.diagnoses, style_diag.keeps, view_diag.diagnoses, view_diag.keeps) == (target, "style", target, "view")
        for name in STYLE_FIELDS:
            assert getattr(style_diag, name) == getattr(tgt, name), name
            assert getattr(view_diag, name) == getattr(SOURCE, name), name
        for name in VIEW_FIELDS:
            assert getattr(style_diag, name) == getattr(SOURCE, name), name
            assert getattr(view_diag, name) == getattr(tgt, name), name
        assert style_diag.splits == view_diag.splits == {"test": 3000} and style_diag.labelled
    # every field is a style field, a view field, or bookkeeping
    bookkeeping = {"name", "description", "seed_base", "splits", "labelled", "diagnoses", "keeps", "restyles"}
    assert set(STYLE_FIELDS) | set(VIEW_FIELDS) | bookkeeping == set(SOURCE.__dataclass_fields__)


def test_diagnostics_of():
    assert diagnostics_of("synth-stb") == ("synth-stb-style", "synth-stb-view")
    assert diagnostics_of("synth-rhd") == ("synth-rhd-style", "synth-rhd-view")
    assert diagnostics_of("synth-frei") == ()
    assert set(DIAGNOSTICS) <= set(DOMAINS)


def test_a_view_diagnostic_renders_the_targets_camera_with_the_sources_style():
    out = render_range(get_domain("synth-stb-view"), "test", 0, 8, 32)
    assert [s["backdrop"] == "green" for s in out["style"]] == [True, False, False, False] * 2
    assert {s["hand_colour"] for s in out["style"]} <= set(SOURCE.hand_colours)
    lo, hi = DOMAINS["synth-stb"].azimuth
    assert all(lo <= draw_sample(get_domain("synth-stb-view"), "test", i)["azimuth"] <= hi for i in range(8))
    styled = render_range(get_domain("synth-rhd-style"), "test", 0, 8, 32)
    assert {s["backdrop"] for s in styled["style"]} <= set(DOMAINS["synth-rhd"].backdrops)


def test_pose_groups_follow_the_versions(repro_cache):
    train = SyntheticDataset("synth-frei", "train", n=10, size=32)
    assert train.pose_groups().tolist() == [i // 4 for i in range(10)]
    assert train.pose_groups().dtype == torch.long
    assert SyntheticDataset("synth-stb", "test", n=5, size=32).pose_groups().tolist() == [0, 1, 2, 3, 4]


def test_the_restyled_twin_is_the_source_sample_in_another_style(frei_train):
    twin = DOMAINS["synth-frei-restyle"]
    assert twin.restyles == SOURCE and set(twin.splits) == {"train"} and twin.splits["train"] == SOURCE.splits["train"]
    out = render_range(twin, "train", 0, 16, SIZE)
    for key in ("xyz", "uv", "K", "visible", "mask"):
        assert torch.equal(out[key], frei_train[key]), key
    for i in range(16):
        assert not torch.equal(out["image"][i], frei_train["image"][i]), i
        assert out["style"][i] != frei_train["style"][i], i
    # drawn from every style, not the source's: rooms, other skins and backdrops appear
    styles = [draw_sample(twin, "train", i) for i in range(64)]
    assert {"room", "background"} <= {s["scene"] for s in styles}
    assert {s["hand_colour"] for s in styles} - set(SOURCE.hand_colours)
    assert {s["backdrop"] for s in styles} - {"green", *SOURCE.replaced_backdrops}
    # a restyled sample is rendered as drawn: its backdrop word's own texture, not recoloured
    assert all(s["texture"] == s["backdrop"] and {k: s[k] for k in NEUTRAL_RECOLOURING} == NEUTRAL_RECOLOURING for s in styles)


def test_seeds_are_disjoint_across_every_split_of_every_domain():
    seeds = [split_seed(d, s) for d in DOMAINS.values() for s in d.splits]
    assert len(seeds) == len(set(seeds))
    assert len(DOMAINS) == 9
