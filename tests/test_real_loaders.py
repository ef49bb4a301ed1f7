"""The FreiHAND, RHD and STB loaders on tiny datasets written in the real formats (tests/fixtures_real.py)."""

import json
import os
import pickle
import shutil

import fixtures_real as fx
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from repro.cli import main
from repro.data.errors import DataError
from repro.data.geometry import crop_intrinsics, project
from repro.data.joints import JOINT_NAMES
from repro.data.real.common import CROP_MARGIN, build_sample, crop_square
from repro.data.real.freihand import FreiHAND
from repro.data.real.rhd import RHD
from repro.data.real.stb import STB
from repro.data.registry import open_dataset

MIRROR = np.array([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def freihand_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("freihand")
    return root, fx.write_freihand(root)


@pytest.fixture(scope="module")
def rhd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("RHD_published_v2")
    return root, fx.write_rhd(root)


@pytest.fixture(scope="module")
def stb_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("stb")
    return root, fx.write_stb(root)


def is_marker(image: torch.Tensor, u: float, v: float) -> bool:
    r, g, b = image[:, int(round(v)), int(round(u))].tolist()
    return r > 200 and g < 80 and b < 80


def check_sample(sample, size: int) -> None:
    """What every HandSample must satisfy, whatever the dataset."""
    assert sample.image.dtype == torch.uint8 and sample.image.shape == (3, size, size)
    assert sample.xyz.dtype == torch.float32 and sample.xyz.shape == (21, 3)
    assert sample.uv.dtype == torch.float32 and sample.uv.shape == (21, 2)
    assert sample.K.dtype == torch.float32 and sample.K.shape == (3, 3)
    assert sample.visible.dtype == torch.bool and sample.visible.shape == (21,)
    assert sample.caption == ""
    assert torch.allclose(sample.uv, project(sample.K, sample.xyz), atol=1e-3)
    # the crop rule: joints' bbox centred in the crop, its longer side = size / CROP_MARGIN
    lo, hi = sample.uv.min(dim=0).values, sample.uv.max(dim=0).values
    assert torch.allclose(0.5 * (lo + hi), torch.full((2,), (size - 1) / 2), atol=1e-3)
    assert float((hi - lo).max()) == pytest.approx(size / CROP_MARGIN, abs=1e-3)


def check_marker(sample, joint: int, mirrored: bool) -> None:
    """The red square drawn under `joint` (the leftmost joint in the source image) sits under it in the crop,
    and on the right of the crop when the hand was mirrored; its mirror position holds none."""
    size = sample.image.shape[-1]
    u, v = sample.uv[joint].tolist()
    assert is_marker(sample.image, u, v)
    assert not is_marker(sample.image, size - 1 - u, v)
    assert (u > size / 2) == mirrored


# --- FreiHAND -----------------------------------------------------------------------------------------


def test_freihand_training_maps_each_image_to_pose_modulo_count(freihand_root):
    root, written = freihand_root
    data = FreiHAND(root, "training")
    assert len(data) == 8 and data.name == "freihand"
    for i in (0, 5):
        sample = data[i]
        check_sample(sample, 128)
        pose = written["xyz_mm"]["training"][i % 2]
        np.testing.assert_allclose(sample.xyz.numpy(), pose, atol=1e-3)
        assert sample.visible.all()
        assert sample.meta == {"file": str(root / "training" / "rgb" / f"{i:08d}.jpg"), "index": i, "annotation": i % 2, "mirrored": False}
        check_marker(sample, fx.leftmost_joint(written["K"], pose), mirrored=False)


def test_freihand_evaluation_crop_size_and_cap(freihand_root):
    root, written = freihand_root
    data = FreiHAND(root, "evaluation", size=64)
    assert len(data) == 2
    check_sample(data[1], 64)
    np.testing.assert_allclose(data[1].xyz.numpy(), written["xyz_mm"]["evaluation"][1], atol=1e-3)
    assert len(open_dataset("freihand", root=root, split="training", n=3)) == 3
    with pytest.raises(IndexError):
        data[2]
    assert len(list(data)) == 2


def test_a_capped_split_is_evenly_spaced_over_versions_and_sequences(freihand_root, stb_root):
    """FreiHAND's images come version after version and STB's frames sequence after sequence: n samples
    are spread over the whole split, not its first n (one background version, one sequence)."""
    root, written = freihand_root
    half = FreiHAND(root, "training", n=4)  # 8 images: 2 poses x 4 versions, version-major
    assert [half[j].meta["index"] for j in range(4)] == [1, 3, 5, 7]  # versions 0, 1, 2, 3
    assert half.pose_groups().tolist() == [1, 1, 1, 1] == [half[j].meta["annotation"] for j in range(4)]
    np.testing.assert_allclose(half[3].xyz.numpy(), written["xyz_mm"]["training"][1], atol=1e-3)
    three = FreiHAND(root, "training", n=3)
    assert [three[j].meta["index"] for j in range(3)] == [1, 4, 6]  # floor((j + 1/2) * 8 / 3)
    whole = FreiHAND(root, "training")
    assert [whole[j].meta["index"] for j in range(8)] == list(range(8))
    assert len({half.digest, three.digest, whole.digest}) == 3
    stb, _ = stb_root
    assert [s.meta["sequence"] for s in STB(stb, "test", n=2)] == ["B1Counting", "B1Random"]  # of 2 + 1 frames


def test_cli_data_info_freihand(freihand_root, capsys):
    root, written = freihand_root
    assert main(["data", "info", "--dataset", "freihand", "--root", str(root), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["n"] == 2  # the default split, evaluation
    np.testing.assert_allclose(record["first"], written["xyz_mm"]["evaluation"][0], atol=1e-3)
    assert record["image_shape"] == [3, 128, 128]


def test_cli_missing_root_is_an_error_naming_it(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["data", "info", "--dataset", "freihand", "--root", str(missing), "--json"]) == 2
    assert str(missing) in capsys.readouterr().err


# --- RHD ----------------------------------------------------------------------------------------------


def test_rhd_picks_the_more_visible_hand_and_mirrors_a_left_one(rhd_root):
    root, written = rhd_root
    data = RHD(root, "evaluation")
    assert len(data) == 3 and data.name == "rhd"
    first = data[0]
    check_sample(first, 128)
    sample0 = written["samples"][0]
    # more visible keypoints on the left hand (the mask favours the right: visibility decides)
    np.testing.assert_allclose(first.xyz.numpy(), sample0["left"] * MIRROR, atol=1e-3)
    assert first.visible.all()
    assert first.meta["mirrored"] and first.meta["hand"] == "left" and first.meta["index"] == 0
    check_marker(first, fx.leftmost_joint(sample0["K"], sample0["left"]), mirrored=True)


def test_rhd_right_hand_keeps_its_side_and_visibility_order(rhd_root):
    root, written = rhd_root
    sample = RHD(root, "evaluation")[1]
    check_sample(sample, 128)
    sample1 = written["samples"][1]
    np.testing.assert_allclose(sample.xyz.numpy(), sample1["right"], atol=1e-3)
    assert sample.visible.tolist() == sample1["visible_right"].tolist()
    assert not sample.visible[JOINT_NAMES.index("thumb_tip")]
    assert not sample.meta["mirrored"]
    check_marker(sample, fx.leftmost_joint(sample1["K"], sample1["right"]), mirrored=False)


def test_rhd_visibility_tie_is_broken_by_mask_pixels(rhd_root):
    root, written = rhd_root
    sample = RHD(root, "evaluation")[2]
    sample2 = written["samples"][2]
    assert sample.meta["hand"] == "left" and sample.meta["mirrored"]
    np.testing.assert_allclose(sample.xyz.numpy(), sample2["left"] * MIRROR, atol=1e-3)
    assert sample.visible.tolist() == sample2["visible_left"].tolist()


# --- STB ----------------------------------------------------------------------------------------------


def test_stb_reorders_adds_the_wrist_moves_to_the_colour_camera_and_mirrors(stb_root):
    root, written = stb_root
    data = STB(root, "test")
    assert len(data) == 3 and data.name == "stb"
    for i, (seq, frame) in enumerate([("B1Counting", 0), ("B1Counting", 1), ("B1Random", 0)]):
        sample = data[i]
        check_sample(sample, 128)
        hand = written["hands"][seq][frame]
        # the fixture's wrist comes back exactly: the palm it wrote is the wrist/middle-MCP midpoint
        np.testing.assert_allclose(sample.xyz.numpy(), hand * MIRROR, atol=1e-3)
        assert sample.meta == {
            "file": str(root / "images" / seq / f"SK_color_{frame}.png"),
            "index": frame,
            "sequence": seq,
            "mirrored": True,
        }
        check_marker(sample, fx.leftmost_joint(written["K"], hand), mirrored=True)


def test_stb_joints_outside_the_image_are_invisible(stb_root):
    root, written = stb_root
    data = STB(root, "test")
    assert data[0].visible.all()
    hand = written["hands"]["B1Random"][0]
    u = fx.project(written["K"], hand)[:, 0]
    expected = u <= 639
    assert 0 < expected.sum() < 21
    assert data[2].visible.tolist() == expected.tolist()


# --- shared behaviour ---------------------------------------------------------------------------------


def test_digest_identifies_content(freihand_root, tmp_path):
    root, _ = freihand_root
    digest = FreiHAND(root, "evaluation").digest
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert FreiHAND(root, "evaluation").digest == digest
    assert FreiHAND(root, "evaluation", size=64).digest != digest
    assert FreiHAND(root, "training").digest != digest
    copy = tmp_path / "copy"
    fx.write_freihand(copy.mkdir() or copy)
    assert FreiHAND(copy, "evaluation").digest != digest  # another root
    before = FreiHAND(copy, "evaluation").digest
    stat = (copy / "evaluation_K.json").stat()
    os.utime(copy / "evaluation_K.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert FreiHAND(copy, "evaluation").digest != before


@pytest.mark.parametrize("name", ["freihand", "rhd", "stb"])
def test_missing_root_names_the_path(name, tmp_path):
    missing = tmp_path / "not-there"
    with pytest.raises(DataError, match="layout") as err:
        open_dataset(name, root=missing)
    assert str(missing) in str(err.value)


def test_freihand_missing_annotation_file(tmp_path):
    fx.write_freihand(tmp_path)
    (tmp_path / "training_K.json").unlink()
    with pytest.raises(DataError) as err:
        FreiHAND(tmp_path, "training")
    assert str(tmp_path / "training_K.json") in str(err.value)
    assert "FreiHAND v2 layout" in str(err.value)


def test_freihand_bad_shape_and_count_mismatches(tmp_path):
    fx.write_freihand(tmp_path)
    xyz = tmp_path / "evaluation_xyz.json"
    good = xyz.read_text()
    xyz.write_text(json.dumps([[[0.0, 0.0, 0.5]] * 20]))
    with pytest.raises(DataError, match=r"21x3 metres") as err:
        FreiHAND(tmp_path, "evaluation")
    assert str(xyz) in str(err.value)
    xyz.write_text("[[[0.0, 0.0")
    with pytest.raises(DataError, match="cannot read"):
        FreiHAND(tmp_path, "evaluation")
    xyz.write_text(json.dumps(json.loads(good)[:1]))
    with pytest.raises(DataError, match="1 entries") as err:
        FreiHAND(tmp_path, "evaluation")
    assert str(tmp_path / "evaluation_K.json") in str(err.value)
    xyz.write_text(good)
    (tmp_path / "training" / "rgb" / "00000007.jpg").unlink()
    with pytest.raises(DataError, match="holds 7 .jpg images; expected 8") as err:
        FreiHAND(tmp_path, "training")
    assert str(tmp_path / "training" / "rgb") in str(err.value)


def test_corrupt_or_truncated_image_names_the_file(tmp_path):
    fx.write_freihand(tmp_path)
    bad = tmp_path / "evaluation" / "rgb" / "00000001.jpg"
    bad.write_bytes(b"not a jpeg")
    data = FreiHAND(tmp_path, "evaluation")  # annotations are fine: the image is read on access
    with pytest.raises(DataError, match="unreadable image") as err:
        data[1]
    assert str(bad) in str(err.value)
    good = tmp_path / "evaluation" / "rgb" / "00000000.jpg"
    good.write_bytes(good.read_bytes()[:300])
    with pytest.raises(DataError) as err:
        data[0]
    assert str(good) in str(err.value)


def test_rhd_sample_indices_may_be_numpy_integers(tmp_path):
    written = fx.write_rhd(tmp_path)
    path = tmp_path / "evaluation" / "anno_evaluation.pickle"
    anno = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps({np.int64(k): v for k, v in anno.items()}))  # as a pickle written from arrays
    sample = RHD(tmp_path, "evaluation")[1]
    assert sample.meta["index"] == 1 and sample.meta["hand"] == "right"
    np.testing.assert_allclose(sample.xyz.numpy(), written["samples"][1]["right"], atol=1e-2)


def test_joints_near_the_camera_plane_are_an_error_not_a_huge_crop(tmp_path):
    """A joint 0.01 mm in front of the camera projects a million pixels away: the crop would pad the image
    to that size, so the sample is refused by file and annotation instead."""
    image = tmp_path / "00000000.jpg"
    Image.new("RGB", (224, 224)).save(image)
    xyz = fx.right_hand_mm((0, 70, 550))
    K = np.array([[380.0, 0.0, 111.5], [0.0, 380.0, 111.5], [0.0, 0.0, 1.0]])
    ok = build_sample(file=image, xyz_mm=xyz, K=K, visible=None, left=False, meta={"index": 7}, size=32, layout="test layout")
    assert ok.image.shape == (3, 32, 32)
    xyz[4, 2] = 0.01
    with pytest.raises(DataError, match=r"00000000\.jpg: annotation 7: the joints' crop is \d+ px wide, over 8x the 224x224 image"):
        build_sample(file=image, xyz_mm=xyz, K=K, visible=None, left=False, meta={"index": 7}, size=32, layout="test layout")


def test_rhd_missing_field_and_image_mismatch(tmp_path):
    fx.write_rhd(tmp_path)
    path = tmp_path / "evaluation" / "anno_evaluation.pickle"
    anno = pickle.loads(path.read_bytes())
    del anno[1]["xyz"]
    path.write_bytes(pickle.dumps(anno))
    with pytest.raises(DataError, match="sample 1 has no field 'xyz'") as err:
        RHD(tmp_path, "evaluation")
    assert str(path) in str(err.value)
    anno[1]["xyz"] = np.zeros((21, 3))
    path.write_bytes(pickle.dumps(anno))
    with pytest.raises(DataError, match=r"'xyz' of sample 1 has shape \(21, 3\)"):
        RHD(tmp_path, "evaluation")
    anno[1]["xyz"] = "not numbers"
    path.write_bytes(pickle.dumps(anno))
    with pytest.raises(DataError, match=r"'xyz' of sample 1 has shape \(0,\); expected a \(42, 3\) array"):
        RHD(tmp_path, "evaluation")
    anno[1]["xyz"] = np.full((42, 3), np.nan)
    path.write_bytes(pickle.dumps(anno))
    with pytest.raises(DataError, match="not finite"):
        RHD(tmp_path, "evaluation")
    del anno[1]
    path.write_bytes(pickle.dumps(anno))
    with pytest.raises(DataError, match="holds 3 .png images but") as err:
        RHD(tmp_path, "evaluation")
    assert str(tmp_path / "evaluation" / "color") in str(err.value)


def test_rhd_missing_annotation_and_mask(tmp_path):
    fx.write_rhd(tmp_path)
    (tmp_path / "evaluation" / "mask" / "00002.png").unlink()
    data = RHD(tmp_path, "evaluation")
    data[0]  # decided by visibility: the mask is not needed
    with pytest.raises(DataError, match="missing image") as err:
        data[2]
    assert str(tmp_path / "evaluation" / "mask" / "00002.png") in str(err.value)
    (tmp_path / "evaluation" / "anno_evaluation.pickle").unlink()
    with pytest.raises(DataError, match="RHD_published_v2 layout") as err:
        RHD(tmp_path, "evaluation")
    assert str(tmp_path / "evaluation" / "anno_evaluation.pickle") in str(err.value)
    fx.write_rhd(tmp_path / "no_masks")
    shutil.rmtree(tmp_path / "no_masks" / "evaluation" / "mask")
    with pytest.raises(DataError, match=r"mask: no such folder; expected the folder of %05d.png part-label masks"):
        RHD(tmp_path / "no_masks", "evaluation")  # at open, before any sample is decoded


def test_stb_bad_handpara_and_missing_sequences(tmp_path):
    fx.write_stb(tmp_path)
    label = tmp_path / "labels" / "B1Random_SK.mat"
    scipy.io.savemat(label, {"handPara": np.zeros((3, 20, 1))})
    with pytest.raises(DataError, match=r"'handPara' has shape \(3, 20, 1\)") as err:
        STB(tmp_path, "test")
    assert str(label) in str(err.value)
    scipy.io.savemat(label, {"other": np.zeros((3, 21, 1))})
    with pytest.raises(DataError, match="no field 'handPara'"):
        STB(tmp_path, "test")
    label.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read") as err:
        STB(tmp_path, "test")
    assert str(label) in str(err.value)
    with pytest.raises(DataError, match="STB layout") as err:
        STB(tmp_path, "train")
    assert str(tmp_path / "labels" / "B2Counting_SK.mat") in str(err.value)


def test_stb_images_directly_under_the_root_are_found(tmp_path):
    written = fx.write_stb(tmp_path)
    for seq in ("B1Counting", "B1Random"):
        (tmp_path / "images" / seq).rename(tmp_path / seq)
    sample = STB(tmp_path, "test")[1]
    assert sample.meta["file"] == str(tmp_path / "B1Counting" / "SK_color_1.png")
    np.testing.assert_allclose(sample.xyz.numpy(), written["hands"]["B1Counting"][1] * MIRROR, atol=1e-3)


def test_stb_frame_and_image_counts_must_match(tmp_path):
    fx.write_stb(tmp_path)
    (tmp_path / "images" / "B1Counting" / "SK_color_1.png").unlink()
    with pytest.raises(DataError, match="holds 1 SK_color_\\*.png images but") as err:
        STB(tmp_path, "test")
    assert str(tmp_path / "images" / "B1Counting") in str(err.value)


@pytest.mark.parametrize("side", [40.0, 90.0])  # enlarging and shrinking
def test_crop_square_matches_crop_intrinsics_to_subpixel(side):
    """On ramps (red = 2u, green = 2v) bilinear filtering is exact, so each crop pixel holds twice the source
    position crop_intrinsics maps it from: u = (j + 0.5) / scale + x0 - 0.5, likewise v."""
    ramp = np.tile(2 * np.arange(128, dtype=np.uint8), (128, 1))
    img = Image.fromarray(np.stack([ramp, ramp.T, np.zeros_like(ramp)], axis=-1))
    x0, y0, size = 30.3, 20.7, 64
    crop = crop_square(img, x0, y0, side, size).double()
    j = torch.arange(size, dtype=torch.float64)
    source = torch.stack([(j + 0.5) * side / size + x0 - 0.5, (j + 0.5) * side / size + y0 - 0.5, torch.ones(size)])
    K = crop_intrinsics(torch.eye(3, dtype=torch.float64), x0, y0, size / side)
    assert torch.allclose((K @ source)[:2], torch.stack([j, j]))
    assert torch.allclose(crop[0, size // 2], 2 * source[0], atol=0.6)
    assert torch.allclose(crop[1, :, size // 2], 2 * source[1], atol=0.6)


def test_crop_square_pads_with_zeros_outside_the_image():
    img = Image.new("RGB", (50, 50), (200, 200, 200))
    crop = crop_square(img, -50.0, -25.0, 100.0, 20)  # the image fills the crop's middle right quarter
    assert (crop[:, :, :9] == 0).all() and (crop[:, :4] == 0).all() and (crop[:, 16:] == 0).all()
    assert (crop[:, 6:14, 11:19] == 200).all()
